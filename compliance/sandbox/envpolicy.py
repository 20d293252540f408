"""Which environment a sandboxed stage sees: what pgolf set for it, plus a short allowlist of the caller's.

The caller's environment holds tokens and keys (HF_TOKEN, AWS_*, SSH_AUTH_SOCK...) that no
submission needs; a denylist would always miss one. Only names pgolf set for the stage
(its paths and knobs) and the allowlist below pass, and the sandbox sets its own PATH,
HOME, USER and TMPDIR (and PYTHONDONTWRITEBYTECODE).
"""

from __future__ import annotations

import os
import re

from .base import StageSpec

CALLER_ALLOWED = re.compile(
    r"^(LANG|LANGUAGE|LC_[A-Z]+|TZ|(OMP|MKL|OPENBLAS)_NUM_THREADS"
    r"|CUDA_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|CUDA_DEVICE_ORDER)$"
)
SANDBOX_SET = {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "PWD", "OLDPWD", "SHELL"}


def allowed_environment(spec: StageSpec) -> dict[str, str]:
    """What pgolf set for the stage, and the caller's names on the allowlist."""
    return {
        name: value for name, value in spec.env.items() if name not in spec.caller_env or CALLER_ALLOWED.match(name)
    }


def stage_environment(spec: StageSpec, path: list[str], home: str = "/tmp") -> dict[str, str]:
    env = {name: value for name, value in allowed_environment(spec).items() if name not in SANDBOX_SET}
    # no bytecode caches written into the stage's copy: the run is thrown away, and a .pyc written
    # beside the script would look to the tracer like an artifact write
    env.update(
        PATH=os.pathsep.join(path), HOME=home, TMPDIR="/tmp", USER="pgolf", LOGNAME="pgolf", PYTHONDONTWRITEBYTECODE="1"
    )
    return env
