"""Run a stage in a bubblewrap sandbox: the default home of untrusted code.

What the stage gets:
- its own PID, network, IPC, UTS and mount namespaces (and cgroup where the kernel allows):
  when the stage's first process ends, pgolf's supervisor kills what it left, and when the
  namespace's init dies (the cap, or pgolf itself killed) the kernel kills every process in it;
- a new root holding the system read-only (/usr, /etc, /sys and the interpreters it runs), its
  inputs read-only, its outputs and working directory writable, a private /tmp and /dev/shm,
  and nothing else of the host: no home, no /run, no docker socket;
- the environment pgolf set for it plus a short allowlist (envpolicy);
- a non-root uid (the image's `pgolf` user when pgolf runs as root; else the caller's own,
  in a user namespace), no capabilities, no_new_privs, and per-process limits on processes,
  file size and memory (RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_DATA);
- no network but its own loopback, and every connection attempt of any of its processes
  recorded with that process's command line (nettrace).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from io import BufferedIOBase
from pathlib import Path
from typing import IO, Any, cast

from . import nettrace, pidns, scratch
from .base import Runtime, RuntimeOptions, SandboxUnavailable, StageResult, StageSpec, Tick, wait_under_cap
from .base import find_tool as _which
from .envpolicy import stage_environment
from .mounts import read_only_sources, within, writable_dirs

SANDBOX_UID = 10001  # the image's `pgolf` user, when pgolf runs as root
HOSTNAME = "pgolf-sandbox"
# the sandbox's own name must resolve without DNS: torchrun's rendezvous looks it up, and an
# unanswered DNS query per retry would stall it (and fill the trace) until the cap
HOSTS = f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback {HOSTNAME}\n"
SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SUPERVISOR = Path(__file__).with_name("supervisor.py")
INSIDE = Path("/.pgolf")  # pgolf's own files in the sandbox: the supervisor, the trace
FIRST_STAGE_PID = 3  # 1: bubblewrap's init, 2: the tracer; the supervisor and the stage after
GIB = 1 << 30
_PROBED: dict[tuple[int, str, str, str | None, str | None], str | None] = {}


class BwrapRuntime(Runtime):
    name = "bwrap"
    summary = "bubblewrap sandbox: no network, read-only system, non-root, limits, every connection traced"

    def __init__(
        self,
        device: str = "cpu",
        memory: int | None = None,
        pids: int = 2048,
        fsize: int = 16 * GIB,
        tmp_size: int = 4 * GIB,
        uid: int = SANDBOX_UID,
        python: str = sys.executable,
    ) -> None:
        self.device, self.pids, self.fsize, self.tmp_size = device, pids, fsize, tmp_size
        self.memory = memory or _default_memory()
        self.uid = uid if os.getuid() == 0 else os.getuid()
        self.python = python

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> BwrapRuntime:
        return cls(device=options.device)

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "bwrap": _version([_which("bwrap"), "--version"]),
            "strace": _version([_which("strace"), "-V"]),
            "uid": self.uid,
            "device": self.device,
            "limits": self.limits(),
        }

    def limits(self) -> dict[str, int]:
        limits = {"NPROC": self.pids, "FSIZE": self.fsize, "CORE": 0}
        if self.device == "cpu":  # the CUDA driver's host mappings are not sized against RLIMIT_DATA yet: untested
            limits["DATA"] = self.memory
        return limits

    def cpu_variant(self) -> BwrapRuntime:
        return BwrapRuntime("cpu", self.memory, self.pids, self.fsize, self.tmp_size, self.uid, self.python)

    def unavailable(self) -> str | None:
        key = (os.getuid(), self.device, self.python, _which("bwrap"), _which("strace"))
        if key not in _PROBED:
            _PROBED[key] = self._probe()
        return _PROBED[key]

    def _probe(self) -> str | None:
        for tool, package in (("bwrap", "bubblewrap"), ("strace", "strace")):
            if _which(tool) is None:
                return f"{tool} is not installed (apt-get install {package}; make install does it)"
        with tempfile.TemporaryDirectory(prefix="pgolf-probe-") as tmp:
            spec = StageSpec(
                "probe",
                [self.python, "-I", "-c", "pass"],
                {},
                cwd=Path(tmp) / "run",
                cap_s=60,
                log_path=Path(tmp) / "probe.log",
                grace_s=1,
            )
            result = self._run(spec, None)
            if result.ok:
                return None
            said = spec.log_path.read_text(errors="replace").strip().splitlines() or [f"exit {result.returncode}"]
            return f"bwrap cannot start a sandbox here: {said[-1][:200]}"

    def run(self, spec: StageSpec, tick: Tick | None = None) -> StageResult:
        why = self.unavailable()
        if why:
            raise SandboxUnavailable(why)
        return self._run(spec, tick)

    def _run(self, spec: StageSpec, tick: Tick | None) -> StageResult:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        trace_dir = scratch.make("pgolf-trace-")  # 0700: not the stage's to read or write
        try:
            with open(spec.log_path, "ab", buffering=0) as log:
                code, wall, killed = self._supervise(spec, trace_dir, log, tick)
            trace = nettrace.read_trace(trace_dir / "net.trace")
        finally:
            shutil.rmtree(trace_dir, ignore_errors=True)
        return _result(spec, code, wall, killed, trace)

    def _supervise(
        self, spec: StageSpec, trace_dir: Path, log: IO[bytes], tick: Tick | None
    ) -> tuple[int | None, float, bool]:
        status_read, status_write = os.pipe()
        ns = pidns.Namespace()
        argv = self.command(spec, trace_dir, status_write)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd="/",
                env=stage_environment(spec, self._path()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(status_write,),
                start_new_session=True,
            )
        finally:
            os.close(status_write)
        pidns.read_status(status_read, ns)
        pump = threading.Thread(target=_copy, args=(proc.stdout, log), daemon=True)
        pump.start()
        try:
            killed = wait_under_cap(
                lambda t: _exited(proc, t), lambda: _stop(proc, ns, spec.grace_s), spec, start, tick
            )
        except BaseException:  # pgolf itself interrupted: the whole namespace goes with it
            _kill(proc, ns)
            raise
        pump.join(timeout=5)
        return proc.returncode, time.monotonic() - start, killed

    def command(self, spec: StageSpec, trace_dir: Path, status_fd: int) -> list[str]:
        """The bwrap command line: namespaces, mounts, then tracer -> supervisor -> the stage's argv."""
        # run() builds this only after unavailable() found both bwrap and strace
        argv = [
            cast(str, _which("bwrap")),
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            HOSTNAME,
            "--die-with-parent",
            "--new-session",
            "--json-status-fd",
            str(status_fd),
        ]
        if os.getuid() != 0:
            argv += ["--unshare-user", "--disable-userns"]
        argv += self._system_mounts() + self._stage_mounts(spec)
        (trace_dir / "hosts").write_text(HOSTS)
        argv += [
            "--ro-bind",
            str(trace_dir / "hosts"),
            "/etc/hosts",
            "--ro-bind",
            str(SUPERVISOR),
            str(INSIDE / "supervisor.py"),
            "--bind",
            str(trace_dir),
            str(INSIDE / "trace"),
            "--chdir",
            str(spec.cwd),
            "--",
        ]
        argv += nettrace.strace_argv(cast(str, _which("strace")), INSIDE / "trace" / "net.trace")
        config = {
            "uid": self.uid if os.getuid() == 0 else None,
            "gid": self.uid if os.getuid() == 0 else None,
            "limits": self.limits(),
        }
        return argv + [self.python, "-I", "-S", str(INSIDE / "supervisor.py"), json.dumps(config), "--", *spec.argv]

    def _system_mounts(self) -> list[str]:
        args: list[str] = []
        for path in SYSTEM_DIRS:
            args += ["--ro-bind", path, path]
        for path in SYSTEM_LINKS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            str(self.tmp_size),
            "--tmpfs",
            "/tmp",
            "--perms",
            "1777",
            "--size",
            str(self.tmp_size),
            "--tmpfs",
            "/dev/shm",
            # read-only hardware description: OpenMP reads the CPU topology, gloo scans PCI devices
            "--ro-bind-try",
            "/sys",
            "/sys",
        ]
        if self.device == "cuda":
            args += _gpu_mounts()
        roots = _interpreter_roots([self.python])
        args += _parent_dirs(roots)
        for root in roots:
            args += ["--ro-bind", str(root), str(root)]
        return args

    def _stage_mounts(self, spec: StageSpec) -> list[str]:
        """The stage's own paths at their host paths (so the PGOLF_* values stay valid): outputs
        writable, inputs read-only on top of them (the eval stage's code inside its own folder)."""
        rw = writable_dirs(spec)
        if os.getuid() == 0:
            for path in rw:
                _hand_over(path, self.uid)
        ro = [p for p in read_only_sources(spec.read_only) if p not in rw]
        if spec.log_path.exists() and any(within(spec.log_path, d) for d in rw):
            ro.append(spec.log_path)  # pgolf's record of the stage, in its folder: not the stage's to rewrite
        system = _interpreter_roots([self.python])
        ro += [p for p in _interpreter_roots([spec.argv[0], *spec.env.values()]) if p not in ro + system]
        binds: list[tuple[Path, str]] = sorted(
            [(p, "--bind") for p in rw] + [(p, "--ro-bind") for p in ro],
            key=lambda item: (len(item[0].parts), item[1] == "--ro-bind"),
        )
        return _parent_dirs([p for p, _ in binds] + system) + [
            arg for path, flag in binds for arg in (flag, str(path.resolve()), str(path))
        ]

    def _path(self) -> list[str]:
        return [str(Path(self.python).parent), "/usr/local/bin", "/usr/bin", "/bin"]


def _version(argv: list[str | None]) -> str | None:
    if argv[0] is None:
        return None
    try:
        # argv[0] is not None here (checked above); the rest are literal arguments
        out = subprocess.run(cast("list[str]", argv), capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0] if out else None


def _default_memory() -> int:
    """Three quarters of the machine's memory, per process: a runaway stage fails, the host stays up."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4)
    except (ValueError, OSError):
        return 16 * GIB


def _interpreter_roots(values: Sequence[object]) -> list[Path]:
    """Install prefixes of the Python interpreters named (a venv and the interpreter it links to),
    outside the system directories that are mounted anyway."""
    roots: list[Path] = []
    for value in values:
        if not isinstance(value, str) or not value.startswith("/") or not Path(value).name.startswith("python"):
            continue
        for exe in (Path(value), Path(os.path.realpath(value))):
            if exe.parent.name == "bin" and exe.exists():
                roots.append(exe.parent.parent)
    if any(Path(v).name.startswith("python") for v in values if isinstance(v, str)):
        roots += [Path(p) for p in (sys.prefix, sys.base_prefix) if Path(p).exists()]
    system = [Path(p) for p in SYSTEM_DIRS]
    unique: list[Path] = []
    for root in sorted(set(roots), key=lambda p: len(p.parts)):
        if not any(root == s or s in root.parents for s in system + unique):
            unique.append(root)
    return unique


def _parent_dirs(dests: list[Path]) -> list[str]:
    """bubblewrap makes a mount point's missing parents 0700 (root's then): make them 0755 first,
    so the sandbox's uid can reach what is mounted below them."""
    fixed = ("/", "/tmp", "/dev", "/proc", "/sys", *SYSTEM_DIRS)
    wanted = {
        parent
        for dest in dests
        for parent in dest.parents
        if str(parent) not in fixed
        and not any(parent == d or d in parent.parents for d in dests)
        and not any(Path(f) in parent.parents for f in SYSTEM_DIRS)
    }
    return [
        arg
        for parent in sorted(wanted, key=lambda p: len(p.parts))
        for arg in ("--perms", "0755", "--dir", str(parent))
    ]


def _gpu_mounts() -> list[str]:
    args = []
    for node in sorted(Path("/dev").glob("nvidia*")) + [Path("/dev/dri")]:
        if node.exists():
            args += ["--dev-bind", str(node), str(node)]
    return args


def _hand_over(path: Path, uid: int) -> None:
    """Root runs the stage as SANDBOX_UID: let that user write its outputs (what pgolf put there too)."""
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            try:
                os.lchown(name, uid, uid)
            except OSError:
                pass


def _copy(source: BufferedIOBase, sink: IO[bytes]) -> None:
    for chunk in iter(lambda: source.read1(65536), b""):
        sink.write(chunk)


def _exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _stop(proc: subprocess.Popen[bytes], ns: pidns.Namespace, grace_s: float) -> None:
    """SIGTERM to the stage's processes (the supervisor passes it on), SIGKILL to the namespace after the grace."""
    if ns.ready.wait(timeout=1) and ns.inode is not None:
        pidns.signal_members(ns.inode, signal.SIGTERM, FIRST_STAGE_PID)
    if not _exited(proc, grace_s):
        _kill(proc, ns)


def _kill(proc: subprocess.Popen[bytes], ns: pidns.Namespace) -> None:
    pidns.kill_namespace(ns, proc.pid)
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()


def _result(spec: StageSpec, code: int | None, wall: float, killed: bool, trace: nettrace.Trace) -> StageResult:
    notes = _network_notes(spec, trace)
    if killed:
        return StageResult(
            spec.name,
            "timeout",
            code,
            wall,
            killed=True,
            notes=[f"killed at {wall:.1f} s, cap {spec.cap_s:.0f} s", *notes],
            connections=trace.connections,
        )
    return StageResult(
        spec.name, "ok" if code == 0 else "failed", code, wall, notes=notes, connections=trace.connections
    )


def _network_notes(spec: StageSpec, trace: nettrace.Trace) -> list[str]:
    """One note per process and address; R-NETWORK where the stage may not use the network."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for conn in trace.connections:
        if not conn.internal:
            grouped.setdefault((conn.cmdline, conn.address), []).append(conn.result)
    label = "R-NETWORK" if not spec.network else "network"
    notes = [
        f"{label}: the {spec.name} stage's process `{cmd}` tried to reach {address} "
        f"({', '.join(sorted(set(results)))}; {len(results)} attempt(s)); the sandbox has no network"
        for (cmd, address), results in grouped.items()
    ]
    if trace.truncated:
        notes.append(
            f"{label}: the connection trace of the {spec.name} stage was cut at "
            f"{nettrace.MAX_TRACE_BYTES:,} bytes; attempts after that are not listed"
        )
    return notes
