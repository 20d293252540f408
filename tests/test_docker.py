"""The pinned image and the docker runtime: isolation of the eval stage, the cap, `pgolf env`.

The container tests need a docker engine and the CPU image (docker/build-cpu.sh, or set
PGOLF_TEST_IMAGE); they skip with the reason when either is missing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pgolf.compliance.sandbox.base import StageSpec
from pgolf.compliance.sandbox.docker import DockerRuntime, _argv, _environment, _read_only_sources
from pgolf.pipeline import env_check

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
IMAGE = os.environ.get("PGOLF_TEST_IMAGE", "pgolf:cpu")
CPU_LOCK = REPO / "docker" / "lock" / "env-cpu.json"


def _engine():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"no docker engine answers ({type(exc).__name__}); start dockerd to run the container tests")
    try:
        client.images.get(IMAGE)
    except Exception:
        pytest.skip(f"image {IMAGE} is not built; run docker/build-cpu.sh")
    return client


@pytest.fixture(scope="module")
def client():
    return _engine()


@pytest.fixture
def tokenizer() -> Path:
    """A real input file for a read-only mount."""
    models = sorted((SHARED / "tokenizers").glob("**/*.model")) if SHARED.is_dir() else []
    if not models:
        pytest.skip(f"no tokenizer under {SHARED / 'tokenizers'} (../shared beside the checkout)")
    return models[0]


def _spec(tmp_path: Path, name: str, code: str, **kw) -> StageSpec:
    return StageSpec(
        name,
        [sys.executable, "-c", code],
        {"PATH": "/host/bin", "PYTHONUNBUFFERED": "1", **kw.pop("env", {})},
        cwd=kw.pop("cwd", tmp_path),
        cap_s=kw.pop("cap_s", 60),
        log_path=tmp_path / "stages.log",
        **kw,
    )


# --- without an engine ---------------------------------------------------------------------


def test_host_interpreter_and_host_environment_stay_outside(tmp_path):
    spec = _spec(tmp_path, "eval", "pass", network=False, env={"VIRTUAL_ENV": "/x", "PGOLF_ARTIFACT": "/a/m.bin"})
    assert _argv(spec.argv)[0] == "python"
    env = _environment(spec)
    assert "PATH" not in env and "VIRTUAL_ENV" not in env
    assert env["PGOLF_ARTIFACT"] == "/a/m.bin" and env["PGOLF_NET_AUDIT"] == "1" and env["HOME"] == "/tmp"


def test_links_in_an_input_directory_mount_their_targets_not_the_dataset(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "fineweb_train_000000.bin").write_bytes(b"t")
    (dataset / "fineweb_val_000000.bin").write_bytes(b"v")
    val = tmp_path / "eval" / "val"
    val.mkdir(parents=True)
    (val / "fineweb_val_000000.bin").symlink_to(dataset / "fineweb_val_000000.bin")
    sources = _read_only_sources((val, tmp_path / "missing"))
    assert sources == [val, (dataset / "fineweb_val_000000.bin").resolve()]


def test_env_compare_one_line_per_difference():
    lock = json.loads(CPU_LOCK.read_text())
    observed = {
        "python": "3.11",
        "torch": "2.13.0+cpu",
        "cuda": None,
        "cudnn": None,
        "flash_attn_3": False,
        "gpu_count": 0,
        "gpus": [],
        "capabilities": [],
        "packages": dict(lock["packages"]),
    }
    assert env_check.compare(observed, lock) == []
    observed.update(torch="2.9.1+cu128", packages={**lock["packages"], "numpy": "1.26.4"})
    diffs = env_check.compare(observed, lock)
    assert len(diffs) == 2 and diffs[0].startswith("torch: expected '2.13.0+cpu'") and "numpy" in diffs[1]


def test_env_cuda_lock_wants_hopper():
    lock = json.loads((REPO / "docker" / "lock" / "env-cuda.json").read_text())
    observed = {
        "python": "3.12",
        "torch": "2.9.1+cu128",
        "cuda": "12.8",
        "cudnn": 91002,
        "flash_attn_3": True,
        "gpu_count": 1,
        "gpus": ["NVIDIA A100-SXM4-80GB"],
        "capabilities": [[8, 0]],
        "packages": dict(lock["packages"]),
    }
    assert env_check.compare(observed, lock) == ["gpu NVIDIA A100-SXM4-80GB: compute capability sm80 is below sm90"]


def test_env_without_a_lock_cannot_check(tmp_path):
    report = env_check.check(tmp_path / "absent.json", tmp_path / "build.json")
    assert report.exit_code == 2 and "no environment lock" in report.error


# --- in the CPU image -----------------------------------------------------------------------

NET_PROBE = """
import os, socket, sys
try:
    socket.create_connection(("93.184.215.14", 80), timeout=5)
    print("connected")
except OSError as exc:
    print("connect failed:", exc)
print("train visible:", os.path.exists(sys.argv[1]))
print("val readable:", open(sys.argv[2], "rb").read() == b"v")
print("tokenizer readable:", os.path.getsize(sys.argv[3]) > 0)
"""


@pytest.mark.shared
def test_eval_stage_has_no_network_and_no_training_data(client, tmp_path, tokenizer):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    train = dataset / "fineweb_train_000000.bin"
    train.write_bytes(b"t")
    (dataset / "fineweb_val_000000.bin").write_bytes(b"v")
    sandbox = tmp_path / "seed" / "eval"
    val = sandbox / "val"
    val.mkdir(parents=True)
    (val / "fineweb_val_000000.bin").symlink_to(dataset / "fineweb_val_000000.bin")
    spec = StageSpec(
        "eval",
        [sys.executable, "-c", NET_PROBE, str(train), str(val / "fineweb_val_000000.bin"), str(tokenizer)],
        {"PYTHONUNBUFFERED": "1"},
        cwd=sandbox,
        cap_s=60,
        log_path=tmp_path / "seed" / "stages.log",
        network=False,
        read_only=(val, tokenizer),
        writable=(sandbox,),
    )
    result = DockerRuntime(image=IMAGE, shm_size="64m").run(spec)
    log = spec.log_path.read_text()
    assert result.status == "ok", log
    assert "connect failed:" in log and "connected\n" not in log
    assert "train visible: False" in log and "val readable: True" in log and "tokenizer readable: True" in log
    assert any(n.startswith("R-NETWORK") and "socket.connect ('93.184.215.14', 80)" in n for n in result.notes), (
        result.notes
    )


def test_a_stage_with_network_gets_no_network_note(client, tmp_path):
    result = DockerRuntime(image=IMAGE, shm_size="64m").run(_spec(tmp_path, "train", "print('hello')"))
    assert result.ok and result.notes == [] and "hello" in (tmp_path / "stages.log").read_text()


def test_a_stage_over_its_cap_is_killed_from_outside(client, tmp_path):
    # it ignores SIGTERM, so only the SIGKILL after the grace period ends it
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('term received', flush=True))\n"
        "print('started', flush=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    spec = _spec(tmp_path, "train", code, cap_s=3.0, grace_s=2.0)
    result = DockerRuntime(image=IMAGE, shm_size="64m").run(spec)
    log = spec.log_path.read_text()
    assert result.status == "timeout" and result.killed, log
    assert "started" in log and "term received" in log
    assert 5.0 <= result.wall_s < 15.0
    assert result.returncode == 137


def test_cpu_image_env_matches_its_lock(client):
    out = client.containers.run(
        IMAGE, ["python", "-m", "pgolf.pipeline.env_check", "--json"], remove=True, network_mode="none"
    )
    report = json.loads(out)
    assert report["ok"] is True, report["differences"]
    assert report["observed"]["torch"] == "2.13.0+cpu" == report["expected"]["torch"]
    assert report["observed"]["python"] == "3.11" and report["build"]["variant"] == "cpu"
    assert report["expected"] == json.loads(CPU_LOCK.read_text())
    assert DockerRuntime(image=IMAGE).env_report()["observed"] == report["observed"]


def test_cpu_image_env_fails_loudly_on_a_different_lock(client, tmp_path):
    lock = json.loads(CPU_LOCK.read_text())
    lock["torch"] = "2.9.1+cu128"
    lock["packages"]["numpy"] = "1.26.4"
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    os.chmod(tmp_path, 0o755)
    container = client.containers.run(
        IMAGE,
        ["python", "-m", "pgolf.pipeline.env_check", "--lock", "/lock/lock.json"],
        detach=True,
        network_mode="none",
        volumes={str(tmp_path): {"bind": "/lock", "mode": "ro"}},
    )
    try:
        status = container.wait(timeout=120)["StatusCode"]
        out = container.logs().decode()
    finally:
        container.remove(force=True)
    assert status == 1, out
    assert [line for line in out.splitlines() if "DIFFERS" in line] == [
        "pgolf env: DIFFERS: torch: expected '2.9.1+cu128', found '2.13.0+cpu'",
        "pgolf env: DIFFERS: package numpy: expected 1.26.4, found 2.4.6",
    ]


def test_describe_names_the_image(client):
    info = DockerRuntime(image=IMAGE).describe()
    assert info["runtime"] == "docker" and info["image_id"].startswith("sha256:")
    assert info["image_id"] == client.images.get(IMAGE).id
