"""Decode self-extracting submission wrappers without executing anything.

Records often ship `train_gpt.py` as a two-line stub such as
`exec(L.decompress(B.b85decode("..."),format=L.FORMAT_RAW,filters=[...]))`.
The checker must read the real source, so this module finds the exec call,
works out its chain of decode calls statically and applies the decoders
itself. Only literal payloads are evaluated; every decompressor runs with a
hard output limit so a decompression bomb costs neither time nor memory.

A file counts as a wrapper only when its top level holds exactly one exec of
a literal payload through at least one decode call, and nothing else but
imports, docstrings and inert assignments (payload pieces, aliases). A real
script that merely embeds a packed blob is not a wrapper: unwrapping it would
hide the outer code from the checker.
"""
from __future__ import annotations

import ast
import base64
import bz2
import io
import lzma
import re
import tokenize
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Callable

_MIB = 1024 * 1024
# liblzma allocates the whole dictionary up front: cap what a wrapper may ask for.
_MAX_LZMA_DICT = 256 * _MIB
_LZMA_MEMLIMIT = _MAX_LZMA_DICT + 64 * _MIB
# Records' stub decodes with the default LZMA2 filter, whose dictionary is 8 MiB.
_STUB_DICT = 8 * _MIB
_BROTLI_STEP = _MIB
_MAX_LIMIT = 1 << 62      # decompressors take a C ssize_t output limit
_FALLBACK_LEFTOVER = 64   # stray code allowed around an unparseable wrapper
_FALLBACK_CODE = 512      # code size under which unreadable exec chains raise

_STUB_HEAD = 'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("'
_STUB_TAIL = '"),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n'


class UnpackError(Exception):
    """A wrapper was found but cannot be decoded; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class Decoded:
    text: str               # the innermost source
    layers: list[str]       # transforms, outermost first; [] when not wrapped
    wrapped: bool


# ---------------------------------------------------------------- public API

def is_wrapper(source: str | bytes) -> bool:
    """True when `source` is a self-extracting wrapper (decodable or not)."""
    try:
        text = _source_text(source)
    except UnpackError:
        return False
    try:
        return _find_plan(text) is not None
    except UnpackError:
        return True


def decode_script(source: str | bytes, max_bytes: int = 64 * _MIB,
                  max_depth: int = 4) -> Decoded:
    """Peel up to `max_depth` nested wrappers; a non-wrapper comes back as is."""
    if not _positive_int(max_bytes) or not _positive_int(max_depth):
        raise UnpackError("max_bytes and max_depth must be positive integers")
    max_bytes = min(max_bytes, _MAX_LIMIT)
    text = _source_text(source)
    layers: list[str] = []
    for depth in range(max_depth + 1):
        plan = _find_plan(text)
        if plan is None:
            return Decoded(text=text, layers=layers, wrapped=bool(layers))
        if depth == max_depth:
            raise UnpackError(f"wrappers nested deeper than {max_depth} levels")
        text, new_layers = _run_plan(plan, max_bytes)
        layers.extend(new_layers)
    raise AssertionError("unreachable")


def build_wrapper(source: str) -> str:
    """An lzma(preset 9|extreme, raw LZMA2) + b85 wrapper, as records make them."""
    if not isinstance(source, str):
        raise UnpackError("build_wrapper needs a str source")
    try:
        raw = source.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnpackError(f"source is not encodable as UTF-8: {exc}") from None
    options: dict[str, Any] = {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}
    if len(raw) > _STUB_DICT:
        # The stub decodes with an 8 MiB window: never reach further back.
        options["dict_size"] = _STUB_DICT
    packed = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=[options])
    return _STUB_HEAD + base64.b85encode(packed).decode("ascii") + _STUB_TAIL


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _source_text(source: object) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, (bytes, bytearray)):
        return _bytes_to_text(bytes(source), "source")
    raise UnpackError(f"source must be str or bytes, not {type(source).__name__}")


def _bytes_to_text(data: bytes, what: str) -> str:
    """Decode like exec() would: BOM or coding cookie, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise UnpackError(f"{what} is not valid source text: {exc}") from None


# ------------------------------------------------------------ decode plans

@dataclass(frozen=True)
class _Op:
    kind: str                       # a decoder id, or "encode" / "decode"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_layer(self) -> bool:
        return self.kind not in ("encode", "decode")


@dataclass(frozen=True)
class _Plan:
    payload: str | bytes
    ops: tuple[_Op, ...] = ()

    def then(self, op: _Op) -> _Plan:
        return _Plan(self.payload, self.ops + (op,))

    @property
    def has_layers(self) -> bool:
        return any(op.is_layer for op in self.ops)


class _Unresolved(Exception):
    """The expression is not a statically decodable chain."""


_FUNC_IDS = {
    "base64.b85decode": "b85", "base64.b64decode": "b64",
    "base64.standard_b64decode": "b64", "base64.urlsafe_b64decode": "b64url",
    "base64.a85decode": "a85", "base64.b32decode": "b32",
    "base64.b16decode": "b16", "binascii.a2b_base64": "b64",
    "lzma.decompress": "lzma", "zlib.decompress": "zlib",
    "gzip.decompress": "gzip", "bz2.decompress": "bz2",
    "brotli.decompress": "brotli",
}
# When a module alias is missing (broken stubs exist), go by the attribute.
_ATTR_IDS = {q.split(".")[1]: k for q, k in _FUNC_IDS.items() if q.startswith("base64.")}
_ATTR_IDS["decompress"] = "auto"
_PARAMS = {
    "b85": ("b",), "b64": ("s", "altchars", "validate"), "b64url": ("s",),
    "a85": ("b",), "b32": ("s", "casefold", "map01"), "b16": ("s", "casefold"),
    "lzma": ("data", "format", "memlimit", "filters"), "zlib": ("data", "wbits", "bufsize"),
    "gzip": ("data",), "bz2": ("data",), "brotli": ("string",), "auto": ("data",),
}
_OPTIONS = {
    "b64": {"altchars", "validate"}, "a85": {"foldspaces", "adobe", "ignorechars"},
    "b32": {"casefold", "map01"}, "b16": {"casefold"},
    "lzma": {"format", "memlimit", "filters"}, "zlib": {"wbits"},
    "auto": {"format", "memlimit", "filters", "wbits"},
}
_LAYER_NAMES = {"b64url": "b64"}
_PASSTHROUGH = {"compile", "bytes", "str"}
_IMPORTERS = {"__import__", "importlib.import_module"}
_CONST_MODULES = {"lzma": lzma, "zlib": zlib}
_INERT_NODES = (ast.expr_context, ast.operator, ast.unaryop, ast.Constant, ast.Name,
                ast.Attribute, ast.List, ast.Tuple, ast.Dict, ast.BinOp,
                ast.UnaryOp, ast.keyword)


def _star_names(module: str) -> dict[str, str]:
    names = {q.split(".")[1]: q for q in _FUNC_IDS if q.startswith(module + ".")}
    mod = _CONST_MODULES.get(module)
    if mod is not None:
        names.update({n: f"{module}.{n}" for n in dir(mod)
                      if n.isupper() and isinstance(getattr(mod, n), int)})
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
    elif (isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
          and len(target.elts) == len(value.elts)):
        for t, v in zip(target.elts, value.elts):
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
        given = dict(zip(params, call.args))
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
            return {self.const(k, hops + 1): self.const(v, hops + 1)  # type: ignore[arg-type]
                    for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.BinOp):
            return _int_binop(node.op, self.const(node.left, hops + 1),
                              self.const(node.right, hops + 1))
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
            value = next((getattr(m, attr) for m in _CONST_MODULES.values()
                          if isinstance(getattr(m, attr, None), int)), None)
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
    r"(?:decompress|b85decode|b64decode|a85decode|b32decode|b16decode|a2b_base64)\s*\(")


def _find_plan(text: str) -> _Plan | None:
    # A top-level exec starts a logical line: skip parsing big sources without one.
    if not _TOP_EXEC_RE.search(text):
        return None
    try:
        with warnings.catch_warnings():  # invalid escapes in the file are not our business
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _plan_from_text(text)
    return _plan_from_module(tree)


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
    others = stmts[:index] + stmts[index + 1:]
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
        return _is_inert_expr(stmt.value, resolver)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is None or _is_inert_expr(stmt.value, resolver)
    return False


def _is_inert_expr(node: ast.expr, resolver: _Resolver) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            if resolver.call_kind(sub) is None:
                return False
        elif not isinstance(sub, _INERT_NODES):
            return False
    return True


# ---------------------------------------- fallback for unparseable sources

_STRING_RES = {
    q * 3: re.compile(q * 3 + r"(?:[^" + q + r"\\]|\\.|" + q + "(?!" + q * 2 + "))*" + q * 3, re.S)
    for q in "'\""
}
_STRING_RES.update({q: re.compile(q + r"(?:[^" + q + r"\\\n]|\\.)*" + q, re.S) for q in "'\""})
_IMPORT_RE = re.compile(r"(?m)(?:^|;)[ \t]*((?:import|from)[ \t][^;\n]*)")
_ASSIGN_RE = re.compile(r"(?m)(?:^|;)[ \t]*([A-Za-z_]\w*)[ \t]*=(?!=)")
_BRACKETS = re.compile(r"[()\[\]{}\n;\\]")
_PARENS = re.compile(r"[()\[\]{}]")
_TOKEN_START = re.compile(r"#[^\n]*|'''|\"\"\"|'|\"")


def _mask(text: str) -> str:
    """Comments blanked, string contents replaced by NUL, quotes and prefixes kept."""
    out: list[str] = []
    pos = 0
    while (m := _TOKEN_START.search(text, pos)) is not None:
        out.append(text[pos:m.start()])
        token = m.group()
        if token.startswith("#"):
            out.append(" " * len(token))
            pos = m.end()
            continue
        end, closed = _string_end(text, m.start(), token)
        body_end = end - len(token) if closed else end
        body = text[m.start() + len(token):body_end]
        out.append(token + re.sub(r"[^\n]", "\0", body) + (token if closed else ""))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _string_end(text: str, start: int, quote: str) -> tuple[int, bool]:
    """Index after the literal and whether it is closed; an open one runs to its line's end."""
    m = _STRING_RES[quote].match(text, start)
    if m:
        return m.end(), True
    if len(quote) == 3:
        return len(text), False
    newline = text.find("\n", start)
    return (len(text) if newline < 0 else newline), False


def _statement_end(masked: str, start: int) -> int | None:
    """End of the statement starting at `start` (newline or ';' outside brackets)."""
    depth = 0
    for m in _BRACKETS.finditer(masked, start):
        ch = m.group()
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "\\":
            continue
        elif depth == 0 and not (ch == "\n" and masked[m.start() - 1:m.start()] == "\\"):
            return m.start()
    return len(masked) if depth == 0 else None


def _close_paren(masked: str, open_at: int) -> int | None:
    depth = 0
    for m in _PARENS.finditer(masked, open_at):
        depth += 1 if m.group() in "([{" else -1
        if depth == 0:
            return m.start()
    return None


def _parse_expr(text: str) -> ast.expr | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _fragments_from_text(text: str, masked: str, limit: int
                         ) -> tuple[list[ast.stmt], dict[str, ast.expr], list[tuple[int, int]]]:
    """Import statements and assignments before `limit`, with their spans."""
    imports: list[ast.stmt] = []
    env: dict[str, ast.expr] = {}
    spans: list[tuple[int, int]] = []
    for m in _IMPORT_RE.finditer(masked, 0, limit):
        try:
            imports.extend(ast.parse(text[m.start(1):m.end(1)]).body)
            spans.append((m.start(1), m.end(1)))
        except (SyntaxError, ValueError):
            continue
    for m in _ASSIGN_RE.finditer(masked, 0, limit):
        end = _statement_end(masked, m.end())
        node = _parse_expr(text[m.end():end]) if end is not None else None
        if node is not None:
            env[m.group(1)] = node
            spans.append((m.start(1), end))  # type: ignore[arg-type]
    return imports, env, spans


def _leftover(masked: str, spans: list[tuple[int, int]]) -> int:
    kept, pos = [], 0
    for start, end in sorted(spans):
        kept.append(masked[pos:max(pos, start)])
        pos = max(pos, end)
    kept.append(masked[pos:])
    return len(re.sub(r"[\s;]", "", "".join(kept)))


def _plan_from_text(text: str) -> _Plan | None:
    """Careful regex reading of a wrapper that `ast` cannot parse as a whole."""
    masked = _mask(text)
    for m in _EXEC_RE.finditer(masked):
        close = _close_paren(masked, m.end() - 1)
        call = _parse_expr(text[m.start():close + 1]) if close is not None else None
        if not isinstance(call, ast.Call) or not call.args:
            continue
        imports, env, spans = _fragments_from_text(text, masked, m.start())
        plan = _checked_plan(_Resolver(_collect_aliases(imports), env), call.args[0])
        if plan is None:
            continue
        if _leftover(masked, spans + [(m.start(), close + 1)]) > _FALLBACK_LEFTOVER:
            return None  # a real script embedding a packed blob
        return plan
    if _WRAPPER_LIKE_RE.search(masked) and len(re.sub(r"[\s\0]", "", masked)) <= _FALLBACK_CODE:
        raise UnpackError("looks like a self-extracting wrapper but its exec call cannot be read")
    return None


# ------------------------------------------------------------- decoders

def _run_plan(plan: _Plan, max_bytes: int) -> tuple[str, list[str]]:
    data: str | bytes = plan.payload
    layers: list[str] = []
    for op in plan.ops:
        data, layer = _apply(op, data, max_bytes)
        if layer:
            layers.append(layer)
    if isinstance(data, bytes):
        data = _bytes_to_text(data, "decoded payload")
    return data, layers


def _apply(op: _Op, data: str | bytes, limit: int) -> tuple[str | bytes, str | None]:
    options = dict(op.options)
    if not op.is_layer:
        return _convert(op.kind, data, options.get("encoding", "utf-8")), None
    kind = op.kind
    if kind in _BASE64_FUNCS:
        out = _base64_decode(kind, data, options)
    else:
        if isinstance(data, str):
            raise UnpackError(f"{kind} payload is text where bytes are needed")
        if kind == "auto":
            kind = _sniff(data, options)
        out = _DECOMPRESSORS[kind](data, options, limit)
    if len(out) > limit:
        raise _too_big(limit)
    return out, _LAYER_NAMES.get(kind, kind)


def _convert(kind: str, data: str | bytes, encoding: Any) -> str | bytes:
    try:
        if kind == "encode" and isinstance(data, str):
            return data.encode(encoding)
        if kind == "decode" and isinstance(data, bytes):
            return data.decode(encoding)
    except (LookupError, TypeError, UnicodeError) as exc:
        raise UnpackError(f"payload {kind} with {encoding!r} failed: {exc}") from None
    return data


_BASE64_FUNCS: dict[str, Callable[..., bytes]] = {
    "b85": base64.b85decode, "b64": base64.b64decode, "b64url": base64.urlsafe_b64decode,
    "a85": base64.a85decode, "b32": base64.b32decode, "b16": base64.b16decode,
}


def _base64_decode(kind: str, data: str | bytes, options: dict[str, Any]) -> bytes:
    try:
        return _BASE64_FUNCS[kind](data, **options)
    except (ValueError, TypeError) as exc:
        raise UnpackError(f"corrupt {_LAYER_NAMES.get(kind, kind)} payload: {exc}") from None


def _too_big(limit: int) -> UnpackError:
    return UnpackError(f"decompressed size exceeds {_fmt_size(limit)} limit (decompression bomb?)")


def _fmt_size(n: int) -> str:
    return f"{n // _MIB} MiB" if n % _MIB == 0 else f"{n} bytes"


def _corrupt(kind: str, exc: BaseException) -> UnpackError:
    return UnpackError(f"corrupt {kind} payload: {exc}")


def _sniff(data: bytes, options: dict[str, Any]) -> str:
    """Pick the codec of an unaliased `X.decompress(...)` from its payload."""
    if "filters" in options or "format" in options or data.startswith((b"\xfd7zXZ\0", b"]\0")):
        return "lzma"
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"BZh"):
        return "bz2"
    if "wbits" in options or (len(data) > 1 and data[0] & 0x0F == 8
                              and (data[0] << 8 | data[1]) % 31 == 0):
        return "zlib"
    return "brotli"


def _lzma_decompressor(options: dict[str, Any]) -> lzma.LZMADecompressor:
    fmt = options.get("format", lzma.FORMAT_AUTO)
    filters = options.get("filters")
    if fmt == lzma.FORMAT_RAW:
        for spec in filters or []:
            if isinstance(spec, dict) and _dict_size(spec) > _MAX_LZMA_DICT:
                raise UnpackError(f"lzma dictionary larger than {_fmt_size(_MAX_LZMA_DICT)} refused")
        return lzma.LZMADecompressor(format=fmt, filters=filters)
    return lzma.LZMADecompressor(format=fmt, memlimit=_LZMA_MEMLIMIT, filters=filters)


def _dict_size(spec: dict[str, Any]) -> int:
    size = spec.get("dict_size", 0)
    return size if isinstance(size, int) else 0


def _lzma(data: bytes, options: dict[str, Any], limit: int) -> bytes:
    return _multistream(lambda: _lzma_decompressor(options), data, limit, "lzma",
                        (lzma.LZMAError, ValueError, TypeError, KeyError, MemoryError))


def _bz2(data: bytes, options: dict[str, Any], limit: int) -> bytes:
    return _multistream(bz2.BZ2Decompressor, data, limit, "bz2", (OSError, ValueError))


def _multistream(make: Callable[[], Any], data: bytes, limit: int, kind: str,
                 errors: tuple[type[BaseException], ...]) -> bytes:
    """Concatenated streams like lzma.decompress/bz2.decompress, output capped."""
    out = bytearray()
    while True:
        try:
            decomp = make()
            out += decomp.decompress(data, max_length=limit - len(out) + 1)
        except errors as exc:
            if out:
                break  # trailing garbage after a good stream is ignored, as Python does
            raise _corrupt(kind, exc) from None
        if len(out) > limit:
            raise _too_big(limit)
        if not decomp.eof:
            raise UnpackError(f"corrupt {kind} payload: stream ends before its end marker")
        data = decomp.unused_data
        if not data:
            return bytes(out)
    return bytes(out)


def _zlib(data: bytes, options: dict[str, Any], limit: int, wbits: int | None = None) -> bytes:
    wbits = options.get("wbits", zlib.MAX_WBITS) if wbits is None else wbits
    kind = "gzip" if wbits in range(25, 32) else "zlib"
    out = bytearray()
    while True:
        try:
            decomp = zlib.decompressobj(wbits)
            out += decomp.decompress(data, limit - len(out) + 1)
        except (zlib.error, ValueError, TypeError, OverflowError) as exc:
            raise _corrupt(kind, exc) from None
        if len(out) > limit:
            raise _too_big(limit)
        if not decomp.eof:
            raise UnpackError(f"corrupt {kind} payload: stream is truncated")
        data = decomp.unused_data
        if kind != "gzip" or not data.strip(b"\0"):
            return bytes(out)  # zlib ignores trailing bytes; gzip reads further members


def _gzip(data: bytes, options: dict[str, Any], limit: int) -> bytes:
    return _zlib(data, options, limit, wbits=31)


def _brotli(data: bytes, options: dict[str, Any], limit: int) -> bytes:
    try:
        import brotli  # optional: only the train extra installs it
    except ImportError:
        raise UnpackError("brotli payload but the brotli module is not installed") from None
    try:
        return _brotli_stream(brotli.Decompressor(), data, limit)
    except brotli.error as exc:
        raise _corrupt("brotli", exc) from None


def _brotli_stream(decomp: Any, data: bytes, limit: int) -> bytes:
    try:
        out = bytearray(decomp.process(data, output_buffer_limit=_BROTLI_STEP))
    except TypeError:
        return _brotli_bytewise(decomp, data, limit)  # brotli < 1.2 has no output limit
    while len(out) <= limit and not decomp.can_accept_more_data():
        out += decomp.process(b"", output_buffer_limit=_BROTLI_STEP)
    if len(out) > limit:
        raise _too_big(limit)
    if not decomp.is_finished():
        raise UnpackError("corrupt brotli payload: stream is truncated")
    return bytes(out)


def _brotli_bytewise(decomp: Any, data: bytes, limit: int) -> bytes:
    """Feed one byte at a time so the size check runs between small expansions."""
    out = bytearray()
    for i in range(len(data)):
        out += decomp.process(data[i:i + 1])
        if len(out) > limit:
            raise _too_big(limit)
    if not decomp.is_finished():
        raise UnpackError("corrupt brotli payload: stream is truncated")
    return bytes(out)


_DECOMPRESSORS: dict[str, Callable[[bytes, dict[str, Any], int], bytes]] = {
    "lzma": _lzma, "zlib": _zlib, "gzip": _gzip, "bz2": _bz2, "brotli": _brotli,
}
