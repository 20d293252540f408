"""Forms of a script that must not change a legality verdict: renamed and packed.

`rename_identifiers` gives every name the script defines (functions, classes,
parameters, variables, attributes it assigns) an opaque name, consistently, so a
check that keys on what code is called is caught out. Names the script shares with
the libraries it calls (`forward`, `step`, `requires_grad`, tensor and module
attributes) keep theirs: renaming them would change what the code does, not how it
is spelled. `pack` wraps the source the way records ship it (lzma + base85 + exec).
"""

from __future__ import annotations

import builtins
from functools import lru_cache

import libcst as cst

from pgolf.compliance.unpack import build_wrapper

# Library API names a script uses as attributes or keywords; a check may key on these.
_API = {
    "forward",
    "backward",
    "step",
    "zero_grad",
    "requires_grad",
    "requires_grad_",
    "remove",
    "item",
    "parameters",
    "named_parameters",
    "named_modules",
    "modules",
    "state_dict",
    "load_state_dict",
    "dim",
    "dtype",
    "device",
    "weight",
    "bias",
    "data",
    "grad",
    "shape",
    "training",
    "eval",
    "train",
    "param_groups",
    "self",
    "super",
    "detach",
    "float",
    "reshape",
    "view",
    "sum",
    "mean",
    "exp",
    "log",
}


@lru_cache(maxsize=1)
def _library_names() -> frozenset:
    names = set(dir(builtins)) | _API
    try:
        import numpy as np

        names |= set(dir(np.ndarray))
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    try:
        import torch

        names |= set(dir(torch.Tensor)) | set(dir(torch.nn.Module)) | set(dir(torch.optim.Optimizer))
    except ImportError:  # the bench runs without torch too: the fixed list still holds
        pass
    return frozenset(names)


class _Defined(cst.CSTVisitor):
    """Every identifier the script itself binds."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.names.add(node.name.value)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.names.add(node.name.value)

    def visit_Param(self, node: cst.Param) -> None:
        self.names.add(node.name.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._bind(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._bind(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._bind(node.name)

    def _bind(self, node: cst.BaseExpression) -> None:
        if isinstance(node, cst.Name):
            self.names.add(node.value)
        elif isinstance(node, cst.Attribute):
            self.names.add(node.attr.value)
        elif isinstance(node, (cst.Tuple, cst.List)):
            for element in node.elements:
                self._bind(element.value)
        elif isinstance(node, cst.StarredElement):
            self._bind(node.value)


class _Rename(cst.CSTTransformer):
    _NAME_ARGS = {"getattr", "setattr", "hasattr", "delattr"}

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=self.names.get(updated.value, updated.value))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        updated = self._library_keywords(original, updated)
        return self._attribute_strings(original, updated)

    def _library_keywords(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        """`F.cross_entropy(..., target=t)`: a library's keyword keeps its name, whatever the script calls things."""
        func = original.func
        callee = (
            func.value if isinstance(func, cst.Name) else func.attr.value if isinstance(func, cst.Attribute) else None
        )
        if callee is not None and callee in self.names:
            return updated  # the script's own function: its parameters were renamed too
        args = [
            new.with_changes(keyword=old.keyword) if old.keyword is not None else new
            for old, new in zip(original.args, updated.args, strict=True)
        ]
        return updated.with_changes(args=args)

    def _attribute_strings(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        """getattr(obj, "field", default) names an attribute in a string: rename it with the attribute."""
        func = original.func
        if not (isinstance(func, cst.Name) and func.value in self._NAME_ARGS and len(updated.args) >= 2):
            return updated
        arg = updated.args[1]
        if isinstance(arg.value, cst.SimpleString):
            text = arg.value.evaluated_value
            if isinstance(text, str) and text in self.names:
                new = arg.with_changes(value=cst.SimpleString(repr(self.names[text])))
                return updated.with_changes(args=[updated.args[0], new, *updated.args[2:]])
        return updated


def rename_identifiers(source: str) -> str:
    module = cst.parse_module(source)
    defined = _Defined()
    module.visit(defined)
    keep = _library_names() | {n for n in defined.names if n.startswith("__") and n.endswith("__")}
    names = {n: f"v{i}_" for i, n in enumerate(sorted(defined.names - keep))}
    return module.visit(_Rename(names)).code


def pack(source: str) -> str:
    """The self-extracting lzma + base85 form records ship (RULES.md §7)."""
    return build_wrapper(source)
