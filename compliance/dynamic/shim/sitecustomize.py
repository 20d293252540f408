"""Loaded by every Python process of a dynamic-check run (this folder is first on PYTHONPATH).

It must stay importable without pgolf installed (a second interpreter may run the script),
and it never touches a script's behaviour unless the harness asked for it:
- PGOLF_SHIM_DEVICE=cpu: run CUDA-only scripts on the CPU (pgolf_shim_device);
- PGOLF_LEDGER_DIR=<dir>: record the token ledger and the runtime trace (pgolf_shim_tracer).
A shim that fails to install says so on stderr and the run goes on: the parent sees the
missing ledger and reports the check as not run, rather than the script failing for us.
"""
import importlib.abc
import importlib.util
import os
import sys

_WAITING: dict = {}


def when_imported(name: str, callback) -> None:
    """Run callback() once `name` has been imported (now, if it already was).

    The shims patch torch only in processes that import it (torchrun's launcher and plain
    helpers pay nothing), and both shims share this one hook so neither hides the other.
    """
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__spec__", None) is not None and name not in _WAITING:
        callback()
        return
    _WAITING.setdefault(name, []).append(callback)


class _PostImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in _WAITING:
            return None
        callbacks = _WAITING.pop(name)
        spec = importlib.util.find_spec(name)  # the other finders, now that we no longer wait
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            for callback in callbacks:
                callback()
        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PostImport())


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
