"""Work out, from the syntax tree alone, which chain of decode calls a wrapper's exec applies to which literal."""

from __future__ import annotations

import ast
import lzma
import re
import zlib
from typing import Any

from .model import _Op, _Plan


class _Unresolved(Exception):
    """The expression is not a statically decodable chain."""


_FUNC_IDS = {
    "base64.b85decode": "b85",
    "base64.b64decode": "b64",
    "base64.standard_b64decode": "b64",
    "base64.urlsafe_b64decode": "b64url",
    "base64.a85decode": "a85",
    "base64.b32decode": "b32",
    "base64.b16decode": "b16",
    "binascii.a2b_base64": "b64",
    "lzma.decompress": "lzma",
    "zlib.decompress": "zlib",
    "gzip.decompress": "gzip",
    "bz2.decompress": "bz2",
    "brotli.decompress": "brotli",
}
# When a module alias is missing (broken stubs exist), go by the attribute.
_ATTR_IDS = {q.split(".")[1]: k for q, k in _FUNC_IDS.items() if q.startswith("base64.")}
_ATTR_IDS["decompress"] = "auto"
_PARAMS = {
    "b85": ("b",),
    "b64": ("s", "altchars", "validate"),
    "b64url": ("s",),
    "a85": ("b",),
    "b32": ("s", "casefold", "map01"),
    "b16": ("s", "casefold"),
    "lzma": ("data", "format", "memlimit", "filters"),
    "zlib": ("data", "wbits", "bufsize"),
    "gzip": ("data",),
    "bz2": ("data",),
    "brotli": ("string",),
    "auto": ("data",),
}
_OPTIONS = {
    "b64": {"altchars", "validate"},
    "a85": {"foldspaces", "adobe", "ignorechars"},
    "b32": {"casefold", "map01"},
    "b16": {"casefold"},
    "lzma": {"format", "memlimit", "filters"},
    "zlib": {"wbits"},
    "auto": {"format", "memlimit", "filters", "wbits"},
}
_LAYER_NAMES = {"b64url": "b64"}
_PASSTHROUGH = {"compile", "bytes", "str"}
_IMPORTERS = {"__import__", "importlib.import_module"}
_CONST_MODULES = {"lzma": lzma, "zlib": zlib}
_INERT_NODES = (
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.BinOp,
    ast.UnaryOp,
    ast.keyword,
)


def _star_names(module: str) -> dict[str, str]:
    names = {q.split(".")[1]: q for q in _FUNC_IDS if q.startswith(module + ".")}
    mod = _CONST_MODULES.get(module)
    if mod is not None:
        names.update({n: f"{module}.{n}" for n in dir(mod) if n.isupper() and isinstance(getattr(mod, n), int)})
    return names


def _collect_aliases(stmts: list[ast.stmt]) -> dict[str, str]:
    """Local name -> dotted name of the module or function it stands for."""
    aliases: dict[str, str] = {}
    for node in stmts:
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                aliases[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name == "*":
                    aliases.update(_star_names(node.module))
                else:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _collect_env(stmts: list[ast.stmt]) -> dict[str, ast.expr]:
    """Module-level `name = expr` bindings, the last one winning."""
    env: dict[str, ast.expr] = {}
    for node in stmts:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                _bind_target(env, target, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            _bind_target(env, node.target, node.value)
    return env


def _bind_target(env: dict[str, ast.expr], target: ast.expr, value: ast.expr) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = value
    elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        for t, v in zip(target.elts, value.elts, strict=True):
            _bind_target(env, t, v)


class _Resolver:
    """Static evaluation of payload expressions against imports and bindings."""

    _MAX_HOPS = 64

    def __init__(self, aliases: dict[str, str], env: dict[str, ast.expr]) -> None:
        self.aliases = aliases
        self.env = env

    # -- names
    def qualname(self, node: ast.expr, hops: int = 0) -> str | None:
        if hops > self._MAX_HOPS:
            return None
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in self.env:
                return self.qualname(self.env[node.id], hops + 1)
            return node.id
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value, hops + 1)
            known = base is not None and base.split(".")[0] in self._modules()
            return f"{base if known else '?'}.{node.attr}"
        if isinstance(node, ast.Call) and self.qualname(node.func, hops + 1) in _IMPORTERS:
            if node.args and isinstance(node.args[0], ast.Constant):
                value = node.args[0].value
                return value if isinstance(value, str) else None
        return None

    def _modules(self) -> set[str]:
        return {q.split(".")[0] for q in self.aliases.values()} | set(_CONST_MODULES)

    def call_kind(self, call: ast.Call) -> str | None:
        """Decoder id, "passthrough", "convert", "join" or None for other calls."""
        func = call.func
        if isinstance(func, ast.Attribute) and not self._names_module(func.value):
            if func.attr in ("encode", "decode"):
                return "convert"
            if func.attr == "join":
                return "join"
            if func.attr == "replace":
                return "replace"
        name = self.qualname(func)
        if name is None:
            return None
        if name in _PASSTHROUGH or name in _IMPORTERS:
            return "passthrough"
        if name in _FUNC_IDS:
            return _FUNC_IDS[name]
        short = name[2:] if name.startswith("?.") else name
        return _ATTR_IDS.get(short) if "." not in short else None

    def _names_module(self, node: ast.expr) -> bool:
        name = self.qualname(node)
        return name is not None and name.split(".")[0] in self._modules()

    # -- payload chains
    def plan(self, node: ast.expr, hops: int = 0) -> _Plan:
        if hops > self._MAX_HOPS:
            raise _Unresolved
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            return _Plan(node.value)
        if isinstance(node, ast.Name) and node.id in self.env:
            return self.plan(self.env[node.id], hops + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self._literal(node.left, hops), self._literal(node.right, hops)
            if type(left) is not type(right):
                raise _Unresolved
            return _Plan(left + right)
        if isinstance(node, ast.Call):
            return self._call_plan(node, hops)
        raise _Unresolved

    def _literal(self, node: ast.expr, hops: int) -> Any:
        inner = self.plan(node, hops + 1)
        if inner.ops:
            raise _Unresolved
        return inner.payload

    def _call_plan(self, call: ast.Call, hops: int) -> _Plan:
        kind = self.call_kind(call)
        if kind == "join":
            return self._join_plan(call, hops)
        if kind == "convert":
            return self._convert_plan(call, hops)
        if kind == "replace":
            return self._replace_plan(call, hops)
        if kind == "passthrough":
            return self._passthrough_plan(call, hops)
        if kind is None:
            raise _Unresolved
        payload, options = self._bind(kind, call)
        return self.plan(payload, hops + 1).then(_Op(kind, options))

    def _join_plan(self, call: ast.Call, hops: int) -> _Plan:
        sep = self._literal(call.func.value, hops)  # type: ignore[attr-defined]
        if len(call.args) != 1 or not isinstance(call.args[0], (ast.List, ast.Tuple)):
            raise _Unresolved
        parts = [self._literal(e, hops) for e in call.args[0].elts]
        if not all(type(p) is type(sep) for p in parts):
            raise _Unresolved
        return _Plan(sep.join(parts))

    def _convert_plan(self, call: ast.Call, hops: int) -> _Plan:
        func = call.func
        assert isinstance(func, ast.Attribute)
        encoding = self.const(call.args[0]) if call.args else "utf-8"
        return self.plan(func.value, hops + 1).then(_Op(func.attr, (("encoding", encoding),)))

    def _replace_plan(self, call: ast.Call, hops: int) -> _Plan:
        func = call.func
        assert isinstance(func, ast.Attribute)
        if len(call.args) != 2 or call.keywords:
            raise _Unresolved
        old, new = self.const(call.args[0]), self.const(call.args[1])
        if not isinstance(old, (str, bytes)) or type(old) is not type(new):
            raise _Unresolved
        return self.plan(func.value, hops + 1).then(_Op("replace", (("new", new), ("old", old))))

    def _passthrough_plan(self, call: ast.Call, hops: int) -> _Plan:
        name = self.qualname(call.func)
        if name in _IMPORTERS or not call.args:
            raise _Unresolved
        inner = self.plan(call.args[0], hops + 1)
        if name == "compile":
            return inner
        if len(call.args) < 2:
            raise _Unresolved  # str(b) is a repr and bytes(s) a TypeError, not a conversion
        op = "encode" if name == "bytes" else "decode"
        return inner.then(_Op(op, (("encoding", self.const(call.args[1])),)))

    def _bind(self, kind: str, call: ast.Call) -> tuple[ast.expr, tuple[tuple[str, Any], ...]]:
        params = _PARAMS[kind]
        given = dict(zip(params, call.args, strict=False))
        given.update({k.arg: k.value for k in call.keywords if k.arg})
        payload = given.pop(params[0], None)
        if payload is None or len(call.args) > len(params):
            raise _Unresolved
        allowed = _OPTIONS.get(kind, set())
        options = tuple(sorted((k, self.const(v)) for k, v in given.items() if k in allowed))
        return payload, options

    # -- constants (filters, formats, flags)
    def const(self, node: ast.expr, hops: int = 0) -> Any:
        if hops > self._MAX_HOPS:
            raise _Unresolved
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.const(e, hops + 1) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _Unresolved
            return {
                self.const(k, hops + 1): self.const(v, hops + 1)  # type: ignore[arg-type]
                for k, v in zip(node.keys, node.values, strict=True)
            }
        if isinstance(node, ast.BinOp):
            return _int_binop(node.op, self.const(node.left, hops + 1), self.const(node.right, hops + 1))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -_as_int(self.const(node.operand, hops + 1))
        if isinstance(node, ast.Name) and node.id in self.env and node.id not in self.aliases:
            return self.const(self.env[node.id], hops + 1)
        return self._module_constant(node)

    def _module_constant(self, node: ast.expr) -> Any:
        name = self.qualname(node) or ""
        module, _, attr = name.partition(".") if "." in name else ("?", "", name)
        value = getattr(_CONST_MODULES.get(module), attr, None) if attr.isupper() else None
        if module == "?" and attr.isupper():
            # Unaliased module prefix: the constant names are unique across lzma and zlib.
            value = next(
                (getattr(m, attr) for m in _CONST_MODULES.values() if isinstance(getattr(m, attr, None), int)), None
            )
        if not isinstance(value, int):
            raise _Unresolved
        return value


def _as_int(value: Any) -> int:
    if not isinstance(value, int):
        raise _Unresolved
    return value


def _int_binop(op: ast.operator, left: Any, right: Any) -> int:
    """Integer flag arithmetic only: no string repetition, no huge powers."""
    a, b = _as_int(left), _as_int(right)
    if isinstance(op, ast.BitOr):
        return a | b
    if isinstance(op, ast.BitAnd):
        return a & b
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult) and abs(a) < 2**64 and abs(b) < 2**64:
        return a * b
    if isinstance(op, ast.LShift) and 0 <= b <= 64:
        return a << b
    raise _Unresolved


# ------------------------------------------------------ finding the exec

_EXEC_RE = re.compile(r"\bexec\s*\(")
_TOP_EXEC_RE = re.compile(r"(?m)(?:^|;)[ \t]*exec\s*\(")
_WRAPPER_LIKE_RE = re.compile(
    r"\bexec\s*\(\s*(?:compile\s*\(\s*)?[\w.]*"
    r"(?:decompress|b85decode|b64decode|a85decode|b32decode|b16decode|a2b_base64)\s*\("
)


def _exec_arg(stmt: ast.stmt) -> ast.expr | None:
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if isinstance(call.func, ast.Name) and call.func.id == "exec" and call.args:
            return call.args[0]
    return None


def _plan_from_module(tree: ast.Module) -> _Plan | None:
    stmts = tree.body
    execs = [i for i, s in enumerate(stmts) if _exec_arg(s) is not None]
    if len(execs) != 1:
        return None
    index = execs[0]
    resolver = _Resolver(_collect_aliases(stmts), _collect_env(stmts[:index]))
    others = stmts[:index] + stmts[index + 1 :]
    if not all(_is_inert(s, resolver) for s in others):
        return None
    return _checked_plan(resolver, _exec_arg(stmts[index]))


def _checked_plan(resolver: _Resolver, node: ast.expr | None) -> _Plan | None:
    if node is None:
        return None
    try:
        plan = resolver.plan(node)
    except (_Unresolved, RecursionError, TypeError):  # TypeError: e.g. an unhashable dict key
        return None
    return plan if plan.has_layers else None


def _is_inert(stmt: ast.stmt, resolver: _Resolver) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass)):
        return True
    if isinstance(stmt, ast.Expr):
        return isinstance(stmt.value, ast.Constant)
    if isinstance(stmt, ast.Assign):
        if all(_is_linecache_entry(t, resolver) for t in stmt.targets):
            return True  # `linecache.cache[F] = (...)`: registers the source for tracebacks, nothing more
        return _is_inert_expr(stmt.value, resolver)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is None or _is_inert_expr(stmt.value, resolver)
    return False


def _is_linecache_entry(target: ast.expr, resolver: _Resolver) -> bool:
    return (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Attribute)
        and target.value.attr == "cache"
        and resolver.qualname(target.value.value) == "linecache"
    )


def sibling_exec(tree: ast.Module) -> str | None:
    """`exec(open(__file__.replace("train_gpt.py", "x.py")).read())` and the like: the sibling file's name.

    Only a top level made of imports and that one exec counts; the name must be a plain file
    name next to the script (no directories), so the folder's own reader can open it.
    """
    stmts = [
        s
        for s in tree.body
        if not isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass))
        and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    if len(stmts) != 1:
        return None
    arg = _exec_arg(stmts[0])
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "compile" and arg.args:
        arg = arg.args[0]
    if not (
        isinstance(arg, ast.Call)
        and isinstance(arg.func, ast.Attribute)
        and arg.func.attr == "read"
        and isinstance(arg.func.value, ast.Call)
        and arg.func.value.args
    ):
        return None
    opener = arg.func.value
    if not (isinstance(opener.func, ast.Name) and opener.func.id == "open"):
        return None
    name = _sibling_name(opener.args[0])
    return name if name and "/" not in name and "\\" not in name and name not in (".", "..") else None


def _sibling_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.rsplit("/", 1)[-1] if node.value.startswith("./") else node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if (
            node.func.attr == "replace"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "__file__"
        ):
            return node.args[1].value if isinstance(node.args[1].value, str) else None
        if node.func.attr == "join" and node.args:
            return _sibling_name(node.args[-1])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _sibling_name(node.right)
    return None


def _is_inert_expr(node: ast.expr, resolver: _Resolver) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            if resolver.call_kind(sub) is None:
                return False
        elif not isinstance(sub, _INERT_NODES):
            return False
    return True
