"""End-to-end tests of the bundled reference submission (pipeline/reference/train_gpt.py).

The script is a `__main__` program driven by environment variables, so it is always run as a
subprocess, stage by stage, on tiny shards tokenized here from real text with the official
SentencePiece model.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TOKENIZER = SHARED / "tokenizers" / "fineweb_1024_bpe.model"
SCRIPT = REPO / "pipeline" / "reference" / "train_gpt.py"

# Small enough for a 2-core machine; the README's tiny preset is a little larger.
TINY = {
    "NUM_LAYERS": "2",
    "MODEL_DIM": "64",
    "NUM_HEADS": "4",
    "NUM_KV_HEADS": "2",
    "MLP_MULT": "2",
    "TRAIN_SEQ_LEN": "128",
    "TRAIN_BATCH_TOKENS": "4096",
    "GRAD_ACCUM_STEPS": "1",
    "ITERATIONS": "40",
    "LR": "5e-3",
    "WARMUP_ITERS": "5",
    "WARMDOWN_ITERS": "10",
    "TRAIN_LOG_EVERY": "10",
    "VAL_BATCH_TOKENS": "8192",
    "OMP_NUM_THREADS": "1",
}
SEQ_LEN = int(TINY["TRAIN_SEQ_LEN"])
FINAL_RE = re.compile(r"^(\S+) val_loss:(\d+\.\d{8}) val_bpb:(\d+\.\d{8})$", re.M)

pytestmark = pytest.mark.skipif(
    not TOKENIZER.is_file(), reason=f"official tokenizer not found at {TOKENIZER} (../shared absent)"
)


# ----------------------------------------------------------------------------- helpers


def write_shard(path: Path, tokens: list[int]) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype="<u2").tobytes())


def read_shard(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<u2", offset=1024)


def load_sp():
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(TOKENIZER))


def documents() -> list[str]:
    """Paragraphs of the Python language reference, shipped with Python itself."""
    from pydoc_data.topics import topics

    paras = (re.sub(r"\s+", " ", p).strip() for text in topics.values() for p in text.split("\n\n"))
    return [p for p in paras if len(p) > 40]


def target_bytes(sp, prev: int, cur: int) -> int:
    """RULES.md section 6, written out token by token (independent of the script's tables)."""

    def boundary(i: int) -> bool:
        return sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i)

    if boundary(cur):
        return 0
    if sp.is_byte(cur):
        return 1
    piece = sp.id_to_piece(cur)
    lead = piece.startswith("\u2581")
    n = len((piece[1:] if lead else piece).encode("utf-8"))
    return n + int(lead and not boundary(prev))


def clean_env(**extra: str) -> dict[str, str]:
    knobs = set(TINY) | {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "SEED",
        "TTT_ENABLED",
        "QUANT_BITS",
        "COMPRESSOR",
    }
    env = {k: v for k, v in os.environ.items() if k not in knobs and not k.startswith("PGOLF_")}
    return {**env, **TINY, **extra}


def run_script(env: dict[str, str], nproc: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(launcher + [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def finals(log: str) -> list[tuple[str, float, float]]:
    return [(m[1], float(m[2]), float(m[3])) for m in FINAL_RE.finditer(log)]


# ----------------------------------------------------------------------------- fixtures


@dataclass
class Data:
    root: Path
    train: Path
    val: Path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
    """Two train and two val shards; every tenth paragraph is held out for validation."""
    root = tmp_path_factory.mktemp("reference")
    sp = load_sp()
    docs = sp.encode(documents())
    train = [t for i, d in enumerate(docs) if i % 10 for t in [1] + d]
    val = [t for i, d in enumerate(docs) if i % 10 == 0 for t in [1] + d]
    out = Data(root, root / "train", root / "val")
    for kind, tokens, folder in (("train", train, out.train), ("val", val, out.val)):
        folder.mkdir()
        half = len(tokens) // 2
        write_shard(folder / f"fineweb_{kind}_000000.bin", tokens[:half])
        write_shard(folder / f"fineweb_{kind}_000001.bin", tokens[half:])
    return out


def stage_env(data: Data, run: Path, stage: str, **extra: str) -> dict[str, str]:
    return clean_env(
        PGOLF_STAGE=stage,
        PGOLF_TRAIN_DATA=str(run / "train"),
        PGOLF_VAL_DATA=str(data.val),
        PGOLF_TOKENIZER=str(TOKENIZER),
        PGOLF_CHECKPOINT=str(run / "ckpt.pt"),
        PGOLF_ARTIFACT=str(run / "model.ptz"),
        PGOLF_RESULT=str(run / "result.json"),
        **extra,
    )


@dataclass
class Staged:
    run: Path
    logs: dict[str, str]
    result: dict


@pytest.fixture(scope="module")
def staged(data: Data) -> Staged:
    """train -> quantize -> eval, with the train data and checkpoint deleted before eval."""
    run = data.root / "staged"
    run.mkdir()
    shutil.copytree(data.train, run / "train")
    logs = {s: ok(run_script(stage_env(data, run, s))) for s in ("train", "quantize")}
    shutil.rmtree(run / "train")
    (run / "ckpt.pt").unlink()
    logs["eval"] = ok(run_script(stage_env(data, run, "eval")))
    return Staged(run, logs, json.loads((run / "result.json").read_text()))


# ----------------------------------------------------------------------------- tests


def test_train_log_lines(staged: Staged):
    log = staged.logs["train"]
    assert "Hyperparameters:\n" in log and "\n  num_layers: 2\n" in log
    for line in ("seed:1337", "world_size:1", "train_shards:2"):
        assert f"\n{line}\n" in log
    assert re.search(r"^torch:\d+\.\d+", log, re.M)
    steps = re.findall(r"^step:(\d+)/40 train_loss:(\d+\.\d+) train_time:\d+ms step_avg:[\d.]+ms$", log, re.M)
    assert steps[-1][0] == "40"
    assert float(steps[-1][1]) < float(steps[0][1]) - 1.0  # it learns
    assert "stopping_early" not in log


def test_quantize_sizes_match_files(staged: Staged):
    log = staged.logs["quantize"]
    model = int(re.search(r"^Serialized model int8\+zstd: (\d+) bytes", log, re.M)[1])
    code = int(re.search(r"^Code size: (\d+) bytes$", log, re.M)[1])
    total = int(re.search(r"^Total submission size int8\+zstd: (\d+) bytes$", log, re.M)[1])
    assert model == (staged.run / "model.ptz").stat().st_size
    assert code == len(SCRIPT.read_bytes())
    assert total == model + code


def test_eval_result_and_final_line(staged: Staged):
    res, log = staged.result, staged.logs["eval"]
    assert set(res) == {"val_loss", "val_bpb", "val_tokens", "val_bytes", "eval_time_ms", "metric_label"}
    assert res["metric_label"] == "final_int8_zstd_roundtrip_exact"
    assert finals(log) == [(res["metric_label"], round(res["val_loss"], 8), round(res["val_bpb"], 8))]
    assert log.rstrip().splitlines()[-1].startswith("eval_time:")
    assert re.search(rf"^val_tokens:{res['val_tokens']}$", log, re.M)
    # better than a uniform guess over the vocabulary, so the trained weights survived the round trip
    assert res["val_loss"] < math.log(1024) - 0.5
    bpb = res["val_loss"] * res["val_tokens"] / (math.log(2) * res["val_bytes"])
    assert res["val_bpb"] == pytest.approx(bpb, rel=1e-12)


def test_eval_needs_no_train_data_or_checkpoint(staged: Staged):
    assert not (staged.run / "train").exists() and not (staged.run / "ckpt.pt").exists()
    assert "stage:eval" in staged.logs["eval"] and "train_shards" not in staged.logs["eval"]


def test_val_bytes_match_independent_recount(data: Data, staged: Staged):
    sp = load_sp()
    tokens = np.concatenate([read_shard(p) for p in sorted(data.val.glob("fineweb_val_*.bin"))])
    n = (len(tokens) - 1) // SEQ_LEN * SEQ_LEN
    x, y = tokens[:n].tolist(), tokens[1 : n + 1].tolist()
    assert staged.result["val_tokens"] == n
    assert staged.result["val_bytes"] == sum(target_bytes(sp, a, b) for a, b in zip(x, y, strict=True))


def test_recount_rule_equals_utf8_length():
    """The test's own byte rule reproduces the text length wherever nothing maps to <unk>."""
    sp = load_sp()
    checked = 0
    for ids in sp.encode(documents()[:300]):
        if sp.unk_id() in ids:
            continue
        seq = [sp.bos_id()] + ids
        counted = sum(target_bytes(sp, a, b) for a, b in pairwise(seq))
        assert counted == len(sp.decode(ids).encode("utf-8"))
        checked += 1
    assert checked > 20


def test_ttt_is_score_first(data: Data, staged: Staged):
    plain = staged.result
    log = ok(
        run_script(
            stage_env(data, staged.run, "eval", TTT_ENABLED="1", TTT_CHUNK_TOKENS=str(8 * SEQ_LEN), TTT_LR="0.05")
        )
    )
    labels = [f[0] for f in finals(log)]
    assert labels == ["final_int8_zstd_roundtrip_exact", "legal_ttt_exact"]
    ttt = json.loads((staged.run / "result.json").read_text())
    assert ttt["metric_label"] == "legal_ttt_exact"
    assert (ttt["val_tokens"], ttt["val_bytes"]) == (plain["val_tokens"], plain["val_bytes"])
    assert ttt["val_loss"] != plain["val_loss"]  # it adapted
    # One chunk covering all of validation is scored before any update and never trained on.
    log = ok(
        run_script(stage_env(data, staged.run, "eval", TTT_ENABLED="1", TTT_CHUNK_TOKENS="100000000", TTT_LR="0.05"))
    )
    (_, l0, b0), (_, l1, b1) = finals(log)
    assert (l1, b1) == (l0, b0) == (round(plain["val_loss"], 8), round(plain["val_bpb"], 8))


def test_standalone_int6_brotli(data: Data):
    run = data.root / "standalone"
    run.mkdir()
    shutil.copytree(data.train, run / "train")
    log = ok(run_script(stage_env(data, run, "", QUANT_BITS="6", COMPRESSOR="brotli", ITERATIONS="10")))
    assert [s for s in re.findall(r"^stage:(\w+)$", log, re.M)] == ["train", "quantize", "eval"]
    assert re.search(r"^Total submission size int6\+brotli: \d+ bytes$", log, re.M)
    assert [f[0] for f in finals(log)] == ["final_int6_brotli_roundtrip_exact"]
    assert json.loads((run / "result.json").read_text())["metric_label"] == "final_int6_brotli_roundtrip_exact"


def test_wallclock_cap_stops_early(data: Data):
    run = data.root / "capped"
    run.mkdir()
    shutil.copytree(data.train, run / "train")
    log = ok(run_script(stage_env(data, run, "train", ITERATIONS="100000", PGOLF_TRAIN_BUDGET_S="3")))
    m = re.search(r"^stopping_early: wallclock_cap train_time:(\d+)ms step:(\d+)/100000$", log, re.M)
    assert m and 0 < int(m[2]) < 100000
    step_avg = float(re.findall(r"step_avg:([\d.]+)ms", log)[-1])
    assert int(m[1]) <= 3000 + 2 * step_avg  # it stops before a step that would overrun
    assert (run / "ckpt.pt").is_file()


def test_bad_input_is_one_line_error(data: Data):
    run = data.root / "bad"
    run.mkdir()
    for extra in ({"PGOLF_STAGE": "bogus"}, {"QUANT_BITS": "4"}, {"PGOLF_STAGE": "eval"}):
        proc = run_script({**stage_env(data, run, "eval"), **extra})
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_torchrun_two_processes(data: Data, staged: Staged):
    run = data.root / "ddp"
    run.mkdir()
    shutil.copytree(data.train, run / "train")
    log = ok(run_script(stage_env(data, run, "train", ITERATIONS="10"), nproc=2))
    assert "\nworld_size:2\n" in log and re.search(r"^step:10/10 train_loss:", log, re.M)
    assert (run / "ckpt.pt").is_file()
    # Two ranks scoring the staged artifact split the sequences and agree with one process.
    shutil.copy(staged.run / "model.ptz", run / "model.ptz")
    ok(run_script(stage_env(data, run, "eval"), nproc=2))
    res = json.loads((run / "result.json").read_text())
    assert (res["val_tokens"], res["val_bytes"]) == (staged.result["val_tokens"], staged.result["val_bytes"])
    assert res["val_loss"] == pytest.approx(staged.result["val_loss"], abs=1e-6)
