"""Loaded by every Python process of a dynamic-check run (this folder is first on PYTHONPATH).

It must stay importable without pgolf installed (a second interpreter may run the script),
and it never touches a script's behaviour unless the harness asked for it:
- PGOLF_SHIM_DEVICE=cpu: run CUDA-only scripts on the CPU (pgolf_shim_device);
- PGOLF_LEDGER_DIR=<dir>: record the token ledger and the runtime trace (pgolf_shim_tracer).
Both patch torch through the one post-import hook of pgolf_shim_hooks. A shim that fails to
install says so on stderr and the run goes on: the parent sees the missing ledger and reports
the check as not run, rather than the script failing for us.
"""

import os
import sys

from pgolf_shim_hooks import when_imported  # noqa: F401 - the hook, for code that looks here


def _install(module_name: str) -> None:
    try:
        module = __import__(module_name)
        module.install()
    except Exception as exc:  # noqa: BLE001 - a broken shim must not look like a broken script
        sys.stderr.write(f"pgolf-shim: {module_name} not installed: {type(exc).__name__}: {exc}\n")


if os.environ.get("PGOLF_SHIM_DEVICE") == "cpu":
    _install("pgolf_shim_device")
if os.environ.get("PGOLF_LEDGER_DIR"):
    _install("pgolf_shim_tracer")
