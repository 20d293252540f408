"""`pgolf env`: a preflight of the image a run is about to use.

It asks the interpreter what it really has (torch, CUDA, cuDNN, FlashAttention 3, GPUs
and their compute capability, the driver, every locked package) and compares that with
the lock baked into the image at build time (/etc/pgolf/env-lock.json). Any difference is
one line and a failing exit: a record made on a drifted image must not look pinned.
The JSON form is what the pipeline copies into each record's provenance.

Exit codes: 0 matches the lock, 1 differs, 2 no readable lock (not inside the image).
Also runnable as `python -m pgolf.pipeline.env_check [--json] [--lock PATH]`.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

LOCK_PATH = Path("/etc/pgolf/env-lock.json")
BUILD_PATH = Path("/etc/pgolf/build.json")
SCALARS = ("torch", "cuda", "cudnn", "flash_attn_3")


class EnvLockError(Exception):
    """The lock is missing or unreadable: nothing to compare against."""


@dataclass
class EnvReport:
    observed: dict
    expected: dict | None
    differences: list[str] = field(default_factory=list)
    build: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.expected is not None and not self.differences

    @property
    def exit_code(self) -> int:
        if self.expected is None:
            return 2
        return 0 if self.ok else 1

    def to_json(self) -> dict:
        return {"format": "pgolf-env/1", "ok": self.ok, **asdict(self)}


def _torch_facts() -> dict:
    facts = {"torch": None, "cuda": None, "cudnn": None, "gpu_count": 0, "gpus": [], "capabilities": []}
    try:
        import torch
    except Exception as exc:  # a broken install is a finding, not a crash
        facts["torch_error"] = f"{type(exc).__name__}: {exc}"
        return facts
    facts["torch"] = torch.__version__
    facts["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        facts["cudnn"] = torch.backends.cudnn.version()
        facts["gpu_count"] = count
        facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
        facts["capabilities"] = [list(torch.cuda.get_device_capability(i)) for i in range(count)]
    return facts


def _fa3() -> bool:
    try:
        import flash_attn_interface  # noqa: F401  (FA3's module name)
    except Exception:
        return False
    return True


def _driver() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    versions = sorted({line.strip() for line in out.splitlines() if line.strip()})
    return ",".join(versions) or None


def _versions(names: list[str]) -> dict[str, str | None]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def probe(package_names: list[str] = ()) -> dict:
    """What this interpreter has, asked of the libraries themselves."""
    observed = {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "python_full": platform.python_version(),
        **_torch_facts(),
        "flash_attn_3": _fa3(),
        "driver": _driver(),
    }
    observed["packages"] = _versions(list(package_names))
    return observed


def compare(observed: dict, expected: dict) -> list[str]:
    diffs = []
    for key in ("python",) + SCALARS:
        if key in expected and observed.get(key) != expected[key]:
            diffs.append(f"{key}: expected {expected[key]!r}, found {observed.get(key)!r}")
    if expected.get("gpu_required") and not observed.get("gpu_count"):
        diffs.append("gpus: the image expects at least one GPU, found none")
    min_sm = expected.get("min_sm")
    if min_sm and observed.get("gpu_count"):
        for name, cap in zip(observed["gpus"], observed["capabilities"], strict=False):
            if list(cap) < list(min_sm):
                diffs.append(f"gpu {name}: compute capability sm{cap[0]}{cap[1]} is below sm{min_sm[0]}{min_sm[1]}")
    for name, version in sorted(expected.get("packages", {}).items()):
        found = observed.get("packages", {}).get(name)
        if found != version:
            diffs.append(f"package {name}: expected {version}, found {found or 'not installed'}")
    return diffs


def load_lock(path: Path) -> dict:
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnvLockError(f"no environment lock at {path} (pgolf env runs inside the pgolf image)") from None
    except (OSError, ValueError) as exc:
        raise EnvLockError(f"{path}: unreadable environment lock ({exc})") from None
    if not isinstance(lock, dict) or not isinstance(lock.get("packages", {}), dict):
        raise EnvLockError(f"{path}: not an environment lock")
    return lock


def _read_build(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check(lock_path: Path = LOCK_PATH, build_path: Path = BUILD_PATH) -> EnvReport:
    try:
        expected = load_lock(lock_path)
    except EnvLockError as exc:
        return EnvReport(observed=probe(), expected=None, build=_read_build(build_path), error=str(exc))
    observed = probe(sorted(expected.get("packages", {})))
    return EnvReport(observed, expected, compare(observed, expected), _read_build(build_path))


def render_text(report: EnvReport) -> str:
    o = report.observed
    gpus = ", ".join(o["gpus"]) or "none"
    lines = [
        f"python {o['python_full']}  torch {o['torch']}  cuda {o['cuda']}  cudnn {o['cudnn']}  "
        f"fa3 {'yes' if o['flash_attn_3'] else 'no'}",
        f"gpus {o['gpu_count']}: {gpus}  driver {o['driver']}",
    ]
    if report.error:
        lines.append(f"pgolf env: cannot check: {report.error}")
    elif report.ok:
        lines.append(f"pgolf env: matches the lock ({len(report.expected.get('packages', {}))} packages)")
    else:
        lines += [f"pgolf env: DIFFERS: {d}" for d in report.differences]
    return "\n".join(lines)


def run_env(lock_path: Path | None, as_json: bool, echo: Callable[[str], None] = print) -> int:
    """The body of `pgolf env`: print the report, return the exit code."""
    report = check(lock_path or LOCK_PATH)
    echo(json.dumps(report.to_json(), indent=2, sort_keys=True) if as_json else render_text(report))
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="pgolf env", description="Compare this environment with the image lock.")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument("--lock", type=Path, default=None, help=f"lock file [default: {LOCK_PATH}]")
    args = parser.parse_args(argv)
    return run_env(args.lock, args.json)


if __name__ == "__main__":
    sys.exit(main())
