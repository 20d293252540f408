"""A stand-in for Triton where none is installed (the CPU build of torch brings none).

Record scripts import triton at module level, decorate a few kernels with @triton.jit and launch
them; on a CPU the device shim runs the known kernels as torch references (pgolf_shim_triton) and
refuses the others. This package only has to import and decorate: it is on sys.path after the
real site-packages, so an installed Triton always wins, and the device shim replaces `jit`,
`autotune` and `heuristics` as soon as it is imported.
"""

__version__ = "0.0+pgolf-cpu-stand-in"

from . import language  # noqa: F401,E402


def jit(fn=None, **options):
    raise RuntimeError("pgolf-shim: Triton stand-in imported without the device shim: cannot run kernels")


def autotune(configs=None, key=None, **kwargs):
    return lambda kernel: kernel


def heuristics(values=None):
    return lambda kernel: kernel


class Config:
    def __init__(self, kwargs=None, num_warps=4, num_stages=2, num_ctas=1, pre_hook=None, **more):
        self.kwargs, self.num_warps, self.num_stages, self.num_ctas = (
            dict(kwargs or {}),
            num_warps,
            num_stages,
            num_ctas,
        )
        self.pre_hook = pre_hook


def cdiv(a, b):
    return -(-a // b)


def next_power_of_2(n):
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()
