"""Where a stage's process runs. The pipeline asks a Runtime to run a StageSpec;
local runs it as a child process group, a container runtime can run the same
spec with its own isolation. The dynamic checks reuse the same interface."""
from .base import Runtime, StageResult, StageSpec
from .docker import DockerRuntime
from .local import LocalRuntime

RUNTIMES = {"local": LocalRuntime, "docker": DockerRuntime}


def get_runtime(name: str, **options) -> Runtime:
    try:
        return RUNTIMES[name](**options)
    except KeyError:
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})") from None


__all__ = ["Runtime", "StageResult", "StageSpec", "LocalRuntime", "DockerRuntime", "get_runtime", "RUNTIMES"]
