"""compliance.progress: the one display of long tasks (stages, the dynamic run, data builds)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from pgolf.compliance import progress as progress_mod
from pgolf.compliance.progress import Progress, last_log_line
from pgolf.compliance.sandbox import LocalRuntime, StageSpec


def test_piped_progress_is_plain_sparse_and_escaped(tmp_path, monkeypatch):
    log = tmp_path / "train.log"
    log.write_text("pgolf: stage train seed 1\nstep:250/1000 train_loss:2.5\x1b]0;title\x07\n")
    out = io.StringIO()
    p = Progress(out)
    with p.task("seed 1/3 (seed=42) train", kind="train", cap_s=600, log_path=log) as task:
        for second in range(1, 200):
            task.tick(float(second))
        task.finish("ok")
    text = out.getvalue()
    lines = text.splitlines()
    assert "\x1b" not in text.replace("\\x1b", "") and "\x07" not in text
    assert lines[0] == f"pgolf: seed 1/3 (seed=42) train started, cap 600 s, log {log}"
    periodic = lines[1:-1]
    assert len(periodic) == 3  # at 30, 60 and 120 s, not every second
    assert "ETA 90 s" in periodic[0]  # 30 s for a quarter of the steps: 90 s to go
    assert "step:250/1000 train_loss:2.5\\x1b]0;title\\x07" in periodic[0]
    assert f"log {log}" in periodic[0] and "30 s / 600 s cap" in periodic[0]
    assert lines[-1].startswith("pgolf: seed 1/3 (seed=42) train ok in ")
    assert p.durations["train"] == pytest.approx(199, abs=1)


def test_eta_from_the_previous_task_of_its_kind_else_the_cap():
    p = Progress(io.StringIO())
    with p.task("seed 1/2 eval", kind="eval", cap_s=120) as first:
        first.tick(10.0)
        assert first.eta() == (110.0, False)  # only the cap's bound
        first.finish("ok")
    p.durations["eval"] = 40.0
    with p.task("seed 2/2 eval", kind="eval", cap_s=120) as second:
        second.tick(10.0)
        assert second.eta() == (30.0, True)
        assert "ETA 30 s" in second.status()


def test_transfers_have_a_byte_eta_and_one_task_per_file():
    out = io.StringIO()
    p = Progress(out)
    p.transfer("shard 0", 0, 200_000_000)
    task = p._transfer
    task.started -= 40
    p.transfer("shard 0", 50_000_000, 200_000_000)
    assert task.eta()[1] and 110 < task.eta()[0] < 130
    assert "50.0 MB of 200.0 MB" in task.status()
    p.transfer("shard 0", 200_000_000, 200_000_000)
    p.transfer("shard 1", 10, None)
    p.transfer("manifest", 5, 5)
    finished = [line for line in out.getvalue().splitlines() if " done in " in line]
    assert [line.split(" done")[0] for line in finished] == ["pgolf: shard 0", "pgolf: shard 1", "pgolf: manifest"]


def test_a_live_terminal_gets_one_line_that_is_replaced(tmp_path):
    out = io.StringIO()
    p = Progress(out, live=True, color_mode="never")
    log = tmp_path / "l.log"
    log.write_text("step:1/4\n")
    with p.task("dynamic: train_gpt.py", cap_s=60, log_path=log) as task:
        for second in (1.0, 2.0, 3.0):
            task._last_draw = 0.0
            task.tick(second)
        task.finish("ok")
    text = out.getvalue()
    assert "dynamic: train_gpt.py · 3 s / 60 s cap · ETA 9 s · step:1/4" in text
    assert "\r\x1b[2K" in text and text.count("\n") == 2  # redrawn in place, one line (cut to the width)
    assert text.rstrip().endswith("\x1b[2Kpgolf: dynamic: train_gpt.py ok in 3 s (cap 60 s)")
    assert "\x1b[3" not in text  # no colour with --color never


def test_an_interrupted_task_says_so():
    out = io.StringIO()
    p = Progress(out)
    with pytest.raises(KeyboardInterrupt):
        with p.task("seed 1/1 train", kind="train"):
            raise KeyboardInterrupt
    assert out.getvalue().splitlines()[-1].startswith("pgolf: seed 1/1 train interrupted in ")
    assert "train" not in p.durations


def test_last_log_line_reads_the_tail_only(tmp_path):
    log = tmp_path / "big.log"
    log.write_bytes(b"x" * 10_000_000 + b"\nstep:9/10\r\rprogress 50%\rprogress 100%\npgolf: stage done\n\n")
    assert last_log_line(log) == "progress 100%"
    assert last_log_line(tmp_path / "missing.log") is None


def test_a_runtime_drives_the_task(tmp_path):
    out = io.StringIO()
    p = Progress(out)
    script = "import time\nfor i in range(1, 4):\n    print(f'step:{i}/3', flush=True); time.sleep(0.4)\n"
    spec = StageSpec(
        name="train",
        argv=[sys.executable, "-c", script],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        cap_s=30,
        log_path=tmp_path / "stage.log",
        grace_s=1,
    )
    with p.task("seed 1/1 train", kind="train", cap_s=30, log_path=spec.log_path) as task:
        result = LocalRuntime().run(spec, task.tick)
        task.finish(result.status)
    assert result.ok and task.detail == "step:3/3"
    assert out.getvalue().splitlines()[-1].startswith("pgolf: seed 1/1 train ok in ")


def test_there_is_one_progress_module():
    root = Path(progress_mod.__file__).resolve().parents[1]
    assert not (root / "pipeline" / "progress.py").exists()
    for path in list((root / "pipeline").rglob("*.py")) + list((root / "compliance").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name == "progress.py":
            continue
        assert "\\r\\x1b[K" not in text and "\\r\\033[K" not in text, f"{path}: a hand-written progress line"
