"""The one post-import hook of a dynamic-check run: run a callback once a module is imported.

sitecustomize, the device shim and the tracer all patch modules (torch, triton) only in processes
that import them, so torchrun's launcher and plain helpers pay nothing. They share this hook, so
the patches run in the order they were armed (the device shim first) and none hides another.
Standard library only: it runs in every Python process of the run.
"""

import importlib.abc
import importlib.util
import sys

_WAITING: dict = {}


def when_imported(name: str, callback) -> None:
    """Run callback() once `name` has been imported (now, if it already was)."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__spec__", None) is not None and name not in _WAITING:
        callback()
        return
    _WAITING.setdefault(name, []).append(callback)
    _arm()


class _PostImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a module someone waits on, it asks the other finders and wraps the
    loader so the callbacks run right after the module's code."""

    def find_spec(self, name, path=None, target=None):
        if name not in _WAITING:
            return None
        callbacks = _WAITING.pop(name)
        try:
            spec = importlib.util.find_spec(name)  # the other finders, now that we no longer wait
        except BaseException:
            _WAITING.setdefault(name, []).extend(callbacks)
            raise
        if spec is None:  # not importable for this importer (torch is refused the Triton stand-in)
            _WAITING.setdefault(name, []).extend(callbacks)
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            for callback in callbacks:
                callback()

        spec.loader.exec_module = exec_module
        return spec


_FINDER = _PostImport()


def _arm() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
