"""Which pass a record claims, and that pass in the traced log (compliance.dynamic.claimed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgolf.compliance.dynamic.claimed import claimed_label, judged_pass
from pgolf.compliance.logparse import parse_log
from pgolf.compliance.record import load_record

from .factory import make_record

SEEDS, BPBS = (42, 314, 999), (1.2001, 1.2003, 1.2005)
MIX = (1.1201, 1.1207, 1.1209)  # what a byte-level mixture prints beside the network's score


def _claiming(tmp_path: Path, line: str, values=MIX, seeds=SEEDS, per_seed=True) -> Path:
    """A record whose logs each print `line` (with {v} its value) and whose JSON claims those values."""
    folder = make_record(tmp_path, seeds=seeds, bpbs=BPBS)
    for seed, value in zip(seeds, values, strict=True):
        log = folder / f"train_seed{seed}.log"
        log.write_text(log.read_text() + line.format(v=value) + "\n")
    sub = json.loads((folder / "submission.json").read_text())
    sub["val_bpb"] = round(sum(values) / len(values), 5)
    if per_seed:
        sub["seed_results"] = {str(s): {"val_bpb": v} for s, v in zip(seeds, values, strict=True)}
    else:
        del sub["seed_results"]
    (folder / "submission.json").write_text(json.dumps(sub))
    return folder


def test_the_claim_is_the_final_pass_that_carries_it(tmp_path: Path):
    folder = make_record(tmp_path, seeds=SEEDS, bpbs=BPBS)
    assert claimed_label(load_record(folder)) == "final_int8_zlib_roundtrip_exact"


@pytest.mark.parametrize("per_seed", [True, False])
def test_a_claim_only_a_named_bpb_carries_is_that_bpb(tmp_path: Path, per_seed: bool):
    line = "ppm_mix bytes=10982035 mix_bpb={v} ppm_only=2.380212 nn_only=1.080180 mode=binary"
    folder = _claiming(tmp_path, line, per_seed=per_seed)
    assert claimed_label(load_record(folder)) == "ppm_mix mix_bpb"


def test_a_claim_a_diagnostic_line_carries_is_that_line(tmp_path: Path):
    line = "diagnostic quantized_sliding_window val_loss:2.02800000 val_bpb:{v} eval_time:600ms"
    folder = _claiming(tmp_path, line)
    assert claimed_label(load_record(folder)) == "diagnostic quantized_sliding_window"


def test_a_line_that_carries_the_claim_in_one_run_only_is_not_the_claim(tmp_path: Path):
    folder = _claiming(tmp_path, "ppm_mix mix_bpb={v}", values=(1.1201, 1.1207, 1.1209))
    other = folder / "train_seed314.log"
    other.write_text(other.read_text().replace("mix_bpb=1.1207", "mix_bpb=1.1300"))
    assert claimed_label(load_record(folder)) == "final_int8_zlib_roundtrip_exact"


TRACED = """\
quantized val_loss:9.01246405 val_bpb:2.42427883 eval_time:1987ms
ppm_mix bytes=87873 mix_bpb=2.402952 ppm_only=3.934014 nn_only=2.418945 mode=binary
quantized_sliding_window val_loss:9.01246406 val_bpb:2.42427884 eval_time:28075ms
diagnostic quantized_mixture val_loss:9.01249095 val_bpb:2.47447348 eval_time:27482ms
quantized_sliding_window_ttt val_loss:9.01246333 val_bpb:2.42427864 eval_time:22482ms
"""


def test_the_traced_log_is_judged_by_the_claimed_line():
    facts = parse_log(TRACED)
    assert facts.score is not None and facts.score.label == "quantized_sliding_window_ttt"
    assert [(m.label, m.val_bpb) for m in facts.named_bpb] == [("ppm_mix mix_bpb", 2.402952)]
    named = judged_pass(facts, "ppm_mix mix_bpb").score
    assert named is not None and (named.val_bpb, named.val_loss, named.line) == (2.402952, 9.01246333, 2)
    marked = judged_pass(facts, "diagnostic quantized_mixture").score
    assert marked is not None and (marked.val_bpb, marked.val_loss) == (2.47447348, 9.01249095)
    final = judged_pass(facts, "quantized_sliding_window").score
    assert final is not None and final.line == 3
    assert judged_pass(facts, "never_printed").score is facts.score


def test_a_figure_printed_under_its_own_name_is_a_named_bpb_the_record_can_claim(tmp_path: Path):
    """A native mixer's `ppm_native_submission_val_bpb: 0.99` line, and `mix_bpb_sidecar=` beside other
    bpbs, are figures of their own (not the log's score) that a record's claim can rest on."""
    line = "ppm_native_submission_val_bpb: {v}"
    assert claimed_label(load_record(_claiming(tmp_path, line))) == "ppm_native_submission_val_bpb"
    facts = parse_log("ppm_full_native tokens=16384 mix_bpb_sidecar=2.377177 nn_byte_bpb_sidecar=2.411370\n")
    assert [(m.label, m.val_bpb) for m in facts.named_bpb] == [
        ("ppm_full_native mix_bpb_sidecar", 2.377177),
        ("ppm_full_native nn_byte_bpb_sidecar", 2.41137),
    ]


NATIVE_TRACED = """\
diagnostic pre-quantization post-ema val_loss:9.01205984 val_bpb:2.41638799 eval_time:2244ms
ppm_native_submission_val_bpb: 2.377177
diagnostic quantized val_loss:9.01207767 val_bpb:2.41639277 eval_time:2339ms
"""


def test_a_named_claim_in_a_log_with_no_final_pass_takes_the_loss_of_its_last_diagnostic_pass():
    facts = parse_log(NATIVE_TRACED)
    assert facts.score is None
    judged = judged_pass(facts, "ppm_native_submission_val_bpb").score
    assert judged is not None and (judged.val_bpb, judged.val_loss) == (2.377177, 9.01207767)
