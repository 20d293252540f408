"""Static legality checks (RULES.md §3, §4): verdicts on fixture scripts, each also
wrapped as an lzma+b85 self-extracting stub and with every identifier renamed."""

from __future__ import annotations

import builtins
from pathlib import Path

import libcst as cst
import pytest

from pgolf.compliance.report import verdict_of
from pgolf.compliance.rules.registry import get_check, load_ruleset
from pgolf.compliance.static import bench_static, script_context_from_source
from pgolf.compliance.static.parse import parse_source
from pgolf.compliance.unpack import build_wrapper, decode_script

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "static"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# fixture -> (expected verdict, rule ids expected among the active non-info findings)
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "legal_plain_eval": ("pass", set()),
    "legal_sliding_window": ("pass", set()),
    "legal_score_first_ttt": ("pass", set()),
    "legal_lora_ttt": ("pass", set()),
    "legal_phased_ttt": ("pass", set()),
    "legal_ngram_tilt": ("pass", set()),
    "legal_bigramhash": ("pass", set()),
    "legal_gptq_selfgen": ("pass", set()),
    "warn_ttt_warmup_copy": ("pass", {"R-TTT-WARMUP"}),
    "illegal_prequant_ttt": ("fail", {"R-NO-PREQUANT-TTT"}),
    "illegal_prequant_ttt_valdata": ("fail", {"R-NO-PREQUANT-TTT"}),
    "legal_valdata_object": ("pass", set()),
    "illegal_score_discard_rescore": ("fail", {"R-NO-PREQUANT-TTT", "R-SINGLE-PASS"}),
    "illegal_adapt_then_score": ("fail", {"R-TTT-SCORE-FIRST"}),
    "illegal_epoch_last_score": ("fail", {"R-TTT-SCORE-FIRST"}),
    "illegal_two_pass_cache": ("fail", {"R-SINGLE-PASS"}),
    "illegal_ngram_target_key": ("fail", {"R-NO-NGRAM-LEAK"}),
    "illegal_slot": ("fail", {"R-NO-SLOT"}),
    "review_slot_causal": ("review", {"R-NO-SLOT"}),
    "illegal_etlb": ("fail", {"R-NO-ETLB"}),
    "illegal_gptq_val_calib": ("fail", {"R-GPTQ-CALIB"}),
    "illegal_train_in_eval": ("fail", {"R-NO-TRAIN-IN-EVAL"}),
    "illegal_network_eval": ("fail", {"R-NETWORK"}),
    "illegal_val_in_train": ("fail", {"R-NO-VAL-IN-TRAIN"}),
    "review_bos_leak": ("review", {"R-BOS-LEAK"}),
    "off_prequant_ttt": ("pass", set()),
    "off_ngram_target_key": ("pass", set()),
}

# Library API names the renamer must keep (the checker may key on these, never on user names).
_KEEP = {
    "forward",
    "backward",
    "step",
    "zero_grad",
    "requires_grad",
    "remove",
    "item",
    "parameters",
    "named_parameters",
    "named_modules",
    "state_dict",
    "load_state_dict",
    "reduction",
    "dim",
    "dtype",
    "offset",
    "value",
    "lr",
    "momentum",
    "accumulate",
    "set_to_none",
    "self",
    "super",
}


class _Collect(cst.CSTVisitor):
    """Every identifier the script itself defines."""

    def __init__(self) -> None:
        self.defined: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.defined.add(node.name.value)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.defined.add(node.name.value)

    def visit_Param(self, node: cst.Param) -> None:
        self.defined.add(node.name.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._target(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._target(node.target)

    def _target(self, node: cst.BaseExpression) -> None:
        if isinstance(node, cst.Name):
            self.defined.add(node.value)
        elif isinstance(node, cst.Attribute):
            self.defined.add(node.attr.value)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                self._target(element.value)


class _Rename(cst.CSTTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=self.names.get(updated.value, updated.value))


def rename_identifiers(source: str) -> str:
    module = cst.parse_module(source)
    collector = _Collect()
    module.visit(collector)
    keep = _KEEP | set(dir(builtins)) | {n for n in collector.defined if n.startswith("__")}
    names = {n: f"v{i}_" for i, n in enumerate(sorted(collector.defined - keep))}
    return module.visit(_Rename(names)).code


def audit(source: str, config: dict[str, str] | None = None):
    ctx = script_context_from_source("train_gpt.py", source, config)
    findings = []
    for rule in load_ruleset("legality").rules:
        if rule.kind == "script":
            findings.extend(get_check(rule.check)(ctx, rule))
    return ctx, findings


def variant(name: str, kind: str) -> str:
    source = (FIXTURES / f"{name}.py").read_text(encoding="utf-8")
    if kind == "wrapped":
        decoded = decode_script(build_wrapper(source))
        assert decoded.wrapped
        return decoded.text
    if kind == "renamed":
        renamed = rename_identifiers(source)
        assert renamed != source
        return renamed
    return source


@pytest.mark.parametrize("kind", ["plain", "wrapped", "renamed"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_verdicts(name: str, kind: str) -> None:
    expected_verdict, expected_rules = EXPECTED[name]
    ctx, findings = audit(variant(name, kind))
    assert ctx.parse_error is None
    raised = {f.rule for f in findings if f.active and f.severity != "info"}
    assert verdict_of(findings) == expected_verdict, [(f.rule, f.line, f.message) for f in findings]
    assert expected_rules <= raised, raised
    if expected_verdict == "pass":
        assert raised <= {"R-TTT-WARMUP"}


def test_findings_point_at_operation_and_score() -> None:
    _, findings = audit(variant("illegal_adapt_then_score", "plain"))
    finding = next(f for f in findings if f.rule == "R-TTT-SCORE-FIRST")
    lines = (FIXTURES / "illegal_adapt_then_score.py").read_text().splitlines()
    assert ".backward()" in lines[finding.line - 1]
    assert "loss_sum +=" in lines[finding.evidence["score_line"] - 1]
    assert "C3" in finding.message


@pytest.mark.parametrize(
    "name,key,value,rule",
    [
        ("off_prequant_ttt", "TTT_EPOCHS", "3", "R-NO-PREQUANT-TTT"),
        ("off_ngram_target_key", "NGRAM_EVAL_ENABLED", "1", "R-NO-NGRAM-LEAK"),
    ],
)
def test_switched_off_code_is_inactive_until_enabled(name: str, key: str, value: str, rule: str) -> None:
    source = variant(name, "plain")
    _, off = audit(source)
    inactive = [f for f in off if f.rule == rule]
    assert inactive and all(not f.active and f.severity in ("info", "warn") for f in inactive)
    assert verdict_of(off) == "pass"
    _, on = audit(source, {key: value})
    assert any(f.rule == rule and f.active and f.severity == "fail" for f in on)
    assert verdict_of(on) == "fail"
    _, renamed_on = audit(rename_identifiers(source), {key: value})
    assert verdict_of(renamed_on) == "fail"


def test_config_from_log_dump_names_attributes() -> None:
    """A log dump prints attribute names (ttt_epochs: 3), not env names."""
    _, on = audit(variant("off_prequant_ttt", "plain"), {"ttt_epochs": "3"})
    assert verdict_of(on) == "fail"


def test_python312_fstring_is_parsed() -> None:
    source = 'import torch\nx = f"{", ".join(str(i) for i in range(3))}/fineweb_val_*.bin"\ny = 1\n'
    module = parse_source(source)
    assert [n.lineno for n in module.body] == [1, 2, 3]


def test_unparseable_source_asks_for_review() -> None:
    _, findings = audit("def broken(:\n    pass\n")
    assert findings and all(f.severity == "review" for f in findings)


@pytest.mark.parametrize("source", ["", "# the code is in another repository\n\n"])
def test_an_entry_script_without_code_is_review_saying_so(source: str) -> None:
    _, findings = audit(source)
    assert [(f.rule, f.severity) for f in findings if f.active and f.severity != "info"] == [
        ("R-SCORING-FOUND", "review")
    ]
    assert "has no code" in findings[0].message


_VAL_TABLE_SAVED = """
import glob, numpy as np, torch
val = np.concatenate([np.fromfile(f, dtype=np.uint16) for f in sorted(glob.glob("/data/fineweb_val_*.bin"))])
torch.save({"unigram": torch.from_numpy(np.bincount(val, minlength=1024))}, "final_model.pt")
"""
_TOKENIZER_ON_VAL = """
import glob, sentencepiece as spm
files = sorted(glob.glob("/data/fineweb_val_*.bin"))
spm.SentencePieceTrainer.train(input=files[0], model_prefix="tok", vocab_size=1024)
"""
_CHECKPOINT_WITH_SCORE = """
import glob, numpy as np, torch, torch.nn.functional as F
val = torch.from_numpy(np.fromfile(sorted(glob.glob("/data/fineweb_val_*.bin"))[0], dtype=np.uint16).astype(np.int64))
model = torch.nn.Embedding(1024, 1024)
loss_sum = 0.0
with torch.no_grad():
    for s in range(0, len(val) - 1025, 1024):
        loss_sum += F.cross_entropy(model(val[s:s + 1024]), val[s + 1:s + 1025], reduction="sum").item()
val_loss = loss_sum / (len(val) - 1)
torch.save({"step": 1000, "val_loss": val_loss, "model": model.state_dict()}, "checkpoint.pt")
"""
_CHECKPOINT_WITH_VAL_COUNTS = _CHECKPOINT_WITH_SCORE.replace(
    '"model": model.state_dict()', '"model": model.state_dict(), "unigram": np.bincount(val.numpy(), minlength=1024)'
)
_SCORE_DUMPED = """
import json
val_bpb = 1.2
json.dump({"val_bpb": val_bpb}, open("score.json", "w"))
"""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (_VAL_TABLE_SAVED, "data derived from validation tokens is stored in the artifact"),
        (_TOKENIZER_ON_VAL, "a tokenizer is trained on validation data"),
        (_SCORE_DUMPED, None),
        (_CHECKPOINT_WITH_SCORE, None),
        (_CHECKPOINT_WITH_VAL_COUNTS, "data derived from validation tokens is stored in the artifact"),
    ],
)
def test_val_in_train_sees_saves_and_tokenizers(source: str, message: str | None) -> None:
    _, findings = audit(source)
    messages = [f.message for f in findings if f.rule == "R-NO-VAL-IN-TRAIN"]
    assert messages == ([message] if message else [])


# A count table packed at training time and read back at evaluation with a key that mixes in the
# target. Its token count starts at 0 in the constructor and is set when the table is loaded: a test
# on it is state, not configuration, so the lookup it guards ran.
_PACKED_TARGET_KEYED_TABLE = """
import glob
import numpy as np
import torch
import torch.nn.functional as F

P1, P2 = np.uint64(1000003), np.uint64(998244353)


class Packed:
    def __init__(self, size=1 << 16):
        self.mask = np.uint64(size - 1)
        self.pair = np.zeros(size, dtype=np.int32)
        self.ctx = np.zeros(size, dtype=np.int32)
        self.seen = 0

    @classmethod
    def load(cls, blob):
        table = cls(len(blob["pair"]))
        table.pair, table.ctx, table.seen = blob["pair"], blob["ctx"], int(blob["seen"])
        return table

    def prob(self, stream, where):
        toks = stream.astype(np.uint64)
        h = toks[where - 1] * P1
        key = ((h ^ (toks[where] * P2)) & self.mask).astype(np.intp)
        return self.pair[key] / np.maximum(self.ctx[(h & self.mask).astype(np.intp)], 1)


def evaluate(model, table):
    val = np.fromfile(sorted(glob.glob("data/fineweb_val_*.bin"))[0], dtype=np.uint16, offset=1024)
    tokens = torch.from_numpy(val.astype(np.int64))
    total, count = 0.0, 0
    with torch.inference_mode():
        for ws in range(0, len(val) - 1025, 1024):
            x, y = tokens[ws:ws + 1024], tokens[ws + 1:ws + 1025]
            p = F.softmax(model(x), dim=-1).gather(-1, y[:, None])[:, 0].numpy()
            if table is not None and table.seen > 0:
                p = 0.2 * p + 0.8 * table.prob(val, np.arange(ws + 1, ws + 1025))
            total += float(-np.log(np.maximum(p, 1e-9)).sum())
            count += 1024
    print(f"final val_loss:{total / count:.4f}")


if __name__ == "__main__":
    evaluate(torch.nn.Identity(), Packed.load(torch.load("final_model.pt")["table"]))
"""


def test_a_lookup_behind_a_test_on_loaded_state_is_judged_run() -> None:
    _, findings = audit(_PACKED_TARGET_KEYED_TABLE)
    leaks = [f for f in findings if f.rule == "R-NO-NGRAM-LEAK"]
    assert leaks and all(f.active for f in leaks), [(f.message, f.active) for f in leaks]
    assert verdict_of(findings) == "fail"


@pytest.mark.slow
def test_bench_static_runs_on_a_large_script(tmp_path: Path) -> None:
    parts = [(FIXTURES / f"{n}.py").read_text() for n in sorted(EXPECTED)]
    big = tmp_path / "big.py"
    big.write_text("\n\n".join(parts * 4), encoding="utf-8")
    result = bench_static(big)
    assert result["parsed"] and result["bytes"] > 100_000 and result["events"] > 0


@pytest.mark.shared
def test_real_record_readme_config() -> None:
    records = SHARED / "records-data" / "records"
    if not records.is_dir():
        pytest.skip(f"real record data not found at {records}")
    from pgolf.compliance.record import load_record
    from pgolf.compliance.static.runconfig import config_from_record

    folder = records / "track_10min_16mb" / "2026-03-23_LeakyReLU_LegalTTT_ParallelMuon"
    if not folder.is_dir():
        pytest.skip(f"{folder.name} not in {records}")
    config = config_from_record(load_record(folder))
    # the log dump is laid over the script defaults: what ran is what is judged
    assert config.get("world_size") == "8"
    assert config.get("train_shards") == "80"
