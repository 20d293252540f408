"""Where a stage's process runs. The pipeline asks a Runtime to run a StageSpec; the dynamic
checks reuse the same interface.

RUNTIMES is the registry: the CLIs' --runtime choices, their help and the default all come
from it, and a runtime's optional abilities are methods of Runtime (base.py). Adding a
runtime is one module with a Runtime subclass and one line here.
"""

from __future__ import annotations

from .base import (
    Connection,
    Runtime,
    RuntimeOptions,
    SandboxUnavailable,
    StageResult,
    StageSpec,
    caller_environment,
    compose_env,
)
from .bwrap import BwrapRuntime
from .docker import DockerRuntime
from .local import LocalRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    "bwrap": BwrapRuntime,
    "docker": DockerRuntime,
    "local": LocalRuntime,
}
DEFAULT_SANDBOX = "bwrap"  # untrusted code runs here unless told otherwise


def runtime_names() -> list[str]:
    return sorted(RUNTIMES)


def runtime_help() -> str:
    return "; ".join(f"{name}: {RUNTIMES[name].summary}" for name in runtime_names())


def get_runtime(name: str, options: RuntimeOptions | None = None) -> Runtime:
    try:
        cls = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(runtime_names())})") from None
    return cls.from_options(options or RuntimeOptions())


def choose_runtime(
    name: str | None, options: RuntimeOptions | None = None, *, trusted: bool = False, unsafe_local: bool = False
) -> Runtime:
    """The runtime for a run: `name`, else the default sandbox (the local runtime for trusted code).

    Untrusted code never runs unisolated by accident: a runtime that isolates nothing needs
    `unsafe_local`, and a sandbox that cannot start here is refused (SandboxUnavailable, one
    line) unless `unsafe_local` allows the local runtime instead.
    """
    options = options or RuntimeOptions()
    runtime = get_runtime(name or ("local" if trusted else DEFAULT_SANDBOX), options)
    if not runtime.isolated and not (trusted or unsafe_local):
        raise SandboxUnavailable(
            f"the {runtime.name} runtime does not isolate untrusted code; pass --unsafe-local to run it anyway"
        )
    why = runtime.unavailable()
    if why is None:
        return runtime
    if unsafe_local and name in (None, DEFAULT_SANDBOX):
        return get_runtime("local", options)
    hint = "; pass --unsafe-local to run without a sandbox" if name in (None, DEFAULT_SANDBOX) else ""
    raise SandboxUnavailable(f"runtime {runtime.name}: {why}{hint}")


def dynamic_runtime(stages: Runtime, trusted: bool = False) -> Runtime:
    """Where the dynamic check of a record runs: the stages' own isolation on the CPU if it has one,
    else the default sandbox; for untrusted code SandboxUnavailable when that cannot start, for
    trusted code (the bundled reference) the local runtime then."""
    variant = stages.cpu_variant()
    if variant is not None and variant.unavailable() is None:
        return variant
    return choose_runtime(None, RuntimeOptions(device="cpu"), unsafe_local=trusted)


__all__ = [
    "Connection",
    "Runtime",
    "RuntimeOptions",
    "SandboxUnavailable",
    "StageResult",
    "StageSpec",
    "BwrapRuntime",
    "DockerRuntime",
    "LocalRuntime",
    "RUNTIMES",
    "DEFAULT_SANDBOX",
    "runtime_names",
    "runtime_help",
    "get_runtime",
    "choose_runtime",
    "dynamic_runtime",
    "caller_environment",
    "compose_env",
]
