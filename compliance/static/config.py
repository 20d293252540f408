"""The configuration a script actually ran with, and constant folding over it.

Scripts read their knobs through `os.environ.get("X", default)` (often wrapped
in int/float/bool, often as attributes of a Hyperparameters class). The value
of such an expression is folded with the environment of the run (log dumps,
README run commands) laid over the script's defaults, so that a branch such as
`if args.ttt_enabled:` can be judged reachable or not. Keys of the run's
configuration may be env names (TTT_ENABLED) or the attribute names a log dump
prints (ttt_enabled); both are matched case-insensitively. Anything that
cannot be folded is UNKNOWN and treated as reachable.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = object()


class _NotNone:
    """A value known not to be None (a dict, a tensor, an object) whose contents are unknown."""

    def __repr__(self) -> str:
        return "<not None>"


NOT_NONE = _NotNone()
_CONVERTERS = {"int": int, "float": float, "str": str, "bool": bool}
Fold = Callable[[ast.expr | None], Any]  # an expression's value, or UNKNOWN
Shape = tuple[bool, frozenset[str], frozenset[str]]  # env call?, attribute names, plain names
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.Not: lambda v: not v,
    ast.USub: lambda v: -v,
    ast.UAdd: lambda v: +v,
    ast.Invert: lambda v: ~v,
}
_ENV_FUNCS = {"os.environ.get", "os.getenv", "environ.get", "getenv"}


@dataclass
class ConfigResolver:
    """Folds expressions to Python values; `attrs` and `names` hold module-wide bindings."""

    run_env: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    names: dict[str, Any] = field(default_factory=dict)
    used_env: dict[str, str] = field(default_factory=dict)  # env key -> attribute/name bound to it
    cli_knobs: set[str] = field(default_factory=set)  # argparse destinations (args.<dest>)
    _knobs: set[str] | None = None
    _shapes: dict[int, tuple[ast.expr, Shape]] = field(default_factory=dict)
    accessors: dict[str, tuple[int, int | None, int | None]] = field(default_factory=dict)
    # ^ helpers such as `def _e(k, d, t=str): return t(os.environ.get(k, str(d)))`: name -> positions
    #   of the key, the default and the type argument

    @classmethod
    def build(cls, module: ast.Module, config: dict[str, str], aliases: dict[str, str]) -> ConfigResolver:
        resolver = cls(run_env={str(k).upper(): str(v) for k, v in config.items()}, aliases=aliases)
        resolver._collect(module)
        return resolver

    # -- bindings --------------------------------------------------------------------------
    def _collect(self, module: ast.Module) -> None:
        """Module constants, class-body attributes and self.x = ... in definition order."""
        self._find_accessors(module)
        for stmt in module.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                self._bind(stmt, self.names)
        nodes = list(ast.walk(module))
        for node in nodes:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
                self._bind_cli(node)
        for node in nodes:
            if isinstance(node, ast.ClassDef):
                self._bind_class(node.body)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Attribute) for t in targets):
                    self._bind(node, self.attrs)
        self._forget_state(nodes)

    def _forget_state(self, nodes: list[ast.AST]) -> None:
        """`self.total = 0` in a constructor, `cache.total = n` on loading, `self.total += k` on update: state,
        not configuration. An attribute no knob sets that is given different values, one that cannot be
        folded, or updated in place, has no one value, so a test on it (`if cache.total > 0`) decides nothing."""
        knobs = set(self.used_env.values()) | self.cli_knobs
        values: dict[str, list[Any]] = {}
        for node in nodes:
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Attribute):
                values.setdefault(node.target.attr, []).append(UNKNOWN)
            elif isinstance(node, ast.Assign):
                for target, value in _pairs(node.targets, node.value):
                    if isinstance(target, ast.Attribute):
                        values.setdefault(target.attr, []).append(UNKNOWN if value is None else self.fold(value))
        for name, seen in values.items():
            if name in knobs or name not in self.attrs:
                continue
            if any(v is UNKNOWN for v in seen) or any(not same_folded(v, seen[0]) for v in seen[1:]):
                self.attrs[name] = UNKNOWN

    def _bind(self, node: ast.Assign | ast.AnnAssign, store: dict[str, Any]) -> None:
        if node.value is None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = (
                target.id
                if isinstance(target, ast.Name)
                else (target.attr if isinstance(target, ast.Attribute) else None)
            )
            if name is None:
                continue
            value = self._override_by_name(name)
            if value is UNKNOWN:
                value = self.fold(node.value)
            env_key = self._env_key(node.value)
            if env_key:
                self.used_env[env_key] = name
            if value is not UNKNOWN or name not in store:
                store[name] = value

    def _find_accessors(self, module: ast.Module) -> None:
        for fn in module.body:
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
            for sub in ast.walk(fn):
                if (
                    isinstance(sub, ast.Call)
                    and self._is_env_call(sub)
                    and sub.args
                    and isinstance(sub.args[0], ast.Name)
                    and sub.args[0].id in params
                ):
                    default = _param_in(sub.args[1], params) if len(sub.args) > 1 else None
                    key_at = params.index(sub.args[0].id)
                    called = [
                        params.index(n.func.id)
                        for n in ast.walk(fn)
                        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in params
                    ]
                    compared = [
                        params.index(n.id)
                        for c in ast.walk(fn)
                        if isinstance(c, ast.Compare)
                        for n in ast.walk(c)
                        if isinstance(n, ast.Name) and n.id in params
                    ]
                    kind = next((i for i in called + compared if i not in (key_at, default)), None)
                    self.accessors[fn.name] = (key_at, default, kind)
                    break

    def _accessor_value(self, node: ast.Call, sub: Fold) -> Any:
        if not isinstance(node.func, ast.Name):
            return UNKNOWN
        key_at, default_at, type_at = self.accessors[node.func.id]
        args = node.args
        key = args[key_at] if key_at < len(args) else None
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return UNKNOWN
        raw = self.run_env.get(key.value.upper())
        value: Any = (
            parse_value(raw)
            if raw is not None
            else (sub(args[default_at]) if default_at is not None and default_at < len(args) else None)
        )
        kind = args[type_at] if type_at is not None and type_at < len(args) else None
        if value is UNKNOWN or not (isinstance(kind, ast.Name) and kind.id in _CONVERTERS):
            return value
        try:
            return (
                bool(int(float(value)))
                if kind.id == "bool" and not isinstance(value, bool)
                else _CONVERTERS[kind.id](value)
            )
        except (TypeError, ValueError):
            return UNKNOWN

    def _bind_class(self, stmts: list[ast.stmt]) -> None:
        """Class attributes in order, following `if` on a knob the way it folds (both ways when it doesn't)."""
        for stmt in stmts:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                self._bind(stmt, self.attrs)
            elif isinstance(stmt, ast.If):
                known = truthy(self.fold(stmt.test, {k: v for k, v in self.attrs.items()}))
                if known is not False:
                    self._bind_class(stmt.body)
                if known is not True:
                    self._bind_class(stmt.orelse)

    def _bind_cli(self, node: ast.Call) -> None:
        """`parser.add_argument("--ttt-epochs", type=int, default=3)`: args.ttt_epochs, overridable by name."""
        options = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        dest = keywords.get("dest")
        name = (
            dest.value
            if isinstance(dest, ast.Constant) and isinstance(dest.value, str)
            else next(
                (o.lstrip("-").replace("-", "_") for o in options if o.startswith("--")),
                options[0].lstrip("-").replace("-", "_") if options else None,
            )
        )
        if not name:
            return
        self.cli_knobs.add(name)
        value = self._override_by_name(name)
        if value is UNKNOWN:
            default = keywords.get("default")
            value = (
                self.fold(default)
                if default is not None
                else (False if _is_store_true(keywords.get("action")) else None)
            )
        self.attrs[name] = value

    def _override_by_name(self, name: str) -> Any:
        """A log dump prints attribute names: `ttt_enabled: True`."""
        raw = self.run_env.get(name.upper())
        return UNKNOWN if raw is None else parse_value(raw)

    def _env_key(self, node: ast.expr) -> str | None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and self._is_env_call(sub) and sub.args:
                key = sub.args[0]
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    return key.value
        return None

    # -- what is configuration ---------------------------------------------------------------
    def config_attrs(self) -> set[str]:
        """Attribute and module names bound to a knob read from the environment."""
        if self._knobs is None:
            self._knobs = set(self.used_env.values()) | self.cli_knobs
        return self._knobs

    def is_config_test(self, node: ast.expr, local_config: set[str] | None = None) -> bool:
        """A condition that reads a knob (so a run's configuration decides it), not data."""
        env_call, attrs, names = self._shape(node)
        if env_call:
            return True
        knobs = self.config_attrs()
        return bool(attrs & knobs or names & knobs or (local_config and names & local_config))

    def _shape(self, node: ast.expr) -> Shape:
        """What a condition reads: an env call, attribute names, plain names (once per node)."""
        key = id(node)
        cached = self._shapes.get(key)
        if cached is not None and cached[0] is node:
            return cached[1]
        env_call, attrs, names = False, set[str](), set[str]()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and (self._is_env_call(sub) or _is_getattr_default(sub)):
                env_call = True
            elif isinstance(sub, ast.Attribute):
                attrs.add(sub.attr)
            elif isinstance(sub, ast.Name):
                names.add(sub.id)
        shape = (env_call, frozenset(attrs), frozenset(names))
        self._shapes[key] = (node, shape)
        return shape

    def classify(self, node: ast.expr, local: dict[str, Any], local_config: set[str]) -> str:
        """Why a condition did not fold: "config" when an unsettled knob decides it, else "data".

        `args.ngram_enabled and wlen > s` with the knob on is decided by the data (`wlen > s`), not
        by the configuration; `args.eval_stride <= seq_len` with seq_len an unfolded knob is a gate.
        """
        value = self.fold(node, local)
        if value is not UNKNOWN and value is not NOT_NONE:
            return "known"
        return self._kind(node, local, local_config)

    def _kind(self, node: ast.expr, local: dict[str, Any], local_config: set[str]) -> str:
        value = self.fold(node, local)
        if value is not UNKNOWN and value is not NOT_NONE:
            return "known"
        if isinstance(node, ast.BoolOp):
            kinds = []
            for part in node.values:
                folded = self.fold(part, local)
                if isinstance(node.op, ast.And) and folded is not UNKNOWN and truthy(folded) is not None and not folded:
                    return "known"
                kinds.append(self._kind(part, local, local_config))
            return "config" if "config" in kinds else "data"
        if isinstance(node, ast.UnaryOp):
            return self._kind(node.operand, local, local_config)
        if isinstance(node, (ast.Compare, ast.BinOp)):
            parts = [node.left, *node.comparators] if isinstance(node, ast.Compare) else [node.left, node.right]
            kinds = [self._kind(p, local, local_config) for p in parts]
            return "data" if "data" in kinds else "config" if "config" in kinds else "known"
        return "config" if self.is_config_test(node, local_config) else "data"

    # -- folding ---------------------------------------------------------------------------
    def fold(self, node: ast.expr | None, local: dict[str, Any] | None = None) -> Any:
        try:
            return self._fold(node, local or {}, 0)
        except (TypeError, ValueError, ArithmeticError, AttributeError, RecursionError, OverflowError):
            return UNKNOWN

    def _fold(self, node: ast.expr | None, local: dict[str, Any], depth: int) -> Any:
        if node is None or depth > 40:
            return UNKNOWN

        def sub(n: ast.expr | None) -> Any:
            return self._fold(n, local, depth + 1)

        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in local:
                return local[node.id]
            return self.names.get(node.id, UNKNOWN)
        if isinstance(node, ast.Attribute):
            return self.attrs.get(node.attr, UNKNOWN) if not self._is_module(node.value) else UNKNOWN
        if isinstance(node, ast.Call):
            return self._fold_call(node, sub)
        if isinstance(node, ast.UnaryOp):
            value = sub(node.operand)
            if value is UNKNOWN or value is NOT_NONE:
                return UNKNOWN
            return _UNARY[type(node.op)](value)
        if isinstance(node, ast.BoolOp):
            return _fold_boolop(node, sub)
        if isinstance(node, ast.Compare):
            return _fold_compare(node, sub)
        if isinstance(node, ast.BinOp):
            return _fold_binop(node, sub)
        if isinstance(node, ast.Tuple) or (isinstance(node, (ast.List, ast.Set)) and depth > 0):
            # a list bound to a name is filled later (append): only a literal used in place is known
            items = [sub(e) for e in node.elts]
            return UNKNOWN if any(i is UNKNOWN for i in items) else tuple(items)
        if isinstance(node, ast.Subscript) and self.dotted(node.value) in ("os.environ", "environ"):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                return self.run_env.get(key.value.upper(), UNKNOWN)
            return UNKNOWN
        if isinstance(node, ast.IfExp):
            test = sub(node.test)
            return UNKNOWN if test is UNKNOWN else sub(node.body if test else node.orelse)
        return UNKNOWN

    def _fold_call(self, node: ast.Call, sub: Fold) -> Any:
        if self._is_env_call(node):
            return self._env_value(node, sub)
        func = node.func
        if _is_getattr_default(node) and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            # getattr(args, "slot_enabled", False): the field when the script defines it, else the default
            name = node.args[1].value
            value = self._override_by_name(name)
            if value is UNKNOWN:
                value = self.attrs.get(name, UNKNOWN) if name in self.attrs else sub(node.args[2])
            return value
        if isinstance(func, (ast.Name, ast.Attribute)) and _last_name(func) == "field" and node.keywords:
            default = next((k.value for k in node.keywords if k.arg == "default"), None)
            return sub(default) if default is not None else UNKNOWN
        if isinstance(func, ast.Name) and func.id in _CONVERTERS and len(node.args) == 1:
            value = sub(node.args[0])
            return UNKNOWN if value is UNKNOWN else _CONVERTERS[func.id](value)
        if isinstance(func, ast.Attribute) and func.attr in ("lower", "upper", "strip") and not node.args:
            value = sub(func.value)
            return getattr(value, func.attr)() if isinstance(value, str) else UNKNOWN
        return UNKNOWN

    def _env_value(self, node: ast.Call, sub: Fold) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id in self.accessors:
            return self._accessor_value(node, sub)
        key = node.args[0] if node.args else None
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return UNKNOWN
        if key.value.upper() in self.run_env:
            return self.run_env[key.value.upper()]
        return sub(node.args[1]) if len(node.args) > 1 else None

    def _is_env_call(self, node: ast.Call) -> bool:
        return self.dotted(node.func) in _ENV_FUNCS or (
            isinstance(node.func, ast.Name) and node.func.id in self.accessors
        )

    def dotted(self, node: ast.expr) -> str | None:
        """`F.cross_entropy` -> `torch.nn.functional.cross_entropy` through the import aliases."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def _is_module(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.aliases


def _param_in(node: ast.expr, params: list[str]) -> int | None:
    """`d` or `str(d)`: the parameter a default comes from."""
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in params]
    return params.index(names[0]) if names else None


def _is_store_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value == "store_true"


def _last_name(node: ast.expr) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def _is_getattr_default(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) == 3


def parse_value(raw: str) -> Any:
    """A config value as the script would most likely read it."""
    text = raw.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def _pairs(targets: list[ast.expr], value: ast.expr) -> Iterator[tuple[ast.expr, ast.expr | None]]:
    """Each assigned name or attribute with its value: `a.x, a.y = 1, n` unpacks; None where it cannot."""
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            values = value.elts if isinstance(value, (ast.Tuple, ast.List)) else None
            if values is not None and len(values) == len(target.elts):
                for elt, part in zip(target.elts, values, strict=True):
                    yield from _pairs([elt], part)
            else:
                yield from ((elt, None) for elt in target.elts)
        else:
            yield target, value


def same_folded(a: object, b: object) -> bool:
    """Two folded values are one value: equal and of one type (1 and True are two)."""
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - exotic comparisons: treat as different
        return False


def truthy(value: Any) -> bool | None:
    """True/False when known, None when the value could not be folded."""
    if value is UNKNOWN or value is NOT_NONE:
        return None
    try:
        return bool(value)
    except Exception:  # noqa: BLE001 - exotic objects never come out of folding, but be safe
        return None


def _fold_boolop(node: ast.BoolOp, sub: Fold) -> Any:
    values = [UNKNOWN if v is NOT_NONE else v for v in (sub(v) for v in node.values)]
    if isinstance(node.op, ast.And):
        if any(v is not UNKNOWN and not v for v in values):
            return False
        return UNKNOWN if any(v is UNKNOWN for v in values) else values[-1]
    if any(v is not UNKNOWN and v for v in values):
        return True
    return UNKNOWN if any(v is UNKNOWN for v in values) else values[-1]


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
}


def _fold_compare(node: ast.Compare, sub: Fold) -> Any:
    left = sub(node.left)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = sub(right_node)
        if isinstance(op, (ast.Is, ast.IsNot)) and NOT_NONE in (left, right) and None in (left, right):
            if isinstance(op, ast.Is):
                return False
            left = right
            continue
        if left is UNKNOWN or right is UNKNOWN or NOT_NONE in (left, right):
            return UNKNOWN
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Div: lambda a, b: a / b,
    ast.Mod: lambda a, b: a % b,
}


def _fold_binop(node: ast.BinOp, sub: Fold) -> Any:
    op = _BINOPS.get(type(node.op))
    if op is None:
        return UNKNOWN
    left, right = sub(node.left), sub(node.right)
    if left is UNKNOWN or right is UNKNOWN or NOT_NONE in (left, right):
        return UNKNOWN
    if isinstance(left, str) or isinstance(right, str):
        return UNKNOWN  # path joins and the like: not a knob value
    return op(left, right)
