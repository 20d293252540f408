"""Tests for pgolf.compliance.logparse: real record logs from ../shared and hand-written snippets."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import pytest

from pgolf.compliance.logparse import LogFacts, parse_log, parse_log_bytes

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RECORDS = SHARED / "records-data" / "records"
TOLERANCE = 5e-4

# Folders whose submission.json val_bpb is not the mean of their logs' scores, and why.
EXCEPTIONS = {
    "track_10min_16mb/2026-03-18_LongContextSeq2048": "JSON val_bpb is the seed-1337 run (train.log) alone, not the 3-seed mean",
    "track_10min_16mb/2026-03-24_74M_Ternary_UNet_FP8_10L_8192BPE_YaRN_NeoMuon": "JSON val_bpb 1.1565 is seed 42 alone; the blurb's own 3-seed mean is 1.1570",
    "track_10min_16mb/2026-04-04_SP4096_DepthRecurrence_ParallelResid_MuonEqR": "seed 42's log ends with an extra TTT pass that diverged (final_int6_ttt 1.336); "
    "JSON reports the sliding-window scores",
    "track_non_record_16mb/2026-03-19_SwiGLU_WarmdownFix_QuarterBatch_1x5090": "no train log in the folder",
    "track_non_record_16mb/2026-03-21_DepthRecurrence_MixedPrecisionQuant": "no train log in the folder",
    "track_non_record_16mb/2026-03-23_DGAttention_DavidGao": "the log ends after serialization, before any final evaluation",
    "track_non_record_16mb/2026-04-30_Random_Linear_Adapter": "JSON val_bpb is the non-sliding roundtrip (sliding_val_bpb is the last pass); "
    "all three logs print seed:1337",
}
# Folders that also hold logs of other configurations: the submitted runs only.
SUBSETS = {
    "track_non_record_16mb/2026-04-04_GDN_Hybrid_LongContext": (
        "hybrid_gdn_1xh100_600s_seq32768.txt",
        "hybrid_gdn_1xh100_600s_seq32768_s42.txt",
    ),
}

SEP = "=" * 100


def _need_shared() -> None:
    if not RECORDS.is_dir():
        pytest.skip(f"shared record data not found at {RECORDS}")


def _log_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.suffix in (".log", ".txt") and p.name != "requirements.txt"]
    # A folder's train.log repeats one of its seed logs: the seed-named file wins the dedupe.
    return sorted(files, key=lambda p: (p.name == "train.log", str(p)))


def _json_val_bpb(folder: Path) -> float | None:
    for path in sorted(folder.glob("submission*.json")):
        value = json.loads(path.read_text()).get("val_bpb")
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _folder_mean(rel: str, folder: Path) -> tuple[float | None, int]:
    """Mean of the per-seed scores (one log per seed), and the number of logs used."""
    files = _log_files(folder)
    if rel in SUBSETS:
        files = [p for p in files if p.name in SUBSETS[rel]]
    by_seed: dict[object, LogFacts] = {}
    for path in files:
        facts = parse_log_bytes(path.read_bytes())
        by_seed.setdefault(facts.seed if facts.seed is not None else path.name, facts)
    scores = [f.score.val_bpb if f.score else None for f in by_seed.values()]
    if not scores or None in scores:
        return None, len(scores)
    return sum(scores) / len(scores), len(scores)


@pytest.mark.shared
def test_shared_folder_scores_match_json() -> None:
    _need_shared()
    folders = sorted(p.parent for p in RECORDS.glob("*/*/submission*.json"))
    rows, problems, seen = [], [], set()
    for folder in dict.fromkeys(folders):
        rel = str(folder.relative_to(RECORDS))
        expected = _json_val_bpb(folder)
        if expected is None:
            continue
        seen.add(rel)
        mean, n_logs = _folder_mean(rel, folder)
        agrees = mean is not None and abs(mean - expected) <= TOLERANCE
        reason = EXCEPTIONS.get(rel, "")
        rows.append((rel, n_logs, mean, expected, "ok" if agrees else "EXCEPTION" if reason else "FAIL", reason))
        if agrees == bool(reason):
            problems.append(
                f"{rel}: parsed {mean} vs JSON {expected} "
                f"({'listed as exception but agrees' if reason else 'disagrees'})"
            )
    print(f"\n{'folder':<86} {'logs':>4} {'parsed':>10} {'json':>10}  status")
    for rel, n_logs, mean, expected, status, reason in rows:
        shown = f"{mean:.6f}" if mean is not None else "-"
        print(f"{rel:<86} {n_logs:>4} {shown:>10} {expected:>10.6f}  {status} {reason}")
    stale = (set(EXCEPTIONS) | set(SUBSETS)) - seen
    assert not stale, f"exception entries for folders not found: {stale}"
    assert not problems, "\n".join(problems)


@pytest.mark.shared
def test_all_shared_logs_parse_fast_and_quietly() -> None:
    _need_shared()
    blobs = [
        p.read_bytes() for p in RECORDS.rglob("*") if p.suffix in (".log", ".txt") and p.name != "requirements.txt"
    ]
    start = time.perf_counter()
    results = [parse_log_bytes(b) for b in blobs]
    elapsed = time.perf_counter() - start
    assert len(blobs) > 50
    assert elapsed < 1.0, f"{len(blobs)} logs took {elapsed:.2f}s"
    assert all(r.layout not in ("unknown", "binary") for r in results)
    assert not [n for r in results for n in r.notes if "parser error" in n[1]]


@pytest.mark.shared
def test_shared_log_reads_every_fact() -> None:
    _need_shared()
    path = RECORDS / "track_10min_16mb/2026-03-19_WarmdownQuantization/train.log"
    facts = parse_log_bytes(path.read_bytes())
    assert facts.layout == "source+stdout"
    assert (facts.seed, facts.world_size, facts.torch_version) == (1337, 8, "2.6.0+cu124")
    assert facts.gpu_names == ["NVIDIA H100 80GB HBM3"] * 8
    assert (facts.train_shards, facts.val_tokens) == (80, 62021632)
    assert (facts.stopped_early, facts.train_time_ms, facts.last_step, facts.planned_steps) == (
        True,
        600031.0,
        7199,
        20000,
    )
    assert (facts.bytes_code, facts.bytes_model, facts.bytes_total) == (53569, 15924148, 15977717)
    assert facts.score.label == "final_sliding_window_exact"
    assert facts.score.val_bpb == pytest.approx(1.15744040)
    assert facts.score.eval_time_ms == 240533.0
    assert facts.embedded_source is None  # the shared copy holds a placeholder
    assert any("embedded source removed" in msg for _, msg in facts.notes)
    lines = path.read_text().splitlines()
    assert lines[facts.lines["score"] - 1].startswith("final_sliding_window_exact")
    assert lines[facts.lines["bytes_total"] - 1].startswith("Total submission size int8+zlib")


# ---- hand-written snippets, one per layout -------------------------------------------

SOURCE = '''"""
Tiny training script.
"""
import os

def main():
    print(f"final val_loss:{1.0:.4f}")
'''

SMI = """| NVIDIA-SMI 570.195.03             Driver Version: 570.195.03     CUDA Version: 12.8     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|   0  NVIDIA H100 80GB HBM3          On  |   00000000:05:00.0 Off |                    0 |
| N/A   37C    P0            118W /  700W |    7088MiB /  81559MiB |      0%      Default |
|   1  NVIDIA H100 80GB HBM3          On  |   00000000:06:00.0 Off |                    0 |
|    0   N/A  N/A          330090      C   /usr/bin/python                        3398MiB |
"""

BASELINE_RUN = """val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model
train_loader:dataset:fineweb10B_sp1024 train_shards:80
val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:62021632
model_params:17059912
world_size:8 grad_accum_steps:1
train_batch_tokens:524288 train_seq_len:1024 iterations:20000 warmup_steps:20 max_wallclock_seconds:600.000
seed:1337
warmup_step:1/20
warmup_step:20/20
step:1/20000 train_loss:6.9357 train_time:43ms step_avg:43.00ms
step:13700/20000 train_loss:2.0323 train_time:596577ms step_avg:43.55ms
step:13780/20000 val_loss:2.0606 val_bpb:1.2172 train_time:600038ms step_avg:43.54ms
stopping_early: wallclock_cap train_time:600038ms step:13780/20000
Serialized model: 67224983 bytes
Code size: 47642 bytes
Total submission size: 67272625 bytes
Serialized model int8+zlib: 15815847 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)
Total submission size int8+zlib: 15863489 bytes
final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2244 eval_time:1401ms
final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22436570
"""

# The script logs print(code) then the separator: one newline more than the file ends with.
BASELINE = (
    SOURCE + "\n" + SEP + "\nRunning Python 3.11.10\nRunning PyTorch 2.6.0+cu124\n" + SMI + SEP + "\n" + BASELINE_RUN
)


def test_baseline_layout_with_embedded_source() -> None:
    facts = parse_log(BASELINE)
    assert facts.layout == "source+stdout"
    assert facts.embedded_source == SOURCE
    assert facts.embedded_source_sha256 == hashlib.sha256(SOURCE.encode()).hexdigest()
    assert facts.lines["embedded_source"] == 1
    assert (facts.seed, facts.world_size, facts.torch_version) == (1337, 8, "2.6.0+cu124")
    assert facts.gpu_names == ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]
    assert (facts.train_shards, facts.val_tokens) == (80, 62021632)
    assert (facts.stopped_early, facts.train_time_ms, facts.last_step, facts.planned_steps) == (
        True,
        600038.0,
        13780,
        20000,
    )
    # The compressed artefact wins over the raw `Serialized model:` / `Total submission size:` lines.
    assert (facts.bytes_code, facts.bytes_model, facts.bytes_total) == (47642, 15815847, 15863489)
    assert facts.score.label == "final_int8_zlib_roundtrip_exact"
    assert facts.score.val_bpb == 1.2243657 and facts.score.val_loss == 2.07269931
    assert facts.score.eval_time_ms == 1401.0  # from its rounded twin
    assert [m.role for m in facts.metrics] == ["in_training", "final", "final"]
    assert facts.hyperparams["iterations"] == "20000" and "warmup_step" not in facts.hyperparams
    assert facts.n_lines == BASELINE.count("\n")
    assert facts.notes == []
    assert BASELINE.splitlines()[facts.lines["seed"] - 1] == "seed:1337"


def test_bare_stdout_with_torchrun_ranks() -> None:
    text = (
        "W0318 14:37:59.159000 871689 site-packages/torch/distributed/run.py:852] *****\n"
        "[rank3]:[W318 14:38:18.835915381 Utils.hpp:112] Warning: Environment variable NCCL_ASYNC_ERROR_HANDLING\n"
        + "".join(f"[rank0]:{line}\n[rank1]:{line}\n" for line in BASELINE_RUN.splitlines())
    )
    facts = parse_log(text)
    assert facts.layout == "torchrun+stdout"
    assert facts.embedded_source is None
    assert len(facts.metrics) == 3  # rank 1's copies are not read
    assert facts.score.val_bpb == 1.2243657
    assert facts.seed == 1337


HPARAM_LOG = f"""{SEP}
Hyperparameters:
  iterations: 20000
  seed: 42
  world_size: 8
  ttt_enabled: True
  eval_only_path: 
import os
import torch

def main():
    pass
{SEP}
Running Python 3.12.3 (main, Mar  3 2026, 12:15:18) [GCC 13.3.0]
Running PyTorch 2.11.0+cu130
{SEP}
train_shards: 143
val_tokens: 45508608
model_params:34401371
gptq:reserving 10s, effective=590000ms
0/20000 val_loss: 8.3169 val_bpb: 3.6144
1/20000 train_loss: 8.3164 train_time: 0.0m tok/s: 8671604
5500/20000 train_loss: 2.5668 train_time: 9.1m tok/s: 7948108
5962/20000 val_loss: 2.5449 val_bpb: 1.1060
stopping_early: wallclock_cap train_time: 590009ms step: 5962/20000
pre-quantization post-ema val_loss:2.54221191 val_bpb:1.10481601 eval_time:1733ms
Serialized model: 132405827 bytes
Code size: 68246 bytes
GPTQ:collecting Hessians from calibration data...
GPTQ:collected 66 Hessians in 8.2s
Serialized model int6+brotli: 15837214 bytes
Total submission size int6+brotli: 15905460 bytes
final_int6_roundtrip val_loss:2.56866205 val_bpb:1.11631094 eval_time:5008ms
final_int6_sliding_window val_loss:2.52641240 val_bpb:1.09794973 eval_time:65201ms
"""  # noqa: W291 -- real logs print an empty hyperparameter as "name: " with its trailing space


def test_hyperparameter_dump_then_source() -> None:
    facts = parse_log(HPARAM_LOG)
    assert facts.layout == "source+hparams"
    assert facts.hyperparams["ttt_enabled"] == "True" and facts.hyperparams["eval_only_path"] == ""
    assert facts.lines["hyperparams.ttt_enabled"] == 6
    assert (facts.seed, facts.world_size, facts.lines["seed"]) == (42, 8, 4)
    assert facts.embedded_source == "import os\nimport torch\n\ndef main():\n    pass"
    assert facts.torch_version == "2.11.0+cu130"
    assert (facts.train_shards, facts.val_tokens) == (143, 45508608)
    assert (facts.gptq_reserve_ms, facts.gptq_hessian_s) == (10000.0, 8.2)
    assert (facts.train_time_ms, facts.last_step, facts.planned_steps) == (590009.0, 5962, 20000)
    roles = {m.label: m.role for m in facts.metrics}
    assert roles["pre-quantization post-ema"] == "pre_quant" and roles["5962/20000"] == "in_training"
    assert facts.score.label == "final_int6_sliding_window"
    assert (facts.score.val_bpb, facts.score.eval_time_ms) == (1.09794973, 65201.0)


def test_source_code_header_layout() -> None:
    # The first source line looks like no Python start: the header alone marks the block.
    body = "PARAMS = {}\nx = 1\n"
    text = f"{SEP}\nHyperparameters:\n  seed: 7\n{SEP}\nSource code:\n{SEP}\n{body}\n"
    text += f"{SEP}\nRunning PyTorch 2.9.1+cu128\n{SEP}\n"
    text += "quantized_ttt_phased val_loss:2.32 val_bpb:1.0612 eval_time:519546ms\n"
    facts = parse_log(text)
    assert facts.layout == "source+hparams"
    assert facts.embedded_source == body
    assert facts.seed == 7 and facts.score.label == "quantized_ttt_phased"


TERNARY_LOG = f""""Ternary training script."
import torch
{SEP}
Python 3.13.12 | packaged by Anaconda, Inc. | (main, Feb 24 2026, 16:13:31) [GCC 14.3.0]
PyTorch 2.10.0+cu128
--- Hyperparameters ---
activation_type=relu2 iterations=10000 seed=1337 train_seq_len=2048
params:73685840 L:10 d:768 h:8 kv:4 ws:8 ga:1 s:1337
warmup:1/5
warmup:5/5
step:1000/10000 loss:3.3139 t:91682ms avg:91.7ms
step:6520/10000 val_loss:3.0100 val_bpb:1.1900 train_time:599128ms
stopping_early: wallclock_cap train_time:599128ms step:6520/10000
artifact:15.92MB ternary:64880640(14245920B) fp:2513744(2537376B) code:70853
budget:15995705/16000000 (16.00/16.00MB) FITS
final_ternary_roundtrip val_loss:3.0577 val_bpb:1.1839
temp_scaling optimal_T:0.90 eval_time:151ms
final_sliding val_loss:2.9877 val_bpb:1.1568 (stride=16, T=0.90) eval_time:428712ms
"""


def test_key_equals_value_dump_and_budget_line() -> None:
    facts = parse_log(TERNARY_LOG)
    assert facts.layout == "source+kv_hparams"
    assert facts.hyperparams["activation_type"] == "relu2" and "warmup" not in facts.hyperparams
    assert (facts.seed, facts.world_size, facts.torch_version) == (1337, 8, "2.10.0+cu128")
    assert (facts.bytes_code, facts.bytes_total) == (70853, 15995705)
    assert facts.bytes_model == 15995705 - 70853
    assert any("bytes_model derived" in msg for _, msg in facts.notes)
    assert facts.metrics[1].label == "final_ternary_roundtrip" and facts.metrics[1].eval_time_ms is None
    assert facts.score.label == "final_sliding"
    assert (facts.score.val_bpb, facts.score.eval_time_ms) == (1.1568, 428712.0)


TIMESTAMPED_LOG = """1776142348.135 W0414 04:52:28.134000 1217 torch/distributed/run.py:803] *****
1776142360.538 Hyperparameters:
1776142360.538   seed: 0
1776142360.538   world_size: 8
1776142360.541   phased_ttt_enabled: True
1776142372.100 train_shards: 128
1776142372.100 val_tokens: 40540160
1776142372.101 gptq:reserving 13s, effective=587000ms
1776142400.000 0/20000 val_loss: 9.0086 val_bpb: 3.4874
1776142990.000 4832/20000 val_loss: 2.7711 val_bpb: 1.0728
1776142990.001 stopping_early: wallclock_cap train_time: 587091ms step: 4832/20000
1776142996.000 diagnostic pre-quantization post-ema val_loss:2.76990528 val_bpb:1.07228209 eval_time:6424ms
1776142997.000 Code size (uncompressed): 139831 bytes
1776142997.000 Code size (compressed): 28599 bytes
1776143010.000 GPTQ:collected 67 Hessians in 12.7s
1776143020.000 Serialized model quantized+brotli: 15968098 bytes
1776143020.000 Total submission size quantized+brotli: 15996697 bytes
1776143080.000 diagnostic quantized val_loss:2.79852399 val_bpb:1.08336093 eval_time:55851ms
1776143233.000 beginning TTT eval timer
1776143300.000 ttp: b778/782 bl:2.7852 bb:1.1142 rl:2.7852 rb:1.1142 dl:7961-8997 gd:0
1776144156.999 quantized_ttt_phased val_loss:2.76951521 val_bpb:1.07216564 eval_time:500104ms
1776144156.999 total_eval_time:500.1s
"""


def test_timestamped_phased_ttt_log() -> None:
    facts = parse_log(TIMESTAMPED_LOG)
    assert facts.layout == "timestamped+torchrun+hparams"
    assert (facts.seed, facts.world_size, facts.lines["seed"]) == (0, 8, 3)
    assert facts.bytes_code == 28599  # the compressed code counts, as the total shows
    assert facts.bytes_total == facts.bytes_code + facts.bytes_model
    assert [m.role for m in facts.metrics] == ["in_training", "in_training", "pre_quant", "diagnostic", "final"]
    assert facts.score.label == "quantized_ttt_phased" and facts.score.val_bpb == 1.07216564
    assert (facts.gptq_reserve_ms, facts.gptq_hessian_s) == (13000.0, 12.7)
    assert facts.notes == []


# ---- score selection ------------------------------------------------------------------

LEGAL_TTT_TAIL = """final_int6_sliding_window val_loss:1.8939 val_bpb:1.1217 stride:64 eval_time:74066ms
final_int6_sliding_window_exact val_loss:1.89385556 val_bpb:1.12165091
final_int8_zlib_roundtrip_exact val_loss:1.89385556 val_bpb:1.12165091
ttt_sliding:start chunks=1893 chunk_tokens=32768 total_windows=969088 stride=64
ttt_sliding:done val_loss=1.889768 val_bpb=1.119230 elapsed=409.8s
legal_ttt val_loss:1.8898 val_bpb:1.1192 eval_time:410268ms
legal_ttt_exact val_loss:1.88976776 val_bpb:1.11922988
"""


@pytest.mark.parametrize(
    ("text", "label", "bpb", "eval_ms"),
    [
        (LEGAL_TTT_TAIL, "legal_ttt_exact", 1.11922988, 410268.0),
        # the int8 line restates the sliding pass: the pass itself, with its time, is the score
        (LEGAL_TTT_TAIL.split("ttt_sliding:start")[0], "final_int6_sliding_window_exact", 1.12165091, 74066.0),
        (
            "final_int6_roundtrip_exact val_loss:1.92248956 val_bpb:1.13860661\n"
            "final_int6_roundtrip val_loss:1.9225 val_bpb:1.1386 eval_time:23007ms\n",
            "final_int6_roundtrip_exact",
            1.13860661,
            None,
        ),
        (
            "quantized val_loss:2.84032998 val_bpb:1.09959307 eval_time:8134ms\n"
            "quantized_sliding_window val_loss:2.79749368 val_bpb:1.08300961 eval_time:82837ms\n",
            "quantized_sliding_window",
            1.08300961,
            82837.0,
        ),
        (
            "final_sliding_window_eval stride:64 val_loss:1.9511 val_bpb:1.1556 eval_time:75096ms\n"
            "final_sliding_window_eval_exact stride:64 val_loss:1.95110428 val_bpb:1.15555486\n",
            "final_sliding_window_eval_exact",
            1.15555486,
            75096.0,
        ),
        (
            "final_int8_zlib_roundtrip sliding val_loss:2.0212 sliding val_bpb:1.1971 eval_time:149579ms\n"
            "final_int8_zlib_roundtrip_exact sliding val_loss:2.02124749 sliding val_bpb:1.19709881\n",
            "final_int8_zlib_roundtrip_exact sliding",
            1.19709881,
            149579.0,
        ),
        (
            "final_int6_sliding_window_exact val_loss:1.89 val_bpb:1.12165091\n"
            "DIAGNOSTIC post_ema val_loss:1.9196 val_bpb:1.1369 eval_time:1971ms\n"
            "diagnostic quantized val_loss:2.3 val_bpb:1.0750 eval_time:9ms\n"
            "pre-quantization post-ema val_loss:2.5 val_bpb:1.0948 eval_time:1733ms\n"
            "step:13780/20000 val_loss:2.0606 val_bpb:1.0172 train_time:600038ms\n",
            "final_int6_sliding_window_exact",
            1.12165091,
            None,
        ),
    ],
    ids=["legal_ttt", "restated_line", "exact_first", "quantized", "eval_stride", "sliding_words", "never_diagnostic"],
)
def test_score_selection(text: str, label: str, bpb: float, eval_ms: float | None) -> None:
    facts = parse_log(text)
    assert facts.score is not None
    assert (facts.score.label, facts.score.val_bpb, facts.score.eval_time_ms) == (label, bpb, eval_ms)


def test_roles_of_non_score_lines() -> None:
    facts = parse_log(LEGAL_TTT_TAIL + "DIAGNOSTIC post_ema val_loss:1.9196 val_bpb:1.1369 eval_time:1971ms\n")
    roles = {m.label: m.role for m in facts.metrics}
    assert roles["ttt_sliding:done"] == "diagnostic"
    assert roles["DIAGNOSTIC post_ema"] == "post_ema"
    assert facts.score.label == "legal_ttt_exact"


# ---- training time --------------------------------------------------------------------


def test_stopping_early_line_beats_last_step() -> None:
    text = (
        "step:13750/20000 train_loss:1.99 train_time:598726ms step_avg:43.54ms\n"
        "stopping_early: wallclock_cap train_time:600038ms step:13780/20000\n"
    )
    facts = parse_log(text)
    assert (facts.stopped_early, facts.train_time_ms, facts.last_step, facts.lines["train_time_ms"]) == (
        True,
        600038.0,
        13780,
        2,
    )


@pytest.mark.parametrize(
    ("line", "ms", "step"),
    [
        ("step:500/1000 train_loss:2.9 train_time:30000ms step_avg:60.00ms", 30000.0, 500),
        ("4500/20000 train_loss: 2.2853 train_time: 8.9m tok/s: 6612382", 534000.0, 4500),
        ("step:1000/10000 loss:3.3139 t:91682ms avg:91.7ms", 91682.0, 1000),
    ],
)
def test_train_time_from_last_step(line: str, ms: float, step: int) -> None:
    facts = parse_log("step:1/1000 train_loss:6.9 train_time:43ms step_avg:43.00ms\n" + line + "\n")
    assert (facts.stopped_early, facts.train_time_ms, facts.last_step, facts.lines["train_time_ms"]) == (
        False,
        ms,
        step,
        2,
    )


# ---- truncated, concatenated, odd and binary input --------------------------------------


def test_log_cut_during_training() -> None:
    facts = parse_log(BASELINE.split("step:13780/20000 val_loss")[0])
    assert facts.score is None and facts.stopped_early is False
    assert any("step 13700 of 20000" in msg for _, msg in facts.notes)


def test_log_cut_inside_a_started_eval_pass() -> None:
    text = LEGAL_TTT_TAIL.split("ttt_sliding:done")[0]
    facts = parse_log(text)
    assert facts.score is None  # the sliding pass before TTT is not the run's score
    assert [line for line, msg in facts.notes if "evaluation pass" in msg] == [4]


def test_concatenated_runs_read_the_last() -> None:
    second = BASELINE.replace("seed:1337", "seed:1338").replace("1.22436570", "1.21000000")
    facts = parse_log(BASELINE + second)
    assert (facts.seed, facts.score.val_bpb) == (1338, 1.21)
    assert facts.score.line > BASELINE.count("\n")
    assert any("run 2" in msg for _, msg in facts.notes)
    cut = parse_log(BASELINE + second.split("stopping_early")[0])
    assert cut.score is None and cut.seed == 1338


def test_comment_line_first_is_not_taken_for_source() -> None:
    facts = parse_log("# launched by run.sh\n" + BASELINE_RUN)
    assert facts.embedded_source is None and facts.layout == "stdout"
    assert (facts.seed, facts.score.val_bpb) == (1337, 1.2243657)


def test_size_arithmetic() -> None:
    both = parse_log("Code size: 100 bytes\nSerialized model int6+lzma: 900 bytes\n")
    assert both.bytes_total == 1000 and any("bytes_total derived" in msg for _, msg in both.notes)
    bad = parse_log(
        "Code size: 100 bytes\nSerialized model int6+lzma: 900 bytes\nTotal submission size int6+lzma: 1200 bytes\n"
    )
    assert bad.bytes_total == 1200 and any("!= total" in msg for _, msg in bad.notes)
    # The counted sizes win whatever the print order: compressed code, compressed model.
    reversed_order = parse_log(
        "Code size (compressed): 28 bytes\nCode size (uncompressed): 139 bytes\n"
        "Serialized model int6+brotli: 72 bytes\nSerialized model: 500 bytes\n"
        "Total submission size int6+brotli: 100 bytes\nTotal submission size: 639 bytes\n"
    )
    assert (reversed_order.bytes_code, reversed_order.bytes_model, reversed_order.bytes_total) == (28, 72, 100)


def test_conflicting_seed_is_noted() -> None:
    facts = parse_log("Hyperparameters:\n  seed: 1\nseed:2\n")
    assert facts.seed == 2 and any("hyperparameter seed=1 at line 2 is 2" in msg for _, msg in facts.notes)
    again = parse_log("seed:1\nseed:2\n")
    assert again.seed == 2 and any("seed read as 1" in msg for _, msg in again.notes)


def test_unknown_layout() -> None:
    facts = parse_log("hello world\nnothing to see here\n")
    assert facts.layout == "unknown" and facts.score is None and facts.seed is None
    assert facts.notes


@pytest.mark.parametrize(
    "data",
    [b"\x00" * 4096, bytes(range(256)) * 64, random.Random(0).randbytes(8192), b"PK\x03\x04" + b"\x00\xff" * 500],
    ids=["nul", "all_bytes", "random", "zip_like"],
)
def test_binary_input(data: bytes) -> None:
    facts = parse_log_bytes(data)
    assert facts.layout == "binary"
    assert facts.notes and facts.score is None and facts.metrics == []
    assert (facts.seed, facts.bytes_total, facts.train_time_ms, facts.embedded_source) == (None, None, None, None)


def test_bytes_and_text_give_the_same_facts() -> None:
    assert parse_log_bytes(BASELINE.encode()) == parse_log(BASELINE)
    assert parse_log_bytes(BASELINE.replace("\n", "\r\n").encode()).score.val_bpb == 1.2243657
    assert parse_log("\x00" * 100).layout == "binary"


@pytest.mark.parametrize("bad", [None, 42, ["seed:1"]])
def test_non_text_input_is_unknown(bad: object) -> None:
    assert parse_log(bad).layout == "unknown"  # type: ignore[arg-type]
    assert parse_log_bytes(bad).layout == "unknown"  # type: ignore[arg-type]


def test_fuzz_never_raises() -> None:
    rng = random.Random(1234)
    texts = [
        "",
        "\n\n\n",
        "\r",
        "step:",
        "seed:",
        "val_bpb:",
        "x" * 100_000,
        "é\u2028\ufeffé\n" * 50,
        SEP,
        f"Source code:\n{SEP}\n",
        "Hyperparameters:\n  a: 1\n  b",
        '"""\nunterminated source',
    ]
    pieces = [BASELINE, HPARAM_LOG, TERNARY_LOG, TIMESTAMPED_LOG, LEGAL_TTT_TAIL]
    for piece in pieces:
        texts += [piece[: rng.randrange(len(piece) + 1)] for _ in range(40)]
        lines = piece.splitlines(keepends=True)
        texts += ["".join(rng.sample(lines, len(lines))) for _ in range(10)]
    texts += ["".join(chr(rng.randrange(1, 0x3000)) for _ in range(2000)) for _ in range(10)]
    for text in texts:
        facts = parse_log(text)
        assert isinstance(facts, LogFacts)
        assert not [msg for _, msg in facts.notes if "parser error" in msg], text[:200]
        assert facts.score is None or facts.score.line <= max(facts.n_lines, 1)
    for _ in range(20):
        assert isinstance(parse_log_bytes(rng.randbytes(rng.randrange(1, 5000))), LogFacts)


@pytest.mark.slow
def test_large_log_parses_in_seconds() -> None:
    steps = "".join(
        f"step:{i}/200000 train_loss:2.5000 train_time:{i * 43}ms step_avg:43.00ms\n" for i in range(1, 150_001)
    )
    text = BASELINE.replace("warmup_step:20/20\n", "warmup_step:20/20\n" + steps)
    assert len(text) > 10_000_000
    start = time.perf_counter()
    facts = parse_log(text)
    elapsed = time.perf_counter() - start
    assert facts.score.val_bpb == 1.2243657
    assert elapsed < 2.0, f"{len(text) / 1e6:.0f} MB took {elapsed:.2f}s"


def test_an_exact_line_with_val_bpb_alone_takes_its_rounded_twins_loss():
    text = (
        "final_int6_zstd-22_roundtrip val_loss:6.9162 val_bpb:2.8794 eval:7176ms\n"
        "final_int6_zstd-22_roundtrip_exact val_bpb:2.87942270\n"
    )
    score = parse_log(text).score
    assert score.label == "final_int6_zstd-22_roundtrip_exact"
    assert (score.val_loss, score.val_bpb) == (6.9162, 2.8794227)


def test_an_exact_line_of_another_pass_takes_no_loss():
    text = "final_roundtrip val_loss:6.9162 val_bpb:2.8794\nfinal_roundtrip_exact val_bpb:2.70000000\n"
    assert parse_log(text).score.val_loss is None
