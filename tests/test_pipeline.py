"""The submit pipeline on small contract scripts: caps enforced from outside, resume, records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pgolf.compliance.audit import audit
from pgolf.compliance.context import AuditOptions
from pgolf.compliance.progress import Progress
from pgolf.compliance.sandbox import LocalRuntime
from pgolf.compliance.shards import write_shard
from pgolf.pipeline.profiles import get_profile
from pgolf.pipeline.record_writer import RecordMeta
from pgolf.pipeline.seed_run import SeedOutcome
from pgolf.pipeline.stages import DataPaths
from pgolf.pipeline.submit import SubmitRequest, dynamic_cap_s, submit

FIXTURE = Path(__file__).parent / "fixtures" / "pipeline" / "contract_script.py"
SP1024 = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "fineweb_1024_bpe.model"


@pytest.fixture
def data(tmp_path) -> DataPaths:
    folder = tmp_path / "data"
    folder.mkdir()
    tokens = np.ones(64, dtype=np.uint16)
    write_shard(folder / "fineweb_train_000000.bin", tokens)
    write_shard(folder / "fineweb_val_000000.bin", tokens)
    (folder / "tok.model").write_bytes(b"model")
    return DataPaths(train=folder, val=folder, tokenizer=folder / "tok.model")


def request(tmp_path, data, seeds=(1, 2, 3), **profile_changes) -> SubmitRequest:
    """cpu-smoke, uncalibrated unless a test asks (its caps are then exactly the ruleset's)."""
    profile = replace(get_profile("cpu-smoke"), grace_s=1, **{"calibration_reference_s": None, **profile_changes})
    meta = RecordMeta(
        name="fixture", author="t", github_id="t", blurb="b", profile=profile, commands=["x"], day="2026-05-01"
    )
    return SubmitRequest(
        script=FIXTURE,
        seeds=list(seeds),
        profile=profile,
        data=data,
        runtime=LocalRuntime(),
        work_dir=tmp_path / "runs",
        records_dir=tmp_path / "records",
        meta=meta,
        dynamic=False,
    )  # the dynamic step has its own tests (tests/test_dynamic.py)


def outcome(tmp_path, seed) -> dict:
    return json.loads((tmp_path / "runs" / f"seed_{seed}" / "outcome.json").read_text())


def test_seeds_become_a_record_that_passes_the_check(tmp_path, data):
    assert submit(request(tmp_path, data), Progress()) == 0
    folder = tmp_path / "records" / "track_cpu_smoke" / "2026-05-01_fixture"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "README.md",
        "provenance.json",
        "requirements.txt",
        "submission.json",
        "train_gpt.py",
        "train_seed1.log",
        "train_seed2.log",
        "train_seed3.log",
    ]
    sub = json.loads((folder / "submission.json").read_text())
    per_seed = [sub["seed_results"][str(s)]["val_bpb"] for s in (1, 2, 3)]
    assert sub["val_bpb"] == pytest.approx(sum(per_seed) / 3, abs=1e-8)
    assert sub["bytes_total"] == 1000 + FIXTURE.stat().st_size
    assert audit([str(folder)], AuditOptions()).verdict == "pass"


def test_train_over_its_cap_is_killed_and_the_seed_fails_with_its_time(tmp_path, data, monkeypatch):
    monkeypatch.setenv("FIX_TRAIN_SLEEP", "30")
    started = time.monotonic()
    assert submit(request(tmp_path, data, seeds=(1,), train_cap_s=2), Progress()) == 1
    assert time.monotonic() - started < 20
    result = outcome(tmp_path, 1)
    assert result["status"] == "failed" and result["reason"].startswith("train killed at 2.")
    assert result["stages"][0]["status"] == "timeout"
    assert not (tmp_path / "records").exists()


def test_artifact_over_the_byte_cap_fails(tmp_path, data, monkeypatch):
    monkeypatch.setenv("FIX_ARTIFACT_BYTES", "5000")
    assert submit(request(tmp_path, data, seeds=(1,), max_bytes=4000), Progress()) == 1
    result = outcome(tmp_path, 1)
    assert "over the 4,000-byte cap" in result["reason"] and result["bytes_artifact"] == 5000


def test_eval_stage_finds_no_training_data(tmp_path, data, monkeypatch):
    monkeypatch.setenv("PGOLF_TRAIN_DATA", str(data.train))  # a caller's variable must not leak in
    assert submit(request(tmp_path, data), Progress()) == 0
    result = json.loads((tmp_path / "runs" / "seed_1" / "eval" / "result.json").read_text())
    assert result["env"] == ["PGOLF_ARTIFACT", "PGOLF_RESULT", "PGOLF_STAGE", "PGOLF_TOKENIZER", "PGOLF_VAL_DATA"]
    assert not any("fineweb_train" in p or "checkpoint" in p for p in result["seen"])
    assert any("fineweb_val_000000.bin" in p for p in result["seen"])


def test_interrupted_submit_resumes_without_rerunning_finished_seeds(tmp_path, data):
    argv = [
        sys.executable,
        "-c",
        "from pgolf.pipeline.cli import main; main()",
        "submit",
        "--no-dynamic",
        "--script",
        str(FIXTURE),
        "--seeds",
        "1 2 3",
        "--name",
        "resume",
        "--train-data",
        str(data.train),
        "--val-data",
        str(data.val),
        "--tokenizer",
        str(data.tokenizer),
        "--records-dir",
        str(tmp_path / "records"),
        "--work-dir",
        str(tmp_path / "runs"),
        "--set",
        "FIX_TRAIN_SLEEP=2",
    ]  # the sandbox passes pgolf's knobs, not the caller's environment
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seed2 = tmp_path / "runs" / "seed_2"
    deadline = time.monotonic() + 60
    while not seed2.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "Traceback" not in err
    done_at = (tmp_path / "runs" / "seed_1" / "outcome.json").stat().st_mtime_ns
    assert not (seed2 / "outcome.json").exists()

    second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "seed 1/3 (seed=1) already finished" in second.stderr
    assert "seed 2/3 (seed=2) train started" in second.stderr
    assert (tmp_path / "runs" / "seed_1" / "outcome.json").stat().st_mtime_ns == done_at
    sub = json.loads(next((tmp_path / "records").rglob("submission.json")).read_text())
    assert sub["seeds"] == [1, 2, 3]


def test_existing_record_needs_force(tmp_path, data):
    req = request(tmp_path, data, seeds=(1, 2, 3))
    assert submit(req, Progress()) == 0
    from pgolf.pipeline.record_writer import RecordExists

    with pytest.raises(RecordExists):
        submit(req, Progress())
    assert submit(replace(req, force=True), Progress()) == 0


def test_code_packed_as_a_wrapper_is_counted_and_recorded(tmp_path, data):
    from pgolf.compliance.unpack import decode_script

    req = request(tmp_path, data)
    req = replace(req, meta=replace(req.meta, pack_code=True))
    assert submit(req, Progress()) == 0
    folder = next((tmp_path / "records").rglob("submission.json")).parent
    wrapper = (folder / "train_gpt.py").read_text()
    assert decode_script(wrapper).text == FIXTURE.read_text()
    sub = json.loads((folder / "submission.json").read_text())
    assert sub["bytes_code"] == len(wrapper.encode()) < FIXTURE.stat().st_size
    assert sub["pgolf"]["code_packed"] is True


def test_script_without_the_contract_runs_once_and_is_judged_by_its_log(tmp_path, data):
    req = replace(request(tmp_path, data), script=Path(__file__).parent / "fixtures" / "pipeline" / "legacy_script.py")
    assert submit(req, Progress()) == 0
    result = outcome(tmp_path, 2)
    assert [s["name"] for s in result["stages"]] == ["run"]
    assert result["val_bpb"] == pytest.approx(1.5002)
    assert result["bytes_total"] == 5000 + result["bytes_code"] == 5000 + req.script.stat().st_size
    assert any("does not speak the stage contract" in d for d in result["disagreements"])


def test_the_submit_step_checks_on_the_cpu_with_the_runs_own_data(tmp_path, data):
    from pgolf.compliance.sandbox import DockerRuntime
    from pgolf.pipeline.submit import dynamic_options

    req = request(tmp_path, data)
    options = dynamic_options(req, Progress(), [])
    assert (options.data, options.tokenizer) == (data.train, data.tokenizer)
    assert options.preset is False and options.env["MODEL_DIM"] == req.profile.env["MODEL_DIM"]
    assert options.env["ITERATIONS"] == req.profile.dynamic_env["ITERATIONS"] != req.profile.env["ITERATIONS"]
    assert options.workdir == req.work_dir / "dynamic"
    mine = dynamic_options(replace(req, overrides={"ITERATIONS": "7"}), Progress(), [])
    assert mine.env["ITERATIONS"] == "7"  # what the caller sets wins
    gpu = replace(req, profile=get_profile("8xh100"), runtime=DockerRuntime(image="pgolf:cuda", gpus=True))
    options = dynamic_options(gpu, Progress(), [])
    # untrusted code: the sandbox where one starts, else no runtime (the check says why); never unisolated
    assert options.preset is True and (options.runtime is None or options.runtime.isolated)


def _seed(train_s, eval_s) -> SeedOutcome:
    return SeedOutcome(1, "ok", train_wall_s=train_s, eval_wall_s=eval_s)


def test_the_traced_runs_cap_comes_from_the_seeds_measured_times(tmp_path, data):
    req = request(tmp_path, data)
    multiple, floor = req.profile.dynamic_cap_multiple, req.profile.dynamic_cap_floor_s
    assert multiple > 1
    assert dynamic_cap_s(req, [_seed(1.0, 0.5)]) == floor
    slow = floor  # a seed as slow as the floor puts the cap well above it
    assert dynamic_cap_s(req, [_seed(slow, 10.0), _seed(1.0, 1.0)]) == multiple * (slow + 10.0)
    assert dynamic_cap_s(replace(req, dynamic_cap_s=42.0), [_seed(slow, 10.0)]) == 42.0
    gpu = replace(req, profile=get_profile("8xh100"))  # its traced run is the CPU preset: a fixed cap
    assert dynamic_cap_s(gpu, [_seed(600.0, 600.0)]) == get_profile("8xh100").dynamic_cap_floor_s


@pytest.mark.skipif(not SP1024.is_file(), reason=f"official tokenizer not found at {SP1024} (../shared absent)")
def test_the_traced_run_is_kept_in_the_run_folder_even_when_it_fails(tmp_path, data):
    """The fixture needs PGOLF_STAGE, which a traced run (all stages in one process) leaves unset."""
    shutil.copy(SP1024, data.tokenizer)
    req = replace(request(tmp_path, data), dynamic=True)
    assert submit(req, Progress()) != 0
    kept = tmp_path / "runs" / "dynamic"
    assert "PGOLF_STAGE" in (kept / "run.log").read_text()  # the script's own KeyError, kept
    assert (kept / "ledger").is_dir() and (kept / "canary").is_dir()
    assert submit(replace(req, force=True), Progress()) != 0  # a second run replaces the first
    assert (kept / "run.log").is_file()


def test_calibration_widens_the_caps_and_the_record_states_it(tmp_path, data):
    req = request(tmp_path, data, calibration_reference_s=1e-9)  # any machine is "slower": the bound applies
    assert submit(req, Progress()) == 0
    bound = req.profile.max_cap_scale
    log = (tmp_path / "runs" / "seed_1" / "stages.log").read_text()
    assert f"pgolf: stage train seed 1 cap {150 * bound:.1f}s" in log
    assert f"pgolf: stage eval seed 1 cap {120 * bound:.1f}s" in log
    folder = tmp_path / "records" / "track_cpu_smoke" / "2026-05-01_fixture"
    stated = json.loads((folder / "submission.json").read_text())["pgolf"]
    assert stated["calibration"]["scale"] == bound and "capped" in stated["calibration"]["note"]
    assert stated["calibration"]["measured_s"] > 0 and stated["fixed_steps"] is True
    assert stated["caps"]["train_s"] == 150  # the ruleset's caps, before the scale
    assert f"multiplied by {bound:.2f}" in (folder / "README.md").read_text()
    assert json.loads((tmp_path / "runs" / "calibration.json").read_text())["scale"] == bound


def test_the_probe_measures_this_machine():
    from pgolf.pipeline.calibration import calibrate

    measured = calibrate(reference_s=1e-9, max_scale=4.0, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert measured.threads == 1 and measured.steps >= 5 and measured.measured_s > 0
    assert measured.scale == 4.0
    relaxed = calibrate(reference_s=1e9, max_scale=4.0, env=dict(os.environ))
    assert relaxed.scale == 1.0 and relaxed.note == ""  # a faster machine never narrows the caps


@pytest.mark.parametrize(
    "two, one, threads, scale",
    [
        (0.010, 0.018, 2, 2.0),  # idle: two threads run the step faster
        (0.100, 0.015, 1, 3.0),  # a busy core: two threads wait on each other, one does not
        (0.010, 0.009, 2, 2.0),  # one thread barely faster: keep the profile's count
        (0.900, 0.800, 2, 8.0),  # far slower than the reference: the ruleset's bound
    ],
)
def test_calibration_picks_threads_and_scales_the_caps(two, one, threads, scale):
    from pgolf.pipeline.calibration import from_probes

    measured = from_probes(0.005, 8.0, 2, {2: {"median_s": two, "steps": 9}, 1: {"median_s": one, "steps": 9}})
    assert (measured.threads, measured.scale) == (threads, scale)
    assert measured.by_threads == {"2": two, "1": one}
    assert ("capped" in measured.note) == (scale == 8.0)


def test_a_seed_that_stops_early_fails_on_a_fixed_step_profile(tmp_path, data, monkeypatch):
    monkeypatch.setenv("FIX_STOP_AT", "7")
    assert submit(request(tmp_path, data, seeds=(1,)), Progress()) == 1
    result = outcome(tmp_path, 1)
    assert "stopped at step 7 of 10" in result["reason"] and (result["steps"], result["planned_steps"]) == (7, 10)
    assert not (tmp_path / "records").exists()


def test_every_seed_states_its_steps(tmp_path, data, monkeypatch):
    monkeypatch.setenv("FIX_STOP_AT", "7")  # a wall-clock profile: stopping early is how it ends
    assert submit(request(tmp_path, data, fixed_steps=False), Progress()) == 0
    sub = json.loads(next((tmp_path / "records").rglob("submission.json")).read_text())
    assert [sub["seed_results"][str(s)]["steps"] for s in (1, 2, 3)] == [7, 7, 7]


def test_each_stage_gets_what_the_contract_table_names_and_nothing_else(tmp_path, data):
    from pgolf.compliance import logparse
    from pgolf.compliance.stage_contract import STAGES, stage_line
    from pgolf.pipeline.stages import SeedPaths, contract_spec

    profile = get_profile("cpu-smoke")
    for stage in STAGES:
        spec = contract_spec(stage, FIXTURE, 1, profile, data, SeedPaths(tmp_path / "seed"), {})
        assert sorted(k for k in spec.env if k.startswith("PGOLF_")) == sorted(stage.env_names)
        assert spec.network == (not stage.isolated)
    assert [s.name for s in STAGES] == ["train", "quantize", "eval"]
    # the checker reads the same lines: a later stage's log continues the run the first one started
    log = "".join(stage_line(s.name, 7, 10.0, "local") + "seed:7\nstep:5/5 train_time:10ms\n" for s in STAGES)
    facts = logparse.parse_log(log)
    assert (facts.seed, facts.last_step, facts.planned_steps) == (7, 5, 5)


def test_a_bad_thread_count_from_the_caller_is_not_a_crash(tmp_path, data):
    req = replace(
        request(tmp_path, data, seeds=(1,), calibration_reference_s=0.007), overrides={"OMP_NUM_THREADS": "many"}
    )
    assert submit(req, Progress()) in (0, 1)  # one seed: the check fails R-SEEDS, nothing raises
    assert outcome(tmp_path, 1)["calibration"]["threads"] >= 1
