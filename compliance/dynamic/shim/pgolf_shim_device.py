"""Run CUDA-only record scripts unmodified on the CPU (PGOLF_SHIM_DEVICE=cpu): the installer.

sitecustomize calls `install()` in every Python process of a dynamic-check run (torchrun's
launcher included), so this module imports only the standard library and the shim's own
modules, one job each:
- pgolf_shim_hooks: the one post-import hook; torch and triton are patched when, and only if, a
  process imports them, so a process that never imports torch pays nothing but the fake
  `nvidia-smi` put on PATH at install;
- pgolf_shim_smi: that fake `nvidia-smi`; pgolf_shim_gpu: the simulated GPU and who is told of it;
- pgolf_shim_torch: torch patches (devices, compile, autocast, distributed, load), with
  pgolf_shim_cuda's fakes of torch.cuda;
- pgolf_shim_triton: the Triton kernels found in record scripts, as torch references; where no
  Triton is installed, fallback/triton stands in for it, for the script only (torch's own code
  must go on seeing no Triton, or it takes its GPU paths);
- fallback/mamba_ssm, fallback/causal_conv1d: those CUDA-only packages' ops in plain torch, found
  only where they are not installed (the finder sits last on sys.meta_path).
What is patched and why is the table in shared/notes/cpu-harness.md.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from types import ModuleType

from pgolf_shim_hooks import when_imported

SMI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pgolf_shim_smi.py")
FALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fallback")
_INSTALLED = False


def install() -> None:
    """Arm the CPU stand-ins; idempotent, cheap, and silent until torch is imported."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    _install_fake_nvidia_smi()
    from pgolf_shim_triton import offer_stand_in

    offer_stand_in(FALLBACK_DIR)
    sys.meta_path.append(_CudaOnlyPackages(FALLBACK_DIR))
    when_imported("torch", lambda: _run_patch(_patch_torch, "torch"))
    when_imported("triton", lambda: _run_patch(_patch_triton, "triton"))


class _CudaOnlyPackages:
    """Last on sys.meta_path: CUDA-only packages a record imports, from the stand-in folder, when
    nothing before it found them installed."""

    NAMES = ("mamba_ssm", "causal_conv1d")

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def find_spec(self, name, path=None, target=None):
        if name not in self.NAMES:
            return None
        import importlib.machinery

        return importlib.machinery.PathFinder.find_spec(name, [self.folder])


def _patch_torch(torch: ModuleType) -> None:
    from pgolf_shim_torch import patch_torch
    from pgolf_shim_triton import hide_stand_in_from, known_kernels

    patch_torch(torch, known_kernels())
    hide_stand_in_from(torch)


def _patch_triton(triton: ModuleType) -> None:
    from pgolf_shim_triton import patch_triton

    patch_triton(triton)


def _run_patch(patch: Callable[[ModuleType], None], name: str) -> None:
    # A failed patch must not look like a failed script import: say so and carry on.
    try:
        patch(sys.modules[name])
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"pgolf-shim: {patch.__name__} failed: {type(exc).__name__}: {exc}\n")


def _install_fake_nvidia_smi() -> None:
    """Put an executable `nvidia-smi` first on PATH; children reuse the parent's copy."""
    existing = os.environ.get("PGOLF_SHIM_BIN", "")
    if existing and os.access(os.path.join(existing, "nvidia-smi"), os.X_OK):
        _prepend_path(existing)
        return
    folder = tempfile.mkdtemp(prefix="pgolf-shim-bin-")
    launcher = os.path.join(folder, "nvidia-smi")
    python = sys.executable or "python3"
    with open(launcher, "w", encoding="utf-8") as handle:
        handle.write(f'#!/bin/sh\nexec {shlex.quote(python)} -I -S {shlex.quote(SMI_SCRIPT)} "$@"\n')
    os.chmod(launcher, 0o755)
    os.environ["PGOLF_SHIM_BIN"] = folder
    _prepend_path(folder)
    _remove_at_exit(folder)


def _prepend_path(folder: str) -> None:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts and parts[0] == folder:
        return
    os.environ["PATH"] = os.pathsep.join([folder] + [p for p in parts if p != folder])


def _remove_at_exit(folder: str) -> None:
    import atexit
    import shutil

    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # a forked child must not delete its parent's copy
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
