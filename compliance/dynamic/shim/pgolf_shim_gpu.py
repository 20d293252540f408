"""The simulated GPU: what it is, how many there are, and who is told about it.

The script is told it runs on H100s (one per rank); torch's own code (and triton's) is told the
truth, judged by the calling frame's module, since torch.compile, RNG and distributed code break
when they believe in a GPU. Standard library only: the fake nvidia-smi imports it too.
"""

from __future__ import annotations

import contextlib
import os
import sys

GPU_NAME = "NVIDIA H100 80GB HBM3"
GPU_MEMORY_MIB = 81559
GPU_SMS = 132
DRIVER_VERSION = "550.54.15"
CUDA_VERSION = "12.4"
_INTERNAL_ROOTS = frozenset({"torch", "functorch", "triton"})


def called_from_internals(level: int = 1) -> bool:
    """True when the function `level` frames up was called by torch/triton's own code."""
    frame = sys._getframe(level + 1)
    name = frame.f_globals.get("__name__") or ""
    return name.split(".", 1)[0] in _INTERNAL_ROOTS


def fake_gpu_count() -> int:
    """One GPU per local rank, as on the machines the records ran on."""
    for key in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        try:
            return max(1, int(os.environ[key]))
        except (KeyError, ValueError):
            continue
    return 1


@contextlib.contextmanager
def null_context(*args, **kwargs):
    yield
