"""Run a stage in a container of the pinned image, with the cap enforced from outside.

The same semantics as LocalRuntime (the clock runs from before the container is created
until it has exited; on the cap SIGTERM, then SIGKILL after the grace period; output
streamed to the log as it comes), plus the limits of the bubblewrap sandbox: only the
spec's paths are mounted, each at its own host path so the PGOLF_* values stay valid,
read-only unless listed writable, on a read-only root; no network for any stage
(--network none); a non-root user with no capabilities and no-new-privileges; the
environment pgolf set plus the sandbox allowlist (envpolicy); pid, memory and
shared-memory limits. tini (init=True) forwards SIGTERM to the whole process tree, so
torchrun workers die with their launcher as they do locally.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .base import Runtime, RuntimeOptions, StageResult, StageSpec, Tick, wait_under_cap
from .envpolicy import allowed_environment
from .mounts import read_only_sources, within, writable_dirs

if TYPE_CHECKING:  # the SDK is imported only when this runtime is chosen
    from docker.client import DockerClient
    from docker.models.containers import Container
    from docker.types import DeviceRequest, Mount

IMAGE_USER = "10001:10001"  # the image's `pgolf` user
NET_AUDIT_MARK = b"pgolf-net-audit:"
# the host's own environment: meaningless or harmful inside the image
HOST_ONLY_NAMES = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "HOSTNAME",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "MAIL",
}
HOST_ONLY_PREFIXES = ("PYENV_", "CONDA_", "SSH_", "XDG_", "DOCKER_")
# what a blocked connection looks like when the script reports it itself
NET_ERRORS = re.compile(
    rb"Network is unreachable|Temporary failure in name resolution|Name or service not known"
    rb"|No address associated with hostname|\[Errno -3\]|\[Errno 101\]"
)


class DockerRuntimeError(Exception):
    """No engine answers, or the image is missing."""


class DockerRuntime(Runtime):
    name = "docker"
    summary = "a container of the pinned image (--image): no network, read-only, non-root, limits"

    def __init__(
        self,
        image: str = "pgolf:cpu",
        gpus: bool = False,
        shm_size: str = "8g",
        memory: str | None = None,
        pids_limit: int = 4096,
        user: str | None = None,
        client: DockerClient | None = None,
    ) -> None:
        self.image, self.gpus, self.shm_size = image, gpus, shm_size
        self.memory, self.pids_limit = memory or _default_memory(), pids_limit
        self.user = user or _default_user()
        self._client = client

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> DockerRuntime:
        gpu = options.device == "cuda"
        return cls(image=options.image or ("pgolf:cuda" if gpu else "pgolf:cpu"), gpus=gpu)

    def unavailable(self) -> str | None:
        try:
            self.client.images.get(self.image)
        except DockerRuntimeError as exc:
            return str(exc)
        except Exception as exc:
            return f"image {self.image!r} not found ({type(exc).__name__})"
        return None

    def cpu_variant(self) -> DockerRuntime | None:
        """A CPU container of the same image; a CUDA image has no CPU variant to offer."""
        return None if self.gpus else self

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            import docker  # the SDK is only needed when this runtime is chosen

            try:
                self._client = docker.from_env()
                self._client.ping()
            except Exception as exc:
                raise DockerRuntimeError(f"no docker engine answers ({type(exc).__name__}: {exc})") from None
        return self._client

    def describe(self) -> dict[str, Any]:
        try:
            image = self.client.images.get(self.image)
        except DockerRuntimeError:
            raise
        except Exception as exc:
            raise DockerRuntimeError(f"image {self.image!r} not found ({type(exc).__name__})") from None
        return {
            "runtime": "docker",
            "image": self.image,
            "image_id": image.id,
            "repo_digests": image.attrs.get("RepoDigests", []),
            "labels": image.labels,
            "gpus": self.gpus,
            "user": self.user,
        }

    def env_report(self) -> dict[str, Any]:
        """`pgolf env --json` as the image sees itself (with the GPUs a stage would get), for provenance."""
        import json

        options: dict[str, Any] = dict(
            network_mode="none", user=self.user, init=True, cap_drop=["ALL"], security_opt=["no-new-privileges"]
        )
        if self.gpus:
            options["device_requests"] = self._options_gpus()
        container = self.client.containers.create(
            self.image, ["python", "-m", "pgolf.pipeline.env_check", "--json"], **options
        )
        try:
            container.start()
            container.wait(timeout=300)
            out = container.logs(stdout=True, stderr=False)
        finally:
            _remove(container)
        try:
            report: dict[str, Any] = json.loads(out)
            return report
        except ValueError:
            raise DockerRuntimeError(f"{self.image}: pgolf env printed no report") from None

    def _options_gpus(self) -> list[DeviceRequest]:
        import docker.types

        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]

    def run(self, spec: StageSpec, tick: Tick | None = None) -> StageResult:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        scan = _Scanner()
        with open(spec.log_path, "ab", buffering=0) as log:
            start = time.monotonic()
            container = self.client.containers.create(**self._options(spec))
            try:
                container.start()
                pump = threading.Thread(target=_copy, args=(container, log, scan), daemon=True)
                pump.start()
                killed = wait_under_cap(
                    lambda t: _exited(container, t), lambda: _stop(container, spec.grace_s), spec, start, tick
                )
                code = container.wait()["StatusCode"]
                wall = time.monotonic() - start
                pump.join(timeout=5)
            except BaseException:  # pgolf itself interrupted: take the stage down with it
                _stop(container, spec.grace_s)
                raise
            finally:
                _remove(container)
        return _result(spec, code, wall, killed, scan)

    def _options(self, spec: StageSpec) -> dict[str, Any]:
        options = dict(
            image=self.image,
            command=_argv(spec.argv),
            environment=_environment(spec),
            working_dir=str(spec.cwd),
            mounts=_mounts(spec, self.user),
            user=self.user,
            name=f"pgolf-{spec.name}-{uuid.uuid4().hex[:10]}",
            init=True,
            shm_size=self.shm_size,
            pids_limit=self.pids_limit,
            read_only=True,
            tmpfs={"/tmp": "exec,mode=1777"},
            labels={"io.pgolf.stage": spec.name},
            stdin_open=False,
            detach=True,
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=self.memory,
            memswap_limit=self.memory,
        )
        if self.gpus:
            options["device_requests"] = self._options_gpus()
        return options


def _default_memory() -> str:
    """Three quarters of the machine's memory: a runaway stage is killed, the host stays up."""
    try:
        return str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4)
    except (ValueError, OSError):
        return "16g"


def _default_user() -> str:
    """The caller's own uid, so outputs are theirs; the image's user when the caller is root."""
    uid = os.getuid()
    return IMAGE_USER if uid == 0 else f"{uid}:{os.getgid()}"


def _argv(argv: list[str]) -> list[str]:
    """The host's interpreter path means nothing in the image: use the image's python."""
    if argv and Path(argv[0]).name.startswith("python"):
        return ["python", *argv[1:]]
    return list(argv)


def _environment(spec: StageSpec) -> dict[str, str]:
    env = {
        k: v
        for k, v in allowed_environment(spec).items()
        if k not in HOST_ONLY_NAMES and not k.startswith(HOST_ONLY_PREFIXES)
    }
    if _mounted_path_list(spec.env.get("PYTHONPATH", ""), spec.read_only):
        env["PYTHONPATH"] = spec.env["PYTHONPATH"]  # e.g. the dynamic checks' shim, mounted at its host path
    env["HOME"] = "/tmp"
    env["PGOLF_NET_AUDIT"] = "1"  # no stage has a network: every attempt is worth reporting
    return env


def _mounted_path_list(value: str, read_only: Sequence[str | Path]) -> bool:
    """A host PYTHONPATH means something inside only when each entry is a read-only input."""
    parts = [Path(p) for p in value.split(os.pathsep) if p]
    return bool(parts) and all(any(_within(p, Path(r)) for r in read_only) for p in parts)


def _mounts(spec: StageSpec, user: str) -> list[Mount]:
    """Bind mounts at the host paths: read-only inputs (and the files their links point to), writable outputs."""
    from docker.types import Mount

    writable = writable_dirs(spec)
    for path in writable:
        _hand_over(path, user)
    mounts = {str(p): Mount(str(p), str(p.resolve()), type="bind", read_only=False) for p in writable}
    for path in read_only_sources(spec.read_only):
        mounts.setdefault(str(path), Mount(str(path), str(path.resolve()), type="bind", read_only=True))
    return list(mounts.values())


_read_only_sources = read_only_sources  # the name the tests know
_within = within


def _hand_over(path: Path, user: str) -> None:
    """Root on the host runs stages as the image's user: let that user write its output directory."""
    if os.getuid() != 0:
        return
    uid, _, gid = user.partition(":")
    try:
        os.chown(path, int(uid), int(gid or uid))
    except (OSError, ValueError):
        pass


class _Scanner:
    """Watches the output for network attempts (the image's audit hook, or the script's own errors)."""

    def __init__(self) -> None:
        self.audit: list[str] = []
        self.errors = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        text = self._tail + chunk
        lines = text.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._tail:
            self._line(self._tail)
            self._tail = b""

    def _line(self, line: bytes) -> None:
        if line.startswith(NET_AUDIT_MARK):
            self.audit.append(line[len(NET_AUDIT_MARK) :].decode("utf-8", "replace").strip())
        elif NET_ERRORS.search(line):
            self.errors += 1


def _copy(container: Container, sink: IO[bytes], scan: _Scanner) -> None:
    """Stream output to the log as it comes, so a killed stage keeps what it printed."""
    try:
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            sink.write(chunk)
            scan.feed(chunk)
    except Exception:  # the container went away under us: what was written stays written
        pass
    scan.close()


def _exited(container: Container, timeout: float) -> bool:
    import requests

    try:
        container.wait(timeout=timeout)
        return True
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return False


def _stop(container: Container, grace_s: float) -> None:
    """SIGTERM (forwarded by tini to the tree), SIGKILL after the grace period."""
    try:
        container.stop(timeout=max(1, int(round(grace_s))))
    except Exception:
        pass


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except Exception:
        pass


def _result(spec: StageSpec, code: int | None, wall: float, killed: bool, scan: _Scanner) -> StageResult:
    notes = _network_notes(spec, scan)
    if killed:
        return StageResult(
            spec.name,
            "timeout",
            code,
            wall,
            killed=True,
            notes=[f"killed at {wall:.1f} s, cap {spec.cap_s:.0f} s", *notes],
        )
    return StageResult(spec.name, "ok" if code == 0 else "failed", code, wall, notes=notes)


def _network_notes(spec: StageSpec, scan: _Scanner) -> list[str]:
    if not (scan.audit or scan.errors):
        return []
    seen = "; ".join(scan.audit[:3]) if scan.audit else f"{scan.errors} network error line(s) in its output"
    label = "network" if spec.network else "R-NETWORK"
    return [f"{label}: the {spec.name} stage tried to use the network, which it does not have ({seen})"]
