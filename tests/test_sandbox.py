"""The sandbox untrusted code runs in (compliance/sandbox): isolation, limits, the connection
trace, the process tree, the runtime registry, and `pgolf submit` under faults.

Everything runs for real: bubblewrap and strace (make install puts them there; the tests skip
with the reason where they cannot start), real processes, real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pgolf.compliance.sandbox import (
    RUNTIMES,
    BwrapRuntime,
    Runtime,
    RuntimeOptions,
    SandboxUnavailable,
    StageSpec,
    choose_runtime,
    compose_env,
    get_runtime,
    runtime_names,
)
from pgolf.compliance.sandbox.docker import DockerRuntime

from .factory import make_record, snapshot

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "tests" / "fixtures" / "sandbox" / "hostile.py"
CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]
PGOLF = [sys.executable, "-c", "from pgolf.pipeline.cli import main; main()"]


@pytest.fixture(scope="module")
def sandbox() -> BwrapRuntime:
    runtime = BwrapRuntime()
    why = runtime.unavailable()
    if why:
        pytest.skip(f"no sandbox here: {why}")
    return runtime


@pytest.fixture
def mark() -> str:
    """A word on the command line of every process a test starts, to find survivors by."""
    return f"pgolf-test-{uuid.uuid4().hex[:10]}"


def alive(mark: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if mark in cmdline and "zombie" not in state:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def wait_gone(mark: str, within: float = 5.0) -> list[str]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(mark):
            return []
        time.sleep(0.1)
    return alive(mark)


def bash_spec(tmp_path: Path, script: str, cap_s: float = 30, **kw) -> StageSpec:
    env, inherited = compose_env(dict(os.environ), kw.pop("env", {}))
    cwd = kw.pop("cwd", tmp_path / "run")
    cwd.mkdir(parents=True, exist_ok=True)
    return StageSpec(
        "run",
        ["/bin/bash", "-c", script],
        env,
        cwd=cwd,
        cap_s=cap_s,
        log_path=tmp_path / "stage.log",
        grace_s=kw.pop("grace_s", 2),
        caller_env=inherited,
        **kw,
    )


def log_of(spec: StageSpec) -> str:
    return spec.log_path.read_text(errors="replace")


# --- the hostile script (issue #12's done-when) ---------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    subprocess.run(
        PGOLF + ["data", "synth", "--out", str(out), "--max-chars", "400000"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return out


def test_hostile_script_under_dynamic_check_is_contained(sandbox, synth, tmp_path, mark):
    folder = make_record(tmp_path / "records")
    (folder / "train_gpt.py").write_text(HOSTILE.read_text())
    before = snapshot(folder)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    keep = tmp_path / "keep"
    targets = os.pathsep.join([str(outside / "written.txt"), str(home / ".ssh" / "id_ed25519"), str(folder / "x.pwn")])
    env = {**os.environ, "HOME": str(home), "HF_TOKEN": "hf_secret_token_value", "GITHUB_TOKEN": "gh_secret_value"}
    knobs = ["--set", f"HOSTILE_MARK={mark}", "--set", f"HOSTILE_TARGETS={targets}"]
    proc = subprocess.run(
        CHECK
        + [
            str(folder),
            "--dynamic",
            "--data",
            str(synth),
            "--cap",
            "120",
            "--keep",
            str(keep),
            "--format",
            "json",
            *knobs,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert alive(mark) == [], "processes outlived the check"
    report = json.loads((keep / "run" / "hostile_report.json").read_text())
    # every read of a secret fails, and no secret reached the script
    assert report["read"] and all(result != "done" for result in report["read"].values()), report["read"]
    assert report["env"] == [] and report["uid"] != 0
    shown = json.dumps(report) + (keep / "run.log").read_text(errors="replace")
    assert "hf_secret_token_value" not in shown and "secret-key-material" not in shown
    # no write lands outside its copy: the run's own folder, its output folder and its private /tmp
    landed = [p for p, result in report["wrote"].items() if result == "done"]
    assert all(p.startswith((str(keep), "/tmp/", "/dev/shm/")) for p in landed), landed
    assert list(outside.iterdir()) == [] and snapshot(folder) == before
    # every connection attempt is reported with its process
    record = json.loads(proc.stdout)["records"][0]
    network = [f for f in record["findings"] if f["rule"] == "R-DYN-NETWORK" and f["severity"] == "fail"]
    messages = " | ".join(f["message"] for f in network)
    assert f"{mark}-bash" in messages and "127.0.0.1:9" in messages, messages
    assert "python -I -c" in messages and "127.0.0.1:8" in messages, messages
    assert proc.returncode == 1
    # and the daemon that appended every 5 s is gone with everything else
    daemon = keep / "run" / "daemon.txt"
    size = daemon.stat().st_size
    time.sleep(5.5)
    assert daemon.stat().st_size == size and alive(mark) == []


# --- isolation ----------------------------------------------------------------------------------


def test_the_stage_sees_pgolfs_knobs_and_no_secret_of_the_caller(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_leak")
    monkeypatch.setenv("LANG", "C.UTF-8")
    spec = bash_spec(tmp_path, "env | sort", env={"NUM_LAYERS": "2", "PGOLF_STAGE": "train"})
    assert sandbox.run(spec).ok
    env = dict(line.split("=", 1) for line in log_of(spec).splitlines() if "=" in line)
    assert env["NUM_LAYERS"] == "2" and env["PGOLF_STAGE"] == "train" and env["LANG"] == "C.UTF-8"
    assert "HF_TOKEN" not in env and "hf_do_not_leak" not in log_of(spec)
    assert env["HOME"] == "/tmp" and not env["PATH"].count(os.environ.get("HOME", "/nonexistent") + "/")


def test_non_root_without_capabilities_under_limits(tmp_path):
    runtime = BwrapRuntime(pids=64, fsize=1 << 20, memory=1 << 30)
    if runtime.unavailable():
        pytest.skip(runtime.unavailable())
    script = (
        "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; "
        "head -c 2000000 /dev/zero > big.bin; echo fsize-exit=$?; ls -l big.bin | awk '{print \"size=\" $5}'; "
        "python3 -c 'bytearray(2 << 30)' 2>&1 | tail -1; "
        'python3 -c "import subprocess\nn = 0\nfor _ in range(100):\n'
        "    try: subprocess.Popen(['sleep', '30'])\n    except OSError: n += 1\nprint(n)\""
    )
    spec = bash_spec(tmp_path, script)
    assert runtime.run(spec).ok, log_of(spec)
    out = log_of(spec)
    assert out.splitlines()[0].strip() != "0"
    assert "CapEff:\t0000000000000000" in out and "CapBnd:\t0000000000000000" in out and "NoNewPrivs:\t1" in out
    assert "size=1048576" in out  # RLIMIT_FSIZE: the write stops at the limit
    assert "MemoryError" in out  # RLIMIT_DATA
    forks_refused = int(out.strip().splitlines()[-1])
    assert forks_refused > 0  # RLIMIT_NPROC


def test_the_filesystem_holds_the_system_read_only_and_only_the_stages_paths(sandbox, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "data.bin").write_bytes(b"x")
    (tmp_path / "beside.txt").write_text("not an input")
    host_tmp = Path("/tmp") / f"pgolf-host-{uuid.uuid4().hex[:8]}"
    host_tmp.write_text("host")
    try:
        script = (
            f"touch /usr/x 2>/dev/null || echo usr-ro; touch {inputs}/new 2>/dev/null || echo input-ro; "
            f"cat {inputs}/data.bin && echo input-read; touch out.txt && echo cwd-rw; "
            f"test -e {tmp_path}/beside.txt || echo beside-hidden; test -e {host_tmp} || echo tmp-private; "
            f"test -e /run/docker.sock || echo no-docker; test -e $HOME/.ssh || echo no-ssh; "
            f"test -e {os.path.expanduser('~')}/.ssh || echo no-caller-ssh"
        )
        spec = bash_spec(tmp_path, script, read_only=(inputs,))
        assert sandbox.run(spec).ok, log_of(spec)
    finally:
        host_tmp.unlink()
    out = log_of(spec)
    for word in (
        "usr-ro",
        "input-ro",
        "input-read",
        "cwd-rw",
        "beside-hidden",
        "tmp-private",
        "no-docker",
        "no-ssh",
        "no-caller-ssh",
    ):
        assert word in out, (word, out)
    assert (tmp_path / "run" / "out.txt").exists() and not (inputs / "new").exists()


# --- the connection trace -------------------------------------------------------------------------


def test_every_connection_attempt_names_its_process(sandbox, tmp_path, mark):
    server = (
        "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        "c=socket.create_connection(s.getsockname()); print('served', s.getsockname()[1])"
    )
    script = (
        f"(echo hi > /dev/tcp/127.0.0.1/9) 2>/dev/null; "
        f"python3 -I -c \"import socket; socket.socket().connect_ex(('127.0.0.1', 8))\" {mark}; "
        f"python3 -c \"import socket; socket.socket().connect_ex(('10.1.2.3', 80))\"; "
        f'python3 -I -c "{server}"'
    )
    spec = bash_spec(tmp_path, script, network=False)
    result = sandbox.run(spec)
    assert result.ok, log_of(spec)
    outside = {(c.address, c.internal) for c in result.connections}
    assert {("127.0.0.1:9", False), ("127.0.0.1:8", False), ("10.1.2.3:80", False)} <= outside
    by_address = {c.address: c for c in result.connections}
    assert by_address["127.0.0.1:9"].cmdline.startswith("/bin/bash -c")
    assert by_address["127.0.0.1:8"].cmdline.startswith("python3 -I -c") and mark in by_address["127.0.0.1:8"].cmdline
    assert by_address["127.0.0.1:9"].result == "ECONNREFUSED" and by_address["10.1.2.3:80"].result == "ENETUNREACH"
    internal = [c for c in result.connections if c.internal]
    assert len(internal) == 1 and internal[0].result == "ok"  # the script talking to itself is not the network
    notes = " ".join(result.notes)
    assert notes.count("R-NETWORK") == 3 and "127.0.0.1:9" in notes


# --- the process tree ----------------------------------------------------------------------------

DAEMON = "setsid bash -c 'trap \"\" TERM HUP; while true; do sleep 1; done' {mark}-daemon &"


@pytest.mark.parametrize("kind", ["bwrap", "local"])
def test_the_run_ends_with_its_first_process_and_takes_the_rest(kind, tmp_path, mark):
    runtime = _runtime(kind)
    spec = bash_spec(tmp_path, DAEMON.format(mark=mark) + " echo started", cap_s=60)
    started = time.monotonic()
    result = runtime.run(spec)
    assert result.ok and time.monotonic() - started < 20, log_of(spec)
    assert wait_gone(mark) == []


@pytest.mark.parametrize("kind", ["bwrap", "local"])
def test_a_setsid_child_does_not_survive_the_cap(kind, tmp_path, mark):
    runtime = _runtime(kind)
    spec = bash_spec(tmp_path, DAEMON.format(mark=mark) + f" exec -a {mark}-main sleep 300", cap_s=2, grace_s=1)
    result = runtime.run(spec)
    assert result.status == "timeout" and result.wall_s < 10
    assert wait_gone(mark) == []


@pytest.mark.parametrize("kind", ["bwrap", "local"])
def test_sigkill_of_pgolf_reaches_every_process_of_the_stage(kind, tmp_path, mark):
    _runtime(kind)
    (tmp_path / "run").mkdir()
    driver = (
        f"import sys; from pathlib import Path; from pgolf.compliance.sandbox import get_runtime, StageSpec\n"
        f"spec = StageSpec('run', ['/bin/bash', '-c', {DAEMON.format(mark=mark) + f' sleep 300 # {mark}'!r}], "
        f"{{'PATH': '/usr/bin:/bin'}}, cwd=Path({str(tmp_path / 'run')!r}), cap_s=300, "
        f"log_path=Path({str(tmp_path / 'log')!r}))\n"
        f"get_runtime({kind!r}).run(spec)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", driver])
    _wait_for_stage(mark, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(mark) == []


def test_a_trace_folder_left_by_a_killed_pgolf_is_swept_by_the_next_run(tmp_path, mark):
    """SIGKILL skips pgolf's cleanup: the bwrap runtime's trace folder stays behind, naming its dead
    maker, and the next run removes it (never a folder whose maker still runs)."""
    import tempfile

    from pgolf.compliance.sandbox import scratch

    runtime = _runtime("bwrap")
    (tmp_path / "run").mkdir()
    driver = (
        f"from pathlib import Path; from pgolf.compliance.sandbox import get_runtime, StageSpec\n"
        f"spec = StageSpec('run', ['/bin/bash', '-c', {DAEMON.format(mark=mark) + f' sleep 300 # {mark}'!r}], "
        f"{{'PATH': '/usr/bin:/bin'}}, "
        f"cwd=Path({str(tmp_path / 'run')!r}), cap_s=300, log_path=Path({str(tmp_path / 'log')!r}))\n"
        f"get_runtime('bwrap').run(spec)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", driver])
    try:
        _wait_for_stage(mark, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_gone(mark) == []

    def made_by(pid: int) -> list[Path]:
        found = Path(tempfile.gettempdir()).glob("pgolf-trace-*")
        return [
            f for f in found if (f / scratch.OWNER).is_file() and (f / scratch.OWNER).read_text().split()[0] == str(pid)
        ]

    left = made_by(proc.pid)
    assert len(left) == 1
    mine = scratch.make("pgolf-trace-")  # a live maker's folder survives the sweep
    try:
        assert runtime.run(bash_spec(tmp_path, "true")).ok
        assert not left[0].exists() and mine.is_dir()
    finally:
        mine.joinpath(scratch.OWNER).unlink()
        mine.rmdir()


def _runtime(kind: str) -> Runtime:
    runtime = get_runtime(kind)
    if kind == "bwrap" and runtime.unavailable():
        pytest.skip(runtime.unavailable())
    if kind == "local" and not runtime.describe()["pid_namespace"]:
        pytest.skip("bwrap cannot make a PID namespace here; the local runtime then only signals its group")
    return runtime


# --- the registry -------------------------------------------------------------------------------


def test_both_clis_offer_the_registrys_runtimes():
    from pgolf.compliance.cli import main as check_main
    from pgolf.pipeline.cli import submit_command

    for command in (check_main, submit_command):
        option = next(p for p in command.params if p.name in ("dyn_runtime", "runtime_name"))
        assert list(option.type.choices) == runtime_names() == sorted(RUNTIMES)


class _EchoRuntime(Runtime):
    """A runtime added the way the registry says: a subclass and one line in RUNTIMES."""

    name = "echo"
    summary = "prints the argv"

    def run(self, spec, tick=None):
        raise NotImplementedError


def test_a_runtime_is_one_class_and_one_registry_line(monkeypatch):
    monkeypatch.setitem(RUNTIMES, "echo", _EchoRuntime)
    runtime = choose_runtime("echo")
    assert isinstance(runtime, _EchoRuntime) and runtime.env_report() is None and runtime.cpu_variant() is None
    assert runtime.describe() == {"runtime": "echo"} and "echo" in runtime_names()


def test_untrusted_code_never_runs_unisolated_by_accident(monkeypatch, tmp_path):
    with pytest.raises(SandboxUnavailable, match="--unsafe-local"):
        choose_runtime("local")
    assert choose_runtime("local", unsafe_local=True).name == "local"
    assert choose_runtime(None, trusted=True).name == "local"
    monkeypatch.setenv("PGOLF_BWRAP", str(tmp_path / "no-bwrap"))
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed.*--unsafe-local"):
        choose_runtime(None)
    assert choose_runtime(None, unsafe_local=True).name == "local"


def test_dynamic_check_refuses_in_one_line_where_no_sandbox_starts(tmp_path):
    folder = make_record(tmp_path)
    env = {**os.environ, "PGOLF_BWRAP": str(tmp_path / "no-bwrap")}
    proc = subprocess.run(CHECK + [str(folder), "--dynamic"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "bwrap is not installed" in proc.stderr and "--unsafe-local" in proc.stderr
    proc = subprocess.run(
        CHECK + [str(folder), "--dynamic", "--runtime", "local"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "does not isolate" in proc.stderr and proc.stderr.count("\n") == 1


def test_profiles_name_their_device_and_runtimes_take_it():
    from pgolf.pipeline.profiles import get_profile

    assert get_profile("8xh100").device == get_profile("1xgpu").device == "cuda"
    assert get_profile("cpu-smoke").device == "cpu"
    gpu = get_runtime("docker", RuntimeOptions(device="cuda"))
    assert gpu.gpus and gpu.image == "pgolf:cuda" and gpu.cpu_variant() is None
    cpu = get_runtime("docker", RuntimeOptions(device="cpu", image="custom:1"))
    assert not cpu.gpus and cpu.image == "custom:1" and cpu.cpu_variant() is cpu


def test_the_docker_runtime_gets_the_sandbox_limits(tmp_path):
    pytest.importorskip("docker")
    spec = bash_spec(tmp_path, "true", network=True)  # even a training stage gets no network
    options = DockerRuntime(image="pgolf:cpu", user="10001:10001")._options(spec)
    assert options["network_mode"] == "none" and options["read_only"] is True
    assert options["cap_drop"] == ["ALL"] and options["security_opt"] == ["no-new-privileges"]
    assert options["pids_limit"] > 0 and int(options["mem_limit"]) > 0
    assert options["memswap_limit"] == options["mem_limit"]
    assert not options["user"].startswith("0")
    assert all(m["ReadOnly"] is False for m in options["mounts"]) and len(options["mounts"]) == 1  # only its cwd


# --- pgolf submit under faults -------------------------------------------------------------------

SLOW_STAGE = """import os, subprocess, sys, time
daemon = "trap '' TERM HUP; while true; do sleep 1; done"
subprocess.Popen(["setsid", "bash", "-c", daemon, os.environ["MARK"] + "-daemon"])
print("step:1/1 train_loss:1.0 train_time:10ms step_avg:10ms", flush=True)
time.sleep(float(os.environ.get("HOLD", "300")))
print("final_int8_zlib_roundtrip_exact val_loss:1.00000000 val_bpb:1.00000000")
"""


def _submit_argv(tmp_path: Path, script: Path, mark: str, *extra: str) -> list[str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "tok.model").write_bytes(b"not read by this script")
    return PGOLF + [
        "submit",
        "--script",
        str(script),
        "--seeds",
        "1",
        "--train-data",
        str(data),
        "--val-data",
        str(data),
        "--tokenizer",
        str(data / "tok.model"),
        "--work-dir",
        str(tmp_path / "runs" / "slow"),
        "--records-dir",
        str(tmp_path / "records"),
        "--no-dynamic",
        "--set",
        f"MARK={mark}",
        *extra,
    ]


def _slow_script(tmp_path: Path, mark: str) -> Path:
    script = tmp_path / "sub" / "train_gpt.py"
    script.parent.mkdir()
    script.write_text(SLOW_STAGE + f"# {mark}\n")
    return script


def _wait_for_stage(mark: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not any("-daemon" in p for p in alive(mark)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert any("-daemon" in p for p in alive(mark)), "the stage did not start"


@pytest.mark.parametrize("runtime", ["bwrap", "local"])
def test_sigkill_of_submit_leaves_no_stage_process(runtime, tmp_path, mark):
    _runtime(runtime)
    extra = ["--runtime", runtime] + (["--unsafe-local"] if runtime == "local" else [])
    proc = subprocess.Popen(
        _submit_argv(tmp_path, _slow_script(tmp_path, mark), mark, *extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_stage(mark, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(mark) == []


def test_a_second_submit_of_the_same_run_is_refused_in_one_line(sandbox, tmp_path, mark):
    argv = _submit_argv(tmp_path, _slow_script(tmp_path, mark), mark)
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_stage(mark, first)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and second.stderr.count("\n") == 1, second.stderr
        assert "another pgolf submit is running" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on untouched
    finally:
        first.kill()
        first.wait()
    assert wait_gone(mark) == []


def test_an_unwritable_records_folder_is_refused_before_any_seed_runs(tmp_path, mark):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the records folder should go")
    argv = _submit_argv(tmp_path, _slow_script(tmp_path, mark), mark, "--records-dir", str(blocker / "records"))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, "HOLD": "0"})
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert str(blocker) in proc.stderr and "not writable" in proc.stderr and "nothing was run" in proc.stderr
    assert not list((tmp_path / "runs" / "slow").glob("seed_*"))


def test_record_files_are_readable_by_the_group(tmp_path):
    from pgolf.compliance.fsutil import atomic_write_text
    from pgolf.pipeline.record_writer import _readable

    folder = tmp_path / "record"
    folder.mkdir(mode=0o700)
    atomic_write_text(folder / "README.md", "# r\n")
    (folder / "logs").mkdir(mode=0o700)
    old = os.umask(0o022)
    try:
        assert (folder / "README.md").stat().st_mode & 0o777 == 0o644
        _readable(folder)
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755 and (folder / "logs").stat().st_mode & 0o777 == 0o755


def test_the_stage_cannot_rewrite_pgolfs_log_of_it(sandbox, tmp_path):
    spec = bash_spec(tmp_path, "echo forged > stage.log 2>/dev/null || echo log-ro", cwd=tmp_path, writable=(tmp_path,))
    spec.log_path.write_text("pgolf: stage run seed 1\n")
    assert sandbox.run(spec).ok
    assert log_of(spec).startswith("pgolf: stage run seed 1\n") and "log-ro" in log_of(spec)


def test_an_unwritable_data_folder_is_refused_before_anything_is_built(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder should go")
    argv = PGOLF + [
        "submit",
        "--seeds",
        "1",
        "--data-dir",
        str(blocker / "synth"),
        "--work-dir",
        str(tmp_path / "runs"),
        "--records-dir",
        str(tmp_path / "records"),
        "--no-dynamic",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(blocker) in proc.stderr and "not writable" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_the_sandbox_resolves_its_own_name_without_dns(sandbox, tmp_path):
    spec = bash_spec(tmp_path, "getent ahosts $(hostname) && getent ahosts localhost")
    result = sandbox.run(spec)
    assert result.ok and "127.0.0.1" in log_of(spec), log_of(spec)  # getent exits 2 for a name it cannot resolve
    assert result.connections == []  # no DNS query was needed, and address sorting is no connection
