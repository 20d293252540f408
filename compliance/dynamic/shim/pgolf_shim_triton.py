"""Triton kernels of record scripts as torch references, for a CPU with no Triton backend.

`triton.jit` becomes ShimKernel: a launch `kernel[grid](...)` runs the torch reference registered
under the kernel's name and arity; any other kernel raises RuntimeError (it cannot be checked on
CPU). autotune and heuristics only tune launch parameters, which the references ignore. The fused
cross-entropy reference tells the tracer about its losses directly, since a custom_op may hide
it from the tracer's TorchFunctionMode.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

_INTERNAL_ROOTS = frozenset({"torch", "functorch"})

# Kernel names seen in record scripts, with their parameter count (constexprs included). The
# references follow the kernels' semantics as declared by their names and argument lists;
# matching is by name and arity only: fingerprinting each kernel by its source is pending
# (the fingerprint is printed at first launch so known sources can be pinned later).
_KERNEL_ARITY = {
    "linear_leaky_relu_square_kernel": 12,
    "_fused_leaky_relu_sq_kernel": 12,
    "_softcapped_ce_fwd_kernel": 10,
    "_softcapped_ce_bwd_kernel": 13,
}
_ANNOUNCED: set = set()


def patch_triton(triton: ModuleType) -> None:
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

    def _bind(self, args: tuple, kwargs: dict) -> list[Any]:
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


def _ref_linear_leaky_relu_square(values: list[Any]) -> None:
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


def _ref_fused_leaky_relu_sq(values: list[Any]) -> None:
    """c = bf16(a @ b.T) (fp32 accumulation, then the kernel's bf16 cast); act_grad = the derivative
    of leaky_relu(c, 0.5)**2 (2c, or c/2 below zero) into c_desc, post = leaky_relu(c, 0.5)**2 =
    act_grad * c / 2 into aux_desc."""
    import torch

    a, b, act_grad, post = (_tensor_of(v) for v in values[:4])
    with torch.no_grad():
        c = (a.float() @ b.float().T).to(torch.bfloat16).float()
        grad = torch.where(c > 0, 2.0 * c, 0.5 * c)
        act_grad.copy_(grad)
        post.copy_(grad.mul_(c).mul_(0.5))


def _ref_softcapped_ce_fwd(values: list[Any]) -> None:
    """losses = cross-entropy of softcap * tanh(logits / softcap) per row; lse keeps the
    kernel's convention (the log-sum-exp of the softcapped logits shifted by +softcap)."""
    import torch

    logits, losses, lse, targets = (_tensor_of(v) for v in values[:4])
    softcap = float(values[8])
    with torch.no_grad():  # in place on its own temporaries: these rows are (tokens x vocabulary)
        capped = (logits.float() / softcap).tanh_().mul_(softcap)
        logz = torch.logsumexp(capped, dim=-1)
        # not F.cross_entropy: the tracer would see it only when no custom_op hides it; it is
        # told directly instead, so a wrapped and an unwrapped kernel are traced alike
        losses.copy_(logz - capped.gather(1, targets.long()[:, None])[:, 0])
        lse.copy_(logz + softcap)
    _tell_tracer("kernel_loss", capped, targets, losses)


def _ref_softcapped_ce_bwd(values: list[Any]) -> None:
    """grad_logits = grad_loss * (softmax(capped) - onehot(target)) * (1 - tanh(logits/softcap)**2),
    the softmax from the saved lse (the forward reference's own), recomputed where it does not fit;
    without F.cross_entropy, so the backward pass is not mistaken for a second scoring of the tokens."""
    import torch

    grad_logits, grad_losses, lse, logits, targets = (_tensor_of(v) for v in values[:5])
    softcap = float(values[11])
    with torch.no_grad():  # in place on its own temporaries: these rows are (tokens x vocabulary)
        tanh = (logits.float() / softcap).tanh_()
        capped = tanh * softcap
        saved = getattr(lse, "shape", None) == capped.shape[:1]
        logz = lse.float() - softcap if saved else torch.logsumexp(capped, dim=-1)
        probs = capped.sub_(logz[:, None]).exp_()
        probs[torch.arange(probs.shape[0]), targets.long()] -= 1.0
        grad = probs.mul_(grad_losses.float()[:, None]).mul_(tanh.mul_(tanh).neg_().add_(1.0))
        grad_logits.copy_(grad)
    _tell_tracer("kernel_backward", targets)


def _tell_tracer(name: str, *args) -> None:
    tracer = sys.modules.get("pgolf_shim_tracer")
    if tracer is not None:
        getattr(tracer, name)(*args)


_KERNEL_REFERENCES: dict[str, Callable[[list[Any]], None]] = {
    "linear_leaky_relu_square_kernel": _ref_linear_leaky_relu_square,
    "_fused_leaky_relu_sq_kernel": _ref_fused_leaky_relu_sq,
    "_softcapped_ce_fwd_kernel": _ref_softcapped_ce_fwd,
    "_softcapped_ce_bwd_kernel": _ref_softcapped_ce_bwd,
}


def known_kernels() -> int:
    return len(_KERNEL_REFERENCES)


# ---------------------------------------------------------------- a stand-in where Triton is missing


class _StandIn(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: finds `triton` in the stand-in folder when no installed Triton was found,
    for any importer but torch's own code. torch decides on its GPU paths by whether `import triton`
    works (torch.utils._triton.has_triton_package); told yes, it imports Triton's compiler."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def find_spec(self, name, path=None, target=None):
        if name != "triton" or _imported_by_internals():
            return None
        return importlib.machinery.PathFinder.find_spec(name, [self.folder])


def _imported_by_internals() -> bool:
    """Whether the import was asked for by torch's code: the first frame that is neither the import
    machinery nor the shim's own post-import hook."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        module = frame.f_globals.get("__name__") or ""
        if not (filename.startswith("<frozen") or "importlib" in filename or module.startswith("pgolf_shim")):
            return module.split(".", 1)[0] in _INTERNAL_ROOTS
        frame = frame.f_back
    return False


def offer_stand_in(folder: str) -> None:
    if not any(isinstance(f, _StandIn) for f in sys.meta_path):
        sys.meta_path.append(_StandIn(folder))


def hide_stand_in_from(torch: ModuleType) -> None:
    """Settle torch's cached answer to "is Triton installed?" while the stand-in is out of sight, in
    case the script imported it before torch."""
    check = getattr(getattr(getattr(torch, "utils", None), "_triton", None), "has_triton_package", None)
    if check is None:
        try:
            from torch.utils._triton import has_triton_package as check
        except ImportError:
            return
    stand_in = {
        k: m
        for k, m in sys.modules.items()
        if (k == "triton" or k.startswith("triton."))
        and isinstance(getattr(m, "__version__", None), str)
        and m.__version__.endswith("stand-in")
        or k.startswith("triton.")
        and "triton" in sys.modules
        and str(getattr(sys.modules["triton"], "__version__", "")).endswith("stand-in")
    }
    for name in stand_in:
        del sys.modules[name]
    try:
        check()
    finally:
        sys.modules.update(stand_in)
