"""The dynamic run's budget (compliance/dynamic/budget.py) and what a run leaves behind.

The budget reads the ledger while the run goes: a ledger written here in the tracer's format
drives its predictions; a real slow script run through the harness shows the shrink end to end;
failing and hanging scripts show the log's last lines in the finding and keep log and ledger.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from pgolf.compliance.audit import audit
from pgolf.compliance.context import AuditOptions
from pgolf.compliance.dynamic.budget import MIN_TOKENS, Budget, BudgetStop
from pgolf.compliance.dynamic.harness import DynamicOptions
from pgolf.compliance.dynamic.stall import StallWatch

REPO = Path(__file__).resolve().parents[1]
SP1024 = REPO.parent / "shared" / "tokenizers" / "fineweb_1024_bpe.model"
PATTERNS = REPO / "tests" / "fixtures" / "dynamic" / "patterns"
S = 1_000_000_000  # ns


class FakeProcess:
    """Writes one process's ledger as the tracer does: events.jsonl plus positions.bin."""

    def __init__(self, root: Path, t0: int) -> None:
        self.folder = root / "0-100"
        self.folder.mkdir(parents=True)
        self.count, self.t0 = 0, t0
        self._event("start", 0.0)

    def _event(self, kind: str, at_s: float, **fields) -> None:
        with open(self.folder / "events.jsonl", "a") as handle:
            handle.write(json.dumps({"kind": kind, "t": self.t0 + int(at_s * S), **fields}) + "\n")

    def step(self, at_s: float) -> None:
        self._event("step", at_s, canary=False)

    def loss(self, at_s: float, positions) -> None:
        positions = np.asarray(positions, dtype="<i4")
        with open(self.folder / "positions.bin", "ab") as handle:
            handle.write(positions.tobytes())
        self._event("loss", at_s, start=self.count, n=len(positions))
        self.count += len(positions)


def test_the_budget_projects_the_pass_under_way_and_sizes_a_smaller_canary(tmp_path):
    budget = Budget(tmp_path, cap_s=80, tokens=16384)
    proc = FakeProcess(tmp_path, budget.spawn_ns)
    proc.step(1.0)
    proc.step(3.0)  # a 2 s training step
    for i in range(4):  # windows of 1024 targets every 6.25 s: a 100 s pass
        proc.loss(5.0 + 6.25 * i, range(1 + 1024 * i, 1 + 1024 * (i + 1)))
    budget.read()
    assert budget.projected_end_s() == pytest.approx(23.75 + 12288 / (3072 / 18.75))
    with pytest.raises(BudgetStop) as stop:
        budget.tick(24.0)
    tokens = stop.value.tokens
    assert MIN_TOKENS <= tokens < 16384 and tokens % 2048 == 0
    summary = budget.summary()
    assert summary["train_step_s"] == 2.0 and summary["first_eval_window_s"] == 6.25
    assert summary["first_eval_window_targets"] == 1024 and summary["eval_start_s"] == 5.0
    assert summary["predictions"][-1]["projected_s"] == pytest.approx(98.8, abs=0.1)


def test_a_pass_that_fits_is_left_alone_and_a_new_pass_is_seen(tmp_path):
    budget = Budget(tmp_path, cap_s=1000, tokens=8192)
    proc = FakeProcess(tmp_path, budget.spawn_ns)
    for i in range(8):
        proc.loss(10.0 + i, range(1 + 1024 * i, 1 + 1024 * (i + 1)))
    proc.loss(20.0, range(1, 1025))  # back to the start: a second pass
    proc.loss(21.0, range(1025, 2049))
    budget.tick(22.0)
    assert budget.summary()["passes_seen"] == 2 and budget.projected_end_s() == pytest.approx(27.0)


def test_passes_that_repeat_count_the_literal_epochs_still_to_come(tmp_path):
    """A pre-eval TTT loop of 15 epochs no knob bounds: once the second pass starts, the other 13 (and
    the scoring pass) are counted in at the pace measured."""
    budget = Budget(tmp_path, cap_s=1000, tokens=8192, passes_hint=15)
    proc = FakeProcess(tmp_path, budget.spawn_ns)
    for epoch in range(2):
        for i in range(8):
            proc.loss(10.0 + 8 * epoch + i, range(1 + 1024 * i, 1 + 1024 * (i + 1)))
    budget.read()
    assert budget.summary()["passes_seen"] == 2
    assert budget.projected_end_s() == pytest.approx(25.0 + 14 * 8)  # 13 epochs and the scoring pass


def test_no_canary_smaller_than_two_sequences_is_tried(tmp_path):
    budget = Budget(tmp_path, cap_s=30, tokens=8192)
    proc = FakeProcess(tmp_path, budget.spawn_ns)
    for i in range(3):
        proc.loss(20.0 + 5 * i, range(1 + 1024 * i, 1 + 1024 * (i + 1)))
    budget.tick(31.0)  # hopeless: too little of the cap left for any smaller canary; no stop
    assert budget.projected_end_s() > 30 and budget.shrunk_tokens(31.0) is None


# ---------------------------------------------------------------- real runs through the harness


@pytest.fixture(scope="module")
def official_data(tmp_path_factory) -> Path:
    if not SP1024.is_file():
        pytest.skip(f"{SP1024} not found (../shared beside the checkout)")
    out = tmp_path_factory.mktemp("sp1024")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from pgolf.pipeline.cli import main; main()",
            "data",
            "synth",
            "--out",
            str(out),
            "--max-chars",
            "1500000",
            "--tokenizer",
            str(SP1024),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def _check(script: Path, data: Path, **options):
    dyn = DynamicOptions(data=data, preset=False, threads=1, **options)  # one thread: see test_dynamic.py
    report = audit([str(script)], AuditOptions(ruleset="dynamic", dynamic=dyn))
    assert report.error is None, report.error
    return report.records[0]


def test_a_run_too_slow_for_the_cap_finishes_on_a_smaller_canary(official_data, tmp_path):
    """The evaluation's pace is a sleep (3.5 s a window, 224 s for 64 windows), not the machine's speed;
    what the machine's load moves is the start-up S before it. A 210 s cap is passed by the full canary
    whatever S is, and leaves a 4096-token canary room after the stopped attempt while S stays under
    about 50 s (two start-ups, the 5% of a pass seen first, and 1.5x the smaller evaluation)."""
    record = _check(
        PATTERNS / "legal_slow_eval.py",
        official_data,
        cap_s=210,
        workdir=tmp_path / "keep",
        env={"TRAIN_STEPS": "2", "EVAL_SECONDS_PER_WINDOW": "3.5"},
    )
    shown = [f"{f.rule} {f.severity}: {f.message[:300]}" for f in record.findings]
    assert record.verdict == "pass", shown
    run = next(f for f in record.findings if f.rule == "R-DYN-RUN" and f.message.startswith("traced run"))
    attempts = run.evidence["attempts"]
    assert attempts[0]["status"] == "shrunk" and attempts[-1]["status"] == "ok", attempts
    assert attempts[-1]["tokens"] < attempts[0]["tokens"] == 16384
    assert run.evidence["targets"] == attempts[-1]["tokens"] and run.evidence["wall_s"] <= 210 + 15
    assert "was stopped after" in run.message and run.evidence["budget"]["first_eval_window_s"] > 2
    assert (tmp_path / "keep" / "attempt-1" / "run.log").is_file()  # the stopped attempt's log stays
    assert (tmp_path / "keep" / "attempt-1" / "ledger").is_dir()
    canary = next(f for f in record.findings if f.rule == "R-DYN-CANARY")
    assert canary.evidence["canary_targets"] == attempts[-1]["tokens"]


FAILING = """
import sys
for i in range(30):
    print(f"line {i}")
print("colour \\x1b[31mred\\x1b[0m")
sys.exit(7)
"""


def test_a_failed_run_shows_its_last_20_lines_escaped_and_keeps_its_log(official_data, tmp_path):
    script = tmp_path / "src" / "fails.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(FAILING))
    record = _check(script, official_data, cap_s=600, workdir=tmp_path / "keep")  # the cap: a hang guard
    run = next(f for f in record.findings if f.rule == "R-DYN-RUN" and "did not finish" in f.message)
    lines = [line for line in run.message.splitlines() if line.startswith("    | ")]
    assert len(lines) == 20 and lines[0].endswith("line 11") and "exit 7" in run.message
    assert "\x1b" not in run.message and "\\x1b[31mred" in lines[-1]
    assert str(tmp_path / "keep") in run.message and (tmp_path / "keep" / "run.log").is_file()
    assert record.verdict == "review"


def test_a_run_killed_at_the_cap_still_shows_its_log_without_keep(official_data, tmp_path):
    script = tmp_path / "src" / "hangs.py"
    script.parent.mkdir()
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    record = _check(script, official_data, cap_s=30)  # 'started' is printed well within it, loaded or not
    run = next(f for f in record.findings if f.rule == "R-DYN-RUN" and "did not finish" in f.message)
    assert "killed at its" in run.message and "    | started" in run.message and "--keep" in run.message
    assert "the script's last output" in run.message and "before the end: `started`" in run.message, run.message
    assert math.isfinite(run.evidence["wall_s"]) and run.evidence["wall_s"] < 600  # killed, not slept out


# ---------------------------------------------------------------- a run that waits on itself


def _beats(watch: StallWatch, name: str, until_s: float, cpu_per_s: float, work_at: float | None = 0.0) -> None:
    if work_at is not None:
        watch.event(name, {"kind": "step", "t": int(work_at * S)})
    for second in range(1, int(until_s) + 1, 10):
        watch.event(name, {"kind": "beat", "t": second * S, "cpu_s": 5.0 + cpu_per_s * second})


def test_working_processes_that_beat_without_cpu_have_stalled():
    watch = StallWatch(stall_s=90.0)
    _beats(watch, "0-11", 120, cpu_per_s=0.001)
    _beats(watch, "1-12", 120, cpu_per_s=0.0)
    _beats(watch, "0-7", 120, cpu_per_s=0.0, work_at=None)  # the launcher never works: not counted
    assert watch.stalled() is not None and "2 working process(es)" in cast(str, watch.stalled())


@pytest.mark.parametrize(
    "why",
    ["one rank still computes", "beats stopped (the GIL held in a C call)", "traced work came lately", "too short"],
)
def test_a_run_that_may_still_move_has_not_stalled(why):
    watch = StallWatch(stall_s=90.0)
    _beats(watch, "0-11", 120, cpu_per_s=0.0)
    if why == "one rank still computes":
        _beats(watch, "1-12", 120, cpu_per_s=0.9)
    elif why == "beats stopped (the GIL held in a C call)":
        _beats(watch, "1-12", 60, cpu_per_s=0.0)
        watch.event("0-11", {"kind": "beat", "t": 200 * S, "cpu_s": 5.0})
    elif why == "traced work came lately":
        watch.event("0-11", {"kind": "loss", "t": 95 * S})
    else:
        watch = StallWatch(stall_s=150.0)
        _beats(watch, "0-11", 120, cpu_per_s=0.0)
    assert watch.stalled() is None


WAITS_ON_ITSELF = """
import threading, torch
weight = torch.nn.Parameter(torch.zeros(4))
opt = torch.optim.SGD([weight], lr=0.1)
(weight * 2).sum().backward()
opt.step()
print("stepped; now waiting for a peer that never comes", flush=True)
threading.Event().wait()
"""


def test_a_run_that_waits_on_itself_is_stopped_as_stalled_before_the_cap(official_data, tmp_path):
    script = tmp_path / "src" / "waits.py"
    script.parent.mkdir()
    script.write_text(WAITS_ON_ITSELF)
    record = _check(script, official_data, cap_s=300, stall_s=6.0)
    run = next(f for f in record.findings if f.rule == "R-DYN-RUN" and "did not finish" in f.message)
    assert "stalled:" in run.message and "waiting on each other" in run.message, run.message
    assert "    | stepped; now waiting" in run.message and record.verdict == "review"
    assert run.evidence["wall_s"] < 120  # stopped when the stall showed, not at the 300 s cap


WAITS_ON_A_BUSY_CHILD = """
import subprocess, sys, torch
weight = torch.nn.Parameter(torch.zeros(4))
opt = torch.optim.SGD([weight], lr=0.1)
(weight * 2).sum().backward()
opt.step()
busy = "import time\\nt = time.time()\\nwhile time.time() - t < 15: pass"
subprocess.run([sys.executable, "-c", busy], check=True)  # as a rank waits on the compressor it started
print("the child is done", flush=True)
"""


def test_a_process_waiting_on_a_busy_child_is_not_stalled(official_data, tmp_path):
    script = tmp_path / "src" / "compresses.py"
    script.parent.mkdir()
    script.write_text(WAITS_ON_A_BUSY_CHILD)
    record = _check(script, official_data, cap_s=300, stall_s=6.0)
    messages = [f.message for f in record.findings if f.rule == "R-DYN-RUN"]
    assert not any("stalled" in m or "did not finish" in m for m in messages), messages
