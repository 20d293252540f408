"""Run CUDA-only record scripts unmodified on the CPU (PGOLF_SHIM_DEVICE=cpu).

sitecustomize calls `install()` in every Python process of a dynamic-check run (torchrun's
launcher included), so this module imports only the standard library. torch and triton are
patched when, and only if, the process imports them (a post-import hook), so a process that
never imports torch pays nothing but the fake `nvidia-smi` written at install.

What is patched and why is the table in shared/notes/cpu-harness.md:
- `torch.cuda.is_available()` / `device_count()` answer as a GPU machine would to the script,
  and truthfully (False / 0) to torch's own code (judged by the calling frame's module), since
  torch.compile, RNG and distributed code break when they believe in a GPU;
- a TorchFunctionMode turns CUDA device arguments into CPU ones; it is pushed in the main thread
  and in every thread started later (loader threads); it forwards to whatever modes lie below
  it, so a tracer's mode composes with it;
- torch.cuda timing, streams, memory, RNG, nvtx and device queries become no-ops or fakes of an
  H100 (sm_90) for the script (torch's own callers still get the CPU build's functions);
  `t.is_cuda` is True when the script asks;
- torch.compile is the identity (PGOLF_SHIM_COMPILE=inductor keeps the real one); autocast on
  "cuda" becomes CPU autocast with the same dtype; the SDPA backend toggles are no-ops;
- NCCL process groups become gloo, device_id(s) are dropped, DDP gets no device_ids;
- the three Triton kernels found in record scripts run as torch references (see _KERNEL_REFERENCES);
  any other kernel launch raises RuntimeError, since it cannot be checked on CPU.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.util
import inspect
import os
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional

GPU_NAME = "NVIDIA H100 80GB HBM3"
GPU_MEMORY_MIB = 81559
GPU_SMS = 132
_INTERNAL_ROOTS = frozenset({"torch", "functorch", "triton"})
_INSTALLED = False
_KEEP: List[Any] = []  # objects that must outlive install() (the main-thread mode)


# ---------------------------------------------------------------- install and import hooks


def install() -> None:
    """Arm the CPU stand-ins; idempotent, cheap, and silent until torch is imported."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    _install_fake_nvidia_smi()
    for name, patch in (("torch", _patch_torch), ("triton", _patch_triton)):
        _after_import(name, patch)


def _after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Patch `name` now if imported, else right after its import.

    The shim's sitecustomize offers one post-import hook shared with the tracer (so the device
    patch runs first and neither hook hides the other); without it, our own finder does the job."""
    if name in sys.modules:
        _run_patch(patch, sys.modules[name])
        return
    shared = getattr(sys.modules.get("sitecustomize"), "when_imported", None)
    if callable(shared):
        shared(name, lambda: _run_patch(patch, sys.modules[name]))
        return
    if _OWN_HOOKS not in sys.meta_path:
        sys.meta_path.insert(0, _OWN_HOOKS)
    _OWN_HOOKS.add(name, patch)


class _PostImportHooks(importlib.abc.MetaPathFinder):
    """Runs a patch right after a top-level module finishes executing its __init__ (fallback)."""

    def __init__(self) -> None:
        self._hooks: Dict[str, Callable[[ModuleType], None]] = {}
        self._resolving: set = set()

    def add(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self._hooks[name] = patch

    def find_spec(self, fullname, path=None, target=None):
        patch = self._hooks.get(fullname)
        if patch is None or fullname in self._resolving:
            return None
        self._resolving.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._resolving.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self._wrap_loader(spec.loader, fullname, patch)
        return spec

    def _wrap_loader(self, loader, fullname: str, patch: Callable[[ModuleType], None]) -> None:
        execute = loader.exec_module

        def exec_then_patch(module: ModuleType) -> None:
            execute(module)
            self._hooks.pop(fullname, None)
            _run_patch(patch, module)

        loader.exec_module = exec_then_patch


_OWN_HOOKS = _PostImportHooks()


def _run_patch(patch: Callable[[ModuleType], None], module: ModuleType) -> None:
    # A failed patch must not look like a failed script import: say so and carry on.
    try:
        patch(module)
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"pgolf-shim: {patch.__name__} failed: {type(exc).__name__}: {exc}\n")


def _called_from_internals(level: int = 1) -> bool:
    """True when the function `level` frames up was called by torch/triton's own code."""
    frame = sys._getframe(level + 1)
    name = frame.f_globals.get("__name__") or ""
    return name.split(".", 1)[0] in _INTERNAL_ROOTS


def _fake_gpu_count() -> int:
    for key in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        try:
            return max(1, int(os.environ[key]))
        except (KeyError, ValueError):
            continue
    return 1


# ---------------------------------------------------------------- fake nvidia-smi

_FAKE_SMI = r""""pgolf-shim: simulated nvidia-smi for CPU dynamic checks (the run is on CPU)."
import os
import sys
import time

NAME, MEM, DRIVER, CUDA = "@NAME@", @MEM@, "550.54.15", "12.4"


def count():
    for key in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        if os.environ.get(key, "").isdigit():
            return max(1, int(os.environ[key]))
    return 1


def field(name, i):
    values = {
        "name": NAME, "gpu_name": NAME, "index": str(i), "count": str(count()),
        "uuid": "GPU-00000000-0000-0000-0000-" + str(i).zfill(12), "driver_version": DRIVER,
        "memory.total": f"{MEM} MiB", "memory.used": "0 MiB", "memory.free": f"{MEM} MiB",
        "utilization.gpu": "0 %", "utilization.memory": "0 %", "temperature.gpu": "30",
        "power.draw": "70.00 W", "power.limit": "700.00 W", "compute_cap": "9.0",
        "pci.bus_id": f"00000000:{0x18 + i:02X}:00.0", "clocks.sm": "1980 MHz",
        "clocks.max.sm": "1980 MHz", "persistence_mode": "Enabled",
    }
    return values.get(name, "[N/A]")


def query(spec, fmt):
    names = [f.strip() for f in spec.split(",") if f.strip()]
    if "noheader" not in fmt:
        print(", ".join(names))
    for i in range(count()):
        values = [field(n, i) for n in names]
        if "nounits" in fmt:
            values = [v.rsplit(" ", 1)[0] if v.endswith((" MiB", " %", " W", " MHz")) else v for v in values]
        print(", ".join(values))


def table():
    rule = "+-----------------------------------------+------------------------+----------------------+"
    print(time.strftime("%a %b %d %H:%M:%S %Y"))
    print("+" + "-" * 89 + "+")
    print(f"| NVIDIA-SMI {DRIVER:<21} Driver Version: {DRIVER:<14} CUDA Version: {CUDA:<9}|")
    print("|" + rule[1:])
    print("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |")
    print("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |")
    print("|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|")
    for i in range(count()):
        print(f"| {i:>3}  {NAME:<28}  On  |   00000000:{0x18 + i:02X}:00.0 Off |                    0 |")
        print(f"| N/A   30C    P0             70W /  700W |       0MiB /  {MEM:>5}MiB |      0%      Default |")
        print(rule)
    print("(pgolf-shim: simulated nvidia-smi; this run is on CPU)")


def main(argv):
    if "-L" in argv or "--list-gpus" in argv:
        for i in range(count()):
            print(f"GPU {i}: {NAME} (UUID: {field('uuid', i)})")
        return 0
    specs = [a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")]
    fmt = "".join(a.split("=", 1)[1] for a in argv if a.startswith("--format="))
    if specs:
        query(specs[0], fmt)
    else:
        table()
    return 0


sys.exit(main(sys.argv[1:]))
"""


def _install_fake_nvidia_smi() -> None:
    """Put an executable `nvidia-smi` first on PATH; children reuse the parent's copy."""
    existing = os.environ.get("PGOLF_SHIM_BIN", "")
    if existing and os.access(os.path.join(existing, "nvidia-smi"), os.X_OK):
        _prepend_path(existing)
        return
    folder = tempfile.mkdtemp(prefix="pgolf-shim-bin-")
    script = os.path.join(folder, "nvidia_smi.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(_FAKE_SMI.replace("@NAME@", GPU_NAME).replace("@MEM@", str(GPU_MEMORY_MIB)))
    launcher = os.path.join(folder, "nvidia-smi")
    python = sys.executable or "python3"
    with open(launcher, "w", encoding="utf-8") as handle:
        handle.write(f'#!/bin/sh\nexec {shlex.quote(python)} -I -S {shlex.quote(script)} "$@"\n')
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


# ---------------------------------------------------------------- torch


@dataclass
class _Patched:
    names: List[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.names.append(name)


def _patch_torch(torch: ModuleType) -> None:
    done = _Patched()
    steps = (_patch_availability, _push_device_mode, _patch_cuda_module, _patch_is_cuda, _patch_compile,
             _patch_autocast, _patch_sdp_toggles, _patch_distributed, _patch_load)
    for step in steps:
        try:
            step(torch, done)
        except Exception as exc:  # noqa: BLE001 - the others still help; the line says what failed
            done.add(f"FAILED {step.__name__}: {type(exc).__name__}: {exc}")
    # No find_spec("triton") here: a post-import hook may fire on lookup alone and be spent.
    done.add(f"triton: {len(_KERNEL_REFERENCES)} known kernels->torch, others refused")
    sys.stderr.write(f"pgolf-shim: device=cpu ({', '.join(done.names)})\n")


def _patch_availability(torch: ModuleType, done: _Patched) -> None:
    cuda = torch.cuda
    real_available, real_count = cuda.is_available, cuda.device_count

    def is_available() -> bool:
        return real_available() if _called_from_internals() else True

    def device_count() -> int:
        return real_count() if _called_from_internals() else _fake_gpu_count()

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

    def needs_cpu(index: int, value: Any, position: Optional[int]) -> bool:
        if isinstance(value, device_type):
            return value.type == "cuda"
        return index == position and is_cuda_spec(value, True)

    def cpu_args(args: tuple, position: Optional[int]) -> tuple:
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
        return self.device.type == "cuda" if _called_from_internals() else True

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
    backends.sdp_kernel = _null_context
    torch.nn.attention.sdpa_kernel = _null_context
    done.add("sdp toggles no-op")


@contextlib.contextmanager
def _null_context(*args, **kwargs):
    yield


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


# ---------------------------------------------------------------- torch.cuda fakes


class _FakeEvent:
    """torch.cuda.Event on the host clock: record() stamps time, elapsed_time() is in ms."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False,
                 **kwargs) -> None:
        self._stamp: Optional[float] = None

    def record(self, stream: Any = None) -> None:
        self._stamp = time.perf_counter()

    def elapsed_time(self, end_event: "_FakeEvent") -> float:
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

    def record_event(self, event: Optional[_FakeEvent] = None) -> _FakeEvent:
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


def _patch_cuda_module(torch: ModuleType, done: _Patched) -> None:
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
        return real(*args, **kwargs) if _called_from_internals() else fake(*args, **kwargs)

    dispatch.__name__ = getattr(real, "__name__", "fake")
    dispatch.__doc__ = getattr(real, "__doc__", None)
    return dispatch


def _device_fakes() -> Dict[str, Any]:
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
        "device": _null_context,
    }


def _memory_fakes() -> Dict[str, Any]:
    import collections

    zero = lambda device=None: 0  # noqa: E731
    none = lambda device=None: None  # noqa: E731
    total = GPU_MEMORY_MIB * 1024 * 1024
    fakes: Dict[str, Any] = {
        name: zero
        for name in ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved")
    }
    fakes.update({
        name: none
        for name in ("reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats",
                     "empty_cache", "ipc_collect")
    })
    fakes["memory_stats"] = lambda device=None: collections.defaultdict(int)
    fakes["memory_summary"] = lambda device=None, abbreviated=False: "pgolf-shim: no CUDA memory on CPU\n"
    fakes["mem_get_info"] = lambda device=None: (total, total)
    fakes["set_per_process_memory_fraction"] = lambda fraction, device=None: None
    return fakes


def _rng_fakes(torch: ModuleType) -> Dict[str, Any]:
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


def _stream_fakes() -> Dict[str, Any]:
    default = _FakeStream()
    return {
        "Event": _FakeEvent,
        "Stream": _FakeStream,
        "stream": _null_context,
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
    nvtx.range = _null_context


# ---------------------------------------------------------------- Triton

# Kernel names seen in record scripts, with their parameter count (constexprs included). The
# references follow the kernels' semantics as declared by their names and argument lists;
# matching is by name and arity only: fingerprinting each kernel by its source is pending
# (the fingerprint is printed at first launch so known sources can be pinned later).
_KERNEL_ARITY = {
    "linear_leaky_relu_square_kernel": 12,
    "_softcapped_ce_fwd_kernel": 10,
    "_softcapped_ce_bwd_kernel": 13,
}
_ANNOUNCED: set = set()


def _patch_triton(triton: ModuleType) -> None:
    real_autotune, real_heuristics = getattr(triton, "autotune", None), getattr(triton, "heuristics", None)
    triton.jit = _shim_jit
    if real_autotune is not None:
        triton.autotune = _passthrough_decorator(real_autotune)
    if real_heuristics is not None:
        triton.heuristics = _passthrough_decorator(real_heuristics)


def _shim_jit(fn=None, **options):
    """triton.jit replacement: the kernel becomes a ShimKernel launched through torch."""
    if fn is None:
        return lambda inner: ShimKernel(inner)
    return ShimKernel(fn)


def _passthrough_decorator(real: Callable) -> Callable:
    # autotune/heuristics only tune launch parameters, which the references ignore.
    def decorator_factory(*args, **kwargs):
        real_decorator = real(*args, **kwargs)

        def decorate(kernel):
            return kernel if isinstance(kernel, ShimKernel) else real_decorator(kernel)

        return decorate

    return decorator_factory


class ShimKernel:
    """A @triton.jit function whose launches `kernel[grid](...)` run a torch reference."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "<kernel>")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        return self._launch

    def run(self, *args, grid: Any = None, warmup: bool = False, **kwargs) -> None:
        return self._launch(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"pgolf-shim: Triton kernel {self.__name__} called outside a launch")

    def _launch(self, *args, **kwargs) -> None:
        reference = _KERNEL_REFERENCES.get(self.__name__)
        if reference is None:
            raise RuntimeError(f"pgolf-shim: unknown Triton kernel {self.__name__}: cannot check on CPU")
        values = self._bind(args, kwargs)
        if len(values) != _KERNEL_ARITY[self.__name__]:
            raise RuntimeError(
                f"pgolf-shim: Triton kernel {self.__name__} takes {len(values)} arguments, the known one "
                f"{_KERNEL_ARITY[self.__name__]}: cannot check on CPU"
            )
        self._announce()
        reference(values)

    def _bind(self, args: tuple, kwargs: dict) -> List[Any]:
        # Launch options (num_warps, num_stages, ...) are not kernel parameters: drop them.
        signature = inspect.signature(self.fn)
        own = {key: value for key, value in kwargs.items() if key in signature.parameters}
        try:
            bound = signature.bind(*args, **own)
        except TypeError as exc:
            raise RuntimeError(f"pgolf-shim: Triton kernel {self.__name__}: {exc}: cannot check on CPU") from None
        bound.apply_defaults()
        return list(bound.arguments.values())

    def _announce(self) -> None:
        if self.__name__ in _ANNOUNCED:
            return
        _ANNOUNCED.add(self.__name__)
        sys.stderr.write(
            f"pgolf-shim: Triton kernel {self.__name__} (source sha256 {kernel_fingerprint(self.fn)}) "
            "-> torch reference\n"
        )


def kernel_fingerprint(fn: Callable) -> str:
    """First 16 hex digits of the sha256 of the kernel's AST (decorators, docstring and comments
    left out, so reformatting or recommenting keeps it); 'unavailable' without source."""
    import ast
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return "unavailable"
    function = tree.body[0]
    function.decorator_list = []
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        function.body = body[1:]
    return hashlib.sha256(ast.dump(function).encode()).hexdigest()[:16]


def _tensor_of(arg: Any):
    # TensorDescriptor (TMA) arguments carry their tensor as `.base`.
    return getattr(arg, "base", arg)


def _ref_linear_leaky_relu_square(values: List[Any]) -> None:
    """Forward: c = a @ b.T, aux = leaky_relu(c, 0.5)**2. Backward (FORWARD false): aux holds
    the pre-activation and c = (a @ b.T) * d/dpre[leaky_relu(pre, 0.5)**2]."""
    import torch

    a, b, c, aux = (_tensor_of(v) for v in values[:4])
    forward = bool(values[-1])
    with torch.no_grad():
        product = (a.float() @ b.float().T).to(c.dtype).float()
        if forward:
            c.copy_(product)
            activated = torch.where(product > 0, product, 0.5 * product)
            aux.copy_(activated * activated)
        else:
            pre = aux.float()
            c.copy_(product * torch.where(pre > 0, 2.0 * pre, 0.5 * pre))


def _ref_softcapped_ce_fwd(values: List[Any]) -> None:
    """losses = cross-entropy of softcap * tanh(logits / softcap) per row; lse keeps the
    kernel's convention (the log-sum-exp of the softcapped logits shifted by +softcap)."""
    import torch
    import torch.nn.functional as F

    logits, losses, lse, targets = (_tensor_of(v) for v in values[:4])
    softcap = float(values[8])
    with torch.no_grad():
        capped = softcap * torch.tanh(logits.float() / softcap)
        logz = torch.logsumexp(capped, dim=-1)
        # not F.cross_entropy: the tracer would see it only when no custom_op hides it; it is
        # told directly instead, so a wrapped and an unwrapped kernel are traced alike
        losses.copy_(logz - capped.gather(1, targets.long()[:, None])[:, 0])
        lse.copy_(logz + softcap)
    _tell_tracer("kernel_loss", capped, targets, losses)


def _ref_softcapped_ce_bwd(values: List[Any]) -> None:
    """grad_logits = grad_loss * (softmax(capped) - onehot(target)) * (1 - tanh(logits/softcap)**2).
    Recomputed from the logits (the saved lse is not needed), and without F.cross_entropy so the
    backward pass is not mistaken for a second scoring of the tokens."""
    import torch

    grad_logits, grad_losses, _lse, logits, targets = (_tensor_of(v) for v in values[:5])
    softcap = float(values[11])
    with torch.no_grad():
        tanh = torch.tanh(logits.float() / softcap)
        probs = torch.softmax(softcap * tanh, dim=-1)
        probs[torch.arange(probs.shape[0]), targets.long()] -= 1.0
        grad = grad_losses.float()[:, None] * probs * (1.0 - tanh * tanh)
        grad_logits.copy_(grad)
    _tell_tracer("kernel_backward", targets)


def _tell_tracer(name: str, *args) -> None:
    tracer = sys.modules.get("pgolf_shim_tracer")
    if tracer is not None:
        getattr(tracer, name)(*args)


_KERNEL_REFERENCES: Dict[str, Callable[[List[Any]], None]] = {
    "linear_leaky_relu_square_kernel": _ref_linear_leaky_relu_square,
    "_softcapped_ce_fwd_kernel": _ref_softcapped_ce_fwd,
    "_softcapped_ce_bwd_kernel": _ref_softcapped_ce_bwd,
}
