"""C/C++ kernels a record compiles: does a hint for position i read the token at position i?

N-gram mixers shipped as C (ctypes) or C++ kernels loop over positions and write a
hint per position into an output buffer. C1 requires the hint for position i to come
from the prefix only. The illegal form reads a property of the token at position i
(`is_bnd_[tokens_[p]]`, `boundary_lut[tokens[i]]`), which is the token being scored,
and lets it decide the hint written at [i]; the causal form reads `tokens_[p - 1]`, or
uses the current token only to update state after the hint is written.

The check is a light, order-sensitive taint pass over each loop body: the seeds are
reads of a boolean lookup table keyed by the token at the loop's own position; taint
follows assignments, arguments of calls that take it (their other plain-name
arguments are treated as outputs), and conditions; a write `out[i] = ...` that is
tainted, or done under a tainted condition, is a leak. Statements run in order, so
state updated with the current token after the write does not count (the next
position may depend on it: that is the prefix). Leaks are carried through the
functions that call the leaking one (extern "C" wrappers) so a Python call site can be
matched by exported name and argument position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_FUNC = re.compile(
    r"(?:^|[;{}\s])([A-Za-z_][\w:<>,\s\*&]*?)\b([A-Za-z_]\w*)\s*\(([^;{}()]*(?:\([^()]*\)[^;{}()]*)*)\)"
    r"\s*(?:const\s*)?(?:noexcept\s*)?\{"
)
_FOR = re.compile(r"\bfor\s*\(")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_BOOL_TYPES = ("bool", "uint8_t", "int8_t", "char", "unsigned char", "signed char")
_KEYWORDS = {
    "if",
    "for",
    "while",
    "switch",
    "return",
    "sizeof",
    "static_cast",
    "reinterpret_cast",
    "const_cast",
    "uint16_t",
    "uint32_t",
    "uint64_t",
    "int64_t",
    "int32_t",
    "int16_t",
    "uint8_t",
    "int8_t",
    "int",
    "bool",
    "auto",
    "double",
    "float",
    "size_t",
    "char",
    "unsigned",
    "long",
    "const",
    "std",
    "min",
    "max",
    "true",
    "false",
    "nullptr",
    "else",
    "new",
    "delete",
}


@dataclass(frozen=True)
class Leak:
    function: str
    param: int  # position of the output parameter that receives the gated hint
    param_name: str
    line: int  # the write in the kernel
    seed_line: int  # where the current token's property is read
    file: str = ""


@dataclass
class _Function:
    name: str
    params: list[str]
    body: str
    body_start: int  # offset of the body in the cleaned text
    calls: list[tuple[str, list[str], int]] = field(default_factory=list)


def clean(text: str) -> str:
    """Comments and literals blanked, offsets and line numbers kept."""

    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group())

    return _STRING.sub(blank, _COMMENT.sub(blank, text))


def find_leaks(text: str, file: str = "") -> list[Leak]:
    code = clean(text)
    bools = _boolean_tables(code)
    functions = _functions(code)
    leaks: list[Leak] = []
    for fn in functions.values():
        for leak in _loop_leaks(fn, code, bools):
            leaks.append(Leak(fn.name, leak[0], fn.params[leak[0]], leak[1], leak[2], file))
    return _through_wrappers(leaks, functions, code, file)


def _boolean_tables(code: str) -> set[str]:
    """Names declared as pointers/arrays of a byte or bool type: per-token property tables."""
    names: set[str] = set()
    for kind in _BOOL_TYPES:
        for m in re.finditer(rf"\b{kind}\s*\*+\s*(?:const\s+)?([A-Za-z_]\w*)|\b{kind}\s+([A-Za-z_]\w*)\s*\[", code):
            names.add(m.group(1) or m.group(2))
    return names


def _functions(code: str) -> dict[str, _Function]:
    out: dict[str, _Function] = {}
    for m in _FUNC.finditer(code):
        name = m.group(2)
        if name in _KEYWORDS:
            continue
        start = m.end() - 1
        end = _matching(code, start, "{", "}")
        if end < 0:
            continue
        params = [_param_name(p) for p in _split_args(m.group(3))]
        out.setdefault(name, _Function(name, [p for p in params if p], code[start + 1 : end], start + 1))
    return out


def _param_name(param: str) -> str:
    names = _IDENT.findall(param.split("=")[0])
    return names[-1] if names else ""


def _split_args(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for c in text:
        if c in "(<[":
            depth += 1
        elif c in ")>]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += c
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts]


def _matching(code: str, start: int, open_c: str, close_c: str) -> int:
    depth = 0
    for i in range(start, len(code)):
        if code[i] == open_c:
            depth += 1
        elif code[i] == close_c:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _line(code: str, offset: int) -> int:
    return code.count("\n", 0, offset) + 1


def _loop_leaks(fn: _Function, code: str, bools: set[str]) -> list[tuple[int, int, int]]:
    """(param index, write line, seed line) for each output written from the current token's property."""
    found = []
    for m in _FOR.finditer(fn.body):
        header_end = _matching(fn.body, m.end() - 1, "(", ")")
        if header_end < 0:
            continue
        header = fn.body[m.end() : header_end]
        index = _loop_index(header)
        brace = fn.body.find("{", header_end)
        if index is None or brace < 0 or fn.body[header_end + 1 : brace].strip():
            continue
        end = _matching(fn.body, brace, "{", "}")
        if end < 0:
            continue
        body = fn.body[brace + 1 : end]
        offset = fn.body_start + brace + 1
        for param, write, seed in _taint(body, index, bools, fn.params):
            found.append((param, _line(code, offset + write), _line(code, offset + seed)))
    return found


def _loop_index(header: str) -> str | None:
    init = header.split(";")[0]
    names = _IDENT.findall(init)
    names = [n for n in names if n not in _KEYWORDS]
    return names[0] if names else None


_STATEMENT = re.compile(r"[^;{}]*[;{}]")


_INITIALIZER = re.compile(r"=\s*\{([^{}]*)\}")


def _taint(body: str, index: str, bools: set[str], params: list[str]) -> list[tuple[int, int, int]]:
    """Walk the loop body's statements in order; report tainted writes to parameters at [index]."""
    body = _INITIALIZER.sub(lambda m: m.group(0).replace("{", "(").replace("}", ")"), body)  # same offsets
    positions = {index}  # the loop's own position
    current: set[str] = set()  # values read at it: p = pos[i], tok = tokens[p]
    tainted: dict[str, int] = {}  # name -> offset of the seed it comes from
    control: list[tuple[int, int]] = []  # (closing depth, seed offset) of tainted conditions
    depth = 0
    leaks: list[tuple[int, int, int]] = []
    for m in _STATEMENT.finditer(body):
        stmt, start = m.group(), m.start()
        text = stmt[:-1]
        if stmt.endswith("{"):
            seed = _mentions(text, tainted) if re.search(r"\b(if|while|switch)\b|\?", text) else None
            depth += 1
            if seed is not None:
                control.append((depth, seed))
            continue
        if stmt.endswith("}"):
            control = [c for c in control if c[0] < depth]
            depth -= 1
            continue
        guard = None
        inline_if = re.match(r"\s*(?:else\s+)?if\s*\(", text)
        if inline_if:
            close = _matching(text, inline_if.end() - 1, "(", ")")
            if close > 0:
                guard = _mentions(text[inline_if.end() : close], tainted)
                text = text[close + 1 :]
        assign = re.match(
            r"\s*(?:[\w:<>]+\s+)*?(?:[\w:<>]+[\s\*&]+)?([A-Za-z_]\w*)\s*(\[[^=]*\])?\s*[+\-|&*/]?=(?!=)(.*)$",
            text,
            re.S,
        )
        if assign:
            name, subscript, value = assign.group(1), assign.group(2), assign.group(3)
            seed = _mentions(value, tainted)
            under = guard if guard is not None else (control[-1][1] if control else None)
            if subscript is None:
                _classify(name, value, positions, current, bools, tainted, start)
                taint = seed if seed is not None else under
                if taint is not None:
                    tainted.setdefault(name, taint)
                continue
            origin = seed if seed is not None else under
            if subscript.strip() == f"[{index}]" and name in params and origin is not None:
                leaks.append((params.index(name), start + len(stmt) - len(stmt.lstrip()), origin))
            elif origin is not None:
                tainted.setdefault(name, origin)  # cands[nc++] = {hint, beta}: the array holds it now
            continue
        call = re.match(r"\s*([A-Za-z_][\w:\.\->]*)\s*\((.*)\)\s*$", text, re.S)
        if call:
            args = _split_args(call.group(2))
            seed = next((tainted[a] for a in args if a in tainted), None) if args else None
            seed = seed if seed is not None else _mentions(call.group(2), tainted)
            if seed is not None:
                for a in args:  # a call fed the current token's property fills its other arguments
                    if re.fullmatch(r"[A-Za-z_]\w*", a) and a not in tainted:
                        tainted[a] = seed
    return leaks


def _classify(
    name: str, value: str, positions: set[str], current: set[str], bools: set[str], tainted: dict[str, int], offset: int
) -> None:
    """`p = pos[i]` and `tok = tokens[p]` read at the current position; `b = lut[tok]`, with lut a
    byte/bool table, is a property of the current token: a seed."""
    here = positions | current
    pure = re.fullmatch(r"\s*(?:[\w:<>]+\s*\(\s*)?([A-Za-z_]\w*)\s*\[\s*([A-Za-z_]\w*)\s*\]\s*\)?\s*", value)
    if pure and pure.group(2) in here:
        if pure.group(1) in bools:
            tainted[name] = offset
        else:
            current.add(name)
        return
    for lut, key in re.findall(r"([A-Za-z_]\w*)\s*\[\s*([A-Za-z_]\w*)\s*\]", value):
        if lut in bools and key in here:
            tainted[name] = offset
            return


def _mentions(text: str, tainted: dict[str, int]) -> int | None:
    for ident in _IDENT.findall(text):
        if ident in tainted:
            return tainted[ident]
    return None


def _through_wrappers(leaks: list[Leak], functions: dict[str, _Function], code: str, file: str) -> list[Leak]:
    """`ctxmixer_get_hints_batch(self, pos, n, out)` calls `get_hints_batch(pos, n, out)`: the wrapper leaks too."""
    out = list(leaks)
    known = {(leak.function, leak.param): leak for leak in leaks}
    changed = True
    while changed:
        changed = False
        for fn in functions.values():
            for callee, param in list(known):
                for m in re.finditer(rf"\b{re.escape(callee)}\s*\(", fn.body):
                    end = _matching(fn.body, m.end() - 1, "(", ")")
                    args = _split_args(fn.body[m.end() : end]) if end > 0 else []
                    if param < len(args) and args[param] in fn.params:
                        mine = fn.params.index(args[param])
                        if (fn.name, mine) not in known:
                            inner = known[(callee, param)]
                            leak = Leak(fn.name, mine, args[param], inner.line, inner.seed_line, file)
                            known[(fn.name, mine)] = leak
                            out.append(leak)
                            changed = True
    return out
