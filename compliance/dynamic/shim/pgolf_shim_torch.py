"""torch patches that run a CUDA-only record script on the CPU, unmodified.

- `torch.cuda.is_available()` / `device_count()` answer as a GPU machine would to the script,
  and truthfully to torch's own code (pgolf_shim_gpu.called_from_internals);
- a TorchFunctionMode turns CUDA device arguments into CPU ones; it is pushed in the main thread
  and in every thread started later (loader threads); it forwards to whatever modes lie below
  it, so a tracer's mode composes with it;
- `t.is_cuda` is True when the script asks; torch.cuda's other functions are pgolf_shim_cuda's;
- torch.compile is the identity (PGOLF_SHIM_COMPILE=inductor keeps the real one); autocast on
  "cuda" becomes CPU autocast with the same dtype; the SDPA backend toggles are no-ops;
- NCCL process groups become gloo, device_id(s) are dropped, DDP gets no device_ids;
- torch.load maps CUDA locations to the CPU;
- `torch.Generator(device="cuda")` (a class, which no TorchFunctionMode sees) makes a CPU generator.
Each patch is applied on its own: one that fails is named on the shim's stderr line, and the
others still help.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pgolf_shim_cuda import patch_cuda_module
from pgolf_shim_gpu import called_from_internals, fake_gpu_count, null_context

_KEEP: list[Any] = []  # objects that must outlive the patch (the main-thread mode)


@dataclass
class _Patched:
    names: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.names.append(name)


def patch_torch(torch: ModuleType, known_kernels: int = 0) -> None:
    done = _Patched()
    steps = (
        _patch_availability,
        _push_device_mode,
        patch_cuda_module,
        _patch_is_cuda,
        _patch_compile,
        _patch_autocast,
        _patch_sdp_toggles,
        _patch_distributed,
        _patch_load,
        _patch_generator,
        _patch_flex_attention,
    )
    for step in steps:
        try:
            step(torch, done)
        except Exception as exc:  # noqa: BLE001 - the others still help; the line says what failed
            done.add(f"FAILED {step.__name__}: {type(exc).__name__}: {exc}")
    # No find_spec("triton") here: a post-import hook may fire on lookup alone and be spent.
    done.add(f"triton: {known_kernels} known kernels->torch, others refused")
    sys.stderr.write(f"pgolf-shim: device=cpu ({', '.join(done.names)})\n")


def _patch_availability(torch: ModuleType, done: _Patched) -> None:
    cuda = torch.cuda
    real_available, real_count = cuda.is_available, cuda.device_count

    def is_available() -> bool:
        return real_available() if called_from_internals() else True

    def device_count() -> int:
        return real_count() if called_from_internals() else fake_gpu_count()

    cuda.is_available, cuda.device_count = is_available, device_count
    done.add("cuda.is_available for the script")


def _push_device_mode(torch: ModuleType, done: _Patched) -> None:
    mode_class = _device_mode_class(torch)
    main_mode = mode_class()
    main_mode.__enter__()
    _KEEP.append(main_mode)
    bootstrap = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def bootstrap_with_mode(self) -> None:
        with mode_class():
            bootstrap(self)

    threading.Thread._bootstrap_inner = bootstrap_with_mode  # type: ignore[attr-defined]
    done.add("cuda devices->cpu (all threads)")


def _device_mode_class(torch: ModuleType) -> type:
    from torch.overrides import TorchFunctionMode

    cpu = torch.device("cpu")
    device_type = torch.device
    tensor = torch.Tensor
    # Positions where a bare "cuda" string or int means a device (Tensor.to(0), as_tensor(d, t, dev)).
    device_positions = {tensor.to: 1, torch.as_tensor: 2}
    replaced = {
        tensor.cuda: lambda args, kwargs: args[0],
        tensor.pin_memory: lambda args, kwargs: args[0].clone(),
        tensor.record_stream: lambda args, kwargs: None,
    }

    def is_cuda_spec(value: Any, bare_ok: bool) -> bool:
        if isinstance(value, device_type):
            return value.type == "cuda"
        if isinstance(value, str):
            return value == "cuda" or value.startswith("cuda:")
        return bare_ok and isinstance(value, int) and not isinstance(value, bool)

    def cpu_kwargs(kwargs: dict) -> dict:
        if is_cuda_spec(kwargs.get("device"), True):
            kwargs = {**kwargs, "device": cpu}
        if kwargs.get("pin_memory"):
            kwargs = {**kwargs, "pin_memory": False}
        return kwargs

    def needs_cpu(index: int, value: Any, position: int | None) -> bool:
        if isinstance(value, device_type):
            return value.type == "cuda"
        return index == position and is_cuda_spec(value, True)

    def cpu_args(args: tuple, position: int | None) -> tuple:
        for index, value in enumerate(args):
            if needs_cpu(index, value, position):
                break
        else:
            return args
        return tuple(cpu if needs_cpu(i, v, position) else v for i, v in enumerate(args))

    class CpuDeviceMode(TorchFunctionMode):
        """Rewrites CUDA device arguments to CPU, then defers to the modes below."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            try:
                handler = replaced.get(func)
                position = device_positions.get(func)
            except TypeError:  # an unhashable callable: nothing of ours
                handler, position = None, None
            if handler is not None:
                return handler(args, kwargs)
            if kwargs:
                kwargs = cpu_kwargs(kwargs)
            return func(*cpu_args(args, position), **kwargs)

    return CpuDeviceMode


def _patch_is_cuda(torch: ModuleType, done: _Patched) -> None:
    # Not TensorBase.is_cuda.__get__: under a TorchFunctionMode that getter re-dispatches to
    # torch.Tensor.is_cuda, i.e. back here, from a frame that is not torch's.
    def is_cuda(self) -> bool:
        return self.device.type == "cuda" if called_from_internals() else True

    torch.Tensor.is_cuda = property(is_cuda)
    done.add("Tensor.is_cuda for the script")


def _patch_compile(torch: ModuleType, done: _Patched) -> None:
    if os.environ.get("PGOLF_SHIM_COMPILE") == "inductor":
        done.add("compile=inductor (real)")
        return

    def compile(model=None, **kwargs):  # noqa: A001 - torch.compile's own name
        return model if model is not None else (lambda fn: fn)

    torch.compile = compile
    done.add("compile=identity")


def _patch_autocast(torch: ModuleType, done: _Patched) -> None:
    base = torch.amp.autocast_mode.autocast

    class autocast(base):  # noqa: N801 - replaces torch.autocast under its own name
        def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
            if device_type == "cuda":  # CUDA autocast defaults to float16; keep its dtype
                device_type, dtype = "cpu", (torch.float16 if dtype is None else dtype)
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    class cuda_amp_autocast(autocast):  # noqa: N801
        def __init__(self, enabled=True, dtype=None, cache_enabled=True):
            super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    torch.autocast = torch.amp.autocast = autocast
    torch.cuda.amp.autocast = cuda_amp_autocast
    done.add("autocast cuda->cpu")


def _patch_sdp_toggles(torch: ModuleType, done: _Patched) -> None:
    backends = torch.backends.cuda
    for name in ("enable_flash_sdp", "enable_mem_efficient_sdp", "enable_math_sdp", "enable_cudnn_sdp"):
        if hasattr(backends, name):
            setattr(backends, name, lambda enabled=True: None)
    backends.sdp_kernel = null_context
    torch.nn.attention.sdpa_kernel = null_context
    done.add("sdp toggles no-op")


def _patch_distributed(torch: ModuleType, done: _Patched) -> None:
    import torch.distributed as dist

    if not dist.is_available():
        return
    _patch_process_groups(dist)
    _patch_ddp(torch)
    done.add("nccl->gloo, DDP device_ids dropped")


def _gloo(backend: Any) -> Any:
    return "gloo" if backend is not None and "nccl" in str(backend).lower() else backend


def _patch_process_groups(dist: ModuleType) -> None:
    real_init, real_new_group, real_barrier = dist.init_process_group, dist.new_group, dist.barrier

    def init_process_group(backend=None, *args, **kwargs):
        kwargs.pop("device_id", None)
        if _gloo(backend) != backend:
            kwargs.pop("pg_options", None)
        return real_init(_gloo(backend), *args, **kwargs)

    def new_group(ranks=None, timeout=None, backend=None, *args, **kwargs):
        kwargs.pop("device_id", None)
        if _gloo(backend) != backend:
            kwargs.pop("pg_options", None)
            args = (None,) + args[1:] if args else args
        return real_new_group(ranks, timeout, _gloo(backend), *args, **kwargs)

    def barrier(group=None, async_op=False, device_ids=None, *args, **kwargs):
        return real_barrier(group, async_op, None, *args, **kwargs)

    dist.init_process_group, dist.new_group, dist.barrier = init_process_group, new_group, barrier


def _patch_ddp(torch: ModuleType) -> None:
    parallel = torch.nn.parallel
    base = parallel.DistributedDataParallel

    class DistributedDataParallel(base):
        def __init__(self, module, device_ids=None, output_device=None, *args, **kwargs):
            super().__init__(module, None, None, *args, **kwargs)

    DistributedDataParallel.__qualname__ = "DistributedDataParallel"
    parallel.DistributedDataParallel = DistributedDataParallel


def _patch_load(torch: ModuleType, done: _Patched) -> None:
    real_load = torch.load

    def cpu_location(location: Any) -> Any:
        if isinstance(location, dict):
            return {key: cpu_location(value) for key, value in location.items()}
        if isinstance(location, (str, torch.device)) and str(location).startswith("cuda"):
            return "cpu"
        return location

    def load(f, map_location=None, *args, **kwargs):
        return real_load(f, cpu_location(map_location), *args, **kwargs)

    torch.load = load
    done.add("torch.load map_location")


def _patch_generator(torch: ModuleType, done: _Patched) -> None:
    base = torch.Generator

    def on_cpu(device: Any) -> Any:
        kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
        return "cpu" if kind == "cuda" else device

    class Generator(base):  # type: ignore[misc, valid-type]  # a subclass: isinstance checks still hold
        def __new__(cls, device: Any = "cpu") -> Any:
            return base.__new__(cls, on_cpu(device))

        def __init__(self, device: Any = "cpu") -> None:  # the base took the device in __new__
            pass

    torch.Generator = Generator
    done.add("Generator(cuda)->cpu")


def _patch_flex_attention(torch: ModuleType, done: _Patched) -> None:
    """FlexAttention has no CPU backward: a dense stand-in (pgolf_shim_flex), put in place when the
    module is imported, before a script's `from ... import flex_attention` binds the name."""
    from pgolf_shim_hooks import when_imported

    def patch() -> None:
        from pgolf_shim_flex import flex_attention

        sys.modules["torch.nn.attention.flex_attention"].flex_attention = flex_attention

    when_imported("torch.nn.attention.flex_attention", patch)
    done.add("flex_attention->dense")
