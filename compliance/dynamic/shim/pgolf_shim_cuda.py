"""torch.cuda for a script on the CPU: timing, streams, memory, RNG, nvtx and device queries.

Each becomes a no-op or a fake of an H100 (sm_90) for the script; torch's own callers keep the
CPU build's functions (being told CUDA is unavailable, they expect those to fail or answer as on
CPU). "cuda" random ops draw from the CPU generator, so the CUDA RNG state is the CPU one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pgolf_shim_gpu import GPU_MEMORY_MIB, GPU_NAME, GPU_SMS, called_from_internals, null_context


class _FakeEvent:
    """torch.cuda.Event on the host clock: record() stamps time, elapsed_time() is in ms."""

    def __init__(
        self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False, **kwargs
    ) -> None:
        self._stamp: float | None = None

    def record(self, stream: Any = None) -> None:
        self._stamp = time.perf_counter()

    def elapsed_time(self, end_event: _FakeEvent) -> float:
        if self._stamp is None or end_event._stamp is None:
            raise RuntimeError("pgolf-shim: elapsed_time on an Event that was not recorded")
        return (end_event._stamp - self._stamp) * 1000.0

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        return None

    def wait(self, stream: Any = None) -> None:
        return None


class _FakeStream:
    def __init__(self, device: Any = None, priority: int = 0, **kwargs) -> None:
        self.device = device
        self.priority = priority

    def wait_stream(self, stream: Any) -> None:
        return None

    def wait_event(self, event: Any) -> None:
        return None

    def record_event(self, event: _FakeEvent | None = None) -> _FakeEvent:
        event = event or _FakeEvent()
        event.record()
        return event

    def synchronize(self) -> None:
        return None

    def query(self) -> bool:
        return True


@dataclass(frozen=True)
class _DeviceProperties:
    name: str = GPU_NAME
    major: int = 9
    minor: int = 0
    total_memory: int = GPU_MEMORY_MIB * 1024 * 1024
    multi_processor_count: int = GPU_SMS
    L2_cache_size: int = 50 * 1024 * 1024
    warp_size: int = 32
    max_threads_per_multi_processor: int = 2048
    is_integrated: int = 0
    is_multi_gpu_board: int = 0
    uuid: str = "00000000-0000-0000-0000-000000000000"


@dataclass
class _CudaState:
    device: int = 0


def patch_cuda_module(torch: ModuleType, done) -> None:
    cuda = torch.cuda
    fakes = {**_device_fakes(), **_memory_fakes(), **_rng_fakes(torch), **_stream_fakes()}
    for name, fake in fakes.items():
        real = getattr(cuda, name, None)
        if callable(real) and not isinstance(fake, type):
            fake = _for_the_script(fake, real)
        setattr(cuda, name, fake)
    _patch_nvtx(cuda.nvtx)
    done.add(f"torch.cuda fakes ({len(fakes)}) for the script")


def _for_the_script(fake: Callable, real: Callable) -> Callable:
    """The fake for the script, the real CPU-build function for torch's own code (which,
    being told CUDA is unavailable, expects these calls to fail or answer as on CPU)."""

    def dispatch(*args, **kwargs):
        return real(*args, **kwargs) if called_from_internals() else fake(*args, **kwargs)

    dispatch.__name__ = getattr(real, "__name__", "fake")
    dispatch.__doc__ = getattr(real, "__doc__", None)
    return dispatch


def _device_fakes() -> dict[str, Any]:
    rank = os.environ.get("LOCAL_RANK", "0")
    state = _CudaState(int(rank) if rank.isdigit() else 0)

    def set_device(device: Any) -> None:
        index = getattr(device, "index", device)
        state.device = int(index) if isinstance(index, int) else 0

    return {
        "set_device": set_device,
        "current_device": lambda: state.device,
        "synchronize": lambda device=None: None,
        "init": lambda: None,
        "get_device_properties": lambda device=None: _DeviceProperties(),
        "get_device_name": lambda device=None: GPU_NAME,
        "get_device_capability": lambda device=None: (9, 0),
        "get_arch_list": lambda: ["sm_90"],
        "is_bf16_supported": lambda including_emulation=True: True,
        "is_tf32_supported": lambda: True,
        "utilization": lambda device=None: 0,
        "set_sync_debug_mode": lambda debug_mode: None,
        "device": null_context,
    }


def _memory_fakes() -> dict[str, Any]:
    import collections

    zero = lambda device=None: 0  # noqa: E731
    none = lambda device=None: None  # noqa: E731
    total = GPU_MEMORY_MIB * 1024 * 1024
    fakes: dict[str, Any] = {
        name: zero for name in ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved")
    }
    fakes.update(
        {
            name: none
            for name in (
                "reset_peak_memory_stats",
                "reset_max_memory_allocated",
                "reset_accumulated_memory_stats",
                "empty_cache",
                "ipc_collect",
            )
        }
    )
    fakes["memory_stats"] = lambda device=None: collections.defaultdict(int)
    fakes["memory_summary"] = lambda device=None, abbreviated=False: "pgolf-shim: no CUDA memory on CPU\n"
    fakes["mem_get_info"] = lambda device=None: (total, total)
    fakes["set_per_process_memory_fraction"] = lambda fraction, device=None: None
    return fakes


def _rng_fakes(torch: ModuleType) -> dict[str, Any]:
    # "cuda" random ops now draw from the CPU generator, so the CUDA RNG state *is* the CPU one;
    # seeding calls are no-ops because torch.manual_seed already seeds that generator.
    noop = lambda *args, **kwargs: None  # noqa: E731
    return {
        "manual_seed": noop,
        "manual_seed_all": noop,
        "seed": noop,
        "seed_all": noop,
        "initial_seed": lambda: torch.initial_seed(),
        "get_rng_state": lambda device="cuda": torch.get_rng_state(),
        "set_rng_state": lambda new_state, device="cuda": torch.set_rng_state(new_state),
        "get_rng_state_all": lambda: [torch.get_rng_state()],
        "set_rng_state_all": lambda new_states: torch.set_rng_state(new_states[0]),
    }


def _stream_fakes() -> dict[str, Any]:
    default = _FakeStream()
    return {
        "Event": _FakeEvent,
        "Stream": _FakeStream,
        "stream": null_context,
        "current_stream": lambda device=None: default,
        "default_stream": lambda device=None: default,
        "set_stream": lambda stream: None,
    }


def _patch_nvtx(nvtx: ModuleType) -> None:
    nvtx.range_push = lambda msg: 0
    nvtx.range_pop = lambda: 0
    nvtx.range_start = lambda msg: 0
    nvtx.range_end = lambda range_id: None
    nvtx.mark = lambda msg: None
    nvtx.range = null_context
