"""The submit pipeline on small contract scripts: caps enforced from outside, resume, records."""
from __future__ import annotations

import json
import os
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
from pgolf.compliance.shards import write_shard
from pgolf.pipeline.profiles import get_profile
from pgolf.pipeline.progress import Progress
from pgolf.pipeline.record_writer import RecordMeta
from pgolf.compliance.sandbox import LocalRuntime
from pgolf.pipeline.stages import DataPaths
from pgolf.pipeline.submit import SubmitRequest, submit

FIXTURE = Path(__file__).parent / "fixtures" / "pipeline" / "contract_script.py"


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
    profile = replace(get_profile("cpu-smoke"), grace_s=1, **profile_changes)
    meta = RecordMeta(name="fixture", author="t", github_id="t", blurb="b", profile=profile, commands=["x"],
                      day="2026-05-01")
    return SubmitRequest(script=FIXTURE, seeds=list(seeds), profile=profile, data=data, runtime=LocalRuntime(),
                         work_dir=tmp_path / "runs", records_dir=tmp_path / "records", meta=meta,
                         dynamic=False)  # the dynamic step has its own tests (tests/test_dynamic.py)


def outcome(tmp_path, seed) -> dict:
    return json.loads((tmp_path / "runs" / f"seed_{seed}" / "outcome.json").read_text())


def test_seeds_become_a_record_that_passes_the_check(tmp_path, data):
    assert submit(request(tmp_path, data), Progress(3)) == 0
    folder = tmp_path / "records" / "track_cpu_smoke" / "2026-05-01_fixture"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "provenance.json", "requirements.txt", "submission.json", "train_gpt.py",
                     "train_seed1.log", "train_seed2.log", "train_seed3.log"]
    sub = json.loads((folder / "submission.json").read_text())
    per_seed = [sub["seed_results"][str(s)]["val_bpb"] for s in (1, 2, 3)]
    assert sub["val_bpb"] == pytest.approx(sum(per_seed) / 3, abs=1e-8)
    assert sub["bytes_total"] == 1000 + FIXTURE.stat().st_size
    assert audit([str(folder)], AuditOptions()).verdict == "pass"


def test_train_over_its_cap_is_killed_and_the_seed_fails_with_its_time(tmp_path, data, monkeypatch):
    monkeypatch.setenv("FIX_TRAIN_SLEEP", "30")
    started = time.monotonic()
    assert submit(request(tmp_path, data, seeds=(1,), train_cap_s=2), Progress(1)) == 1
    assert time.monotonic() - started < 20
    result = outcome(tmp_path, 1)
    assert result["status"] == "failed" and result["reason"].startswith("train killed at 2.")
    assert result["stages"][0]["status"] == "timeout"
    assert not (tmp_path / "records").exists()


def test_artifact_over_the_byte_cap_fails(tmp_path, data, monkeypatch):
    monkeypatch.setenv("FIX_ARTIFACT_BYTES", "5000")
    assert submit(request(tmp_path, data, seeds=(1,), max_bytes=4000), Progress(1)) == 1
    result = outcome(tmp_path, 1)
    assert "over the 4,000-byte cap" in result["reason"] and result["bytes_artifact"] == 5000


def test_eval_stage_finds_no_training_data(tmp_path, data, monkeypatch):
    monkeypatch.setenv("PGOLF_TRAIN_DATA", str(data.train))  # a caller's variable must not leak in
    assert submit(request(tmp_path, data), Progress(3)) == 0
    result = json.loads((tmp_path / "runs" / "seed_1" / "eval" / "result.json").read_text())
    assert result["env"] == ["PGOLF_ARTIFACT", "PGOLF_RESULT", "PGOLF_STAGE", "PGOLF_TOKENIZER", "PGOLF_VAL_DATA"]
    assert not any("fineweb_train" in p or "checkpoint" in p for p in result["seen"])
    assert any("fineweb_val_000000.bin" in p for p in result["seen"])


def test_interrupted_submit_resumes_without_rerunning_finished_seeds(tmp_path, data):
    argv = [sys.executable, "-c", "from pgolf.pipeline.cli import main; main()", "submit", "--no-dynamic",
            "--script", str(FIXTURE), "--seeds", "1 2 3", "--name", "resume",
            "--train-data", str(data.train), "--val-data", str(data.val), "--tokenizer", str(data.tokenizer),
            "--records-dir", str(tmp_path / "records"), "--work-dir", str(tmp_path / "runs")]
    env = {**os.environ, "FIX_TRAIN_SLEEP": "2"}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "seed 1/3 (seed=1) already finished" in second.stderr
    assert "seed 2/3 (seed=2) train started" in second.stderr
    assert (tmp_path / "runs" / "seed_1" / "outcome.json").stat().st_mtime_ns == done_at
    sub = json.loads(next((tmp_path / "records").rglob("submission.json")).read_text())
    assert sub["seeds"] == [1, 2, 3]


def test_existing_record_needs_force(tmp_path, data):
    req = request(tmp_path, data, seeds=(1, 2, 3))
    assert submit(req, Progress(3)) == 0
    from pgolf.pipeline.record_writer import RecordExists
    with pytest.raises(RecordExists):
        submit(req, Progress(3))
    assert submit(replace(req, force=True), Progress(3)) == 0


def test_code_packed_as_a_wrapper_is_counted_and_recorded(tmp_path, data):
    from pgolf.compliance.unpack import decode_script
    req = request(tmp_path, data)
    req = replace(req, meta=replace(req.meta, pack_code=True))
    assert submit(req, Progress(3)) == 0
    folder = next((tmp_path / "records").rglob("submission.json")).parent
    wrapper = (folder / "train_gpt.py").read_text()
    assert decode_script(wrapper).text == FIXTURE.read_text()
    sub = json.loads((folder / "submission.json").read_text())
    assert sub["bytes_code"] == len(wrapper.encode()) < FIXTURE.stat().st_size
    assert sub["pgolf"]["code_packed"] is True


def test_script_without_the_contract_runs_once_and_is_judged_by_its_log(tmp_path, data):
    req = replace(request(tmp_path, data), script=Path(__file__).parent / "fixtures" / "pipeline" / "legacy_script.py")
    assert submit(req, Progress(3)) == 0
    result = outcome(tmp_path, 2)
    assert [s["name"] for s in result["stages"]] == ["run"]
    assert result["val_bpb"] == pytest.approx(1.5002)
    assert result["bytes_total"] == 5000 + result["bytes_code"] == 5000 + req.script.stat().st_size
    assert any("does not speak the stage contract" in d for d in result["disagreements"])


def test_the_submit_step_checks_on_the_cpu_with_the_runs_own_data(tmp_path, data):
    from pgolf.compliance.sandbox import DockerRuntime
    from pgolf.pipeline.submit import dynamic_options
    req = request(tmp_path, data)
    options = dynamic_options(req, Progress(3))
    assert (options.data, options.tokenizer) == (data.train, data.tokenizer)
    assert options.preset is False and options.env["MODEL_DIM"] == req.profile.env["MODEL_DIM"]
    gpu = replace(req, profile=get_profile("8xh100"), runtime=DockerRuntime(image="pgolf:cuda", gpus=True))
    options = dynamic_options(gpu, Progress(3))
    assert options.preset is True and options.runtime is not None and options.runtime.isolated  # the sandbox
