"""triton.language for the stand-in: kernels only name these in signatures and bodies that never run
on a CPU (their launches go to torch references), so every name is a placeholder."""


class constexpr:  # noqa: N801 - Triton's own name
    def __init__(self, value=None):
        self.value = value

    def __repr__(self):
        return f"constexpr[{self.value!r}]"


class dtype:  # noqa: N801
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"triton.language.{self.name}"


_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int1",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float8e4nv",
    "float8e5",
)
globals().update({name: dtype(name) for name in _DTYPES})


class _Builtin:
    """A kernel builtin (tl.load, tl.dot, ...): callable only inside a kernel, which never runs here."""

    def __init__(self, name):
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"pgolf-shim: triton.language.{self.__name__} outside a kernel: cannot run on CPU")

    def __getattr__(self, name):
        return _Builtin(f"{self.__name__}.{name}")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Builtin(name)
