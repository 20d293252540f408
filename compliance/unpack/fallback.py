"""For wrappers that do not parse (a newer grammar, stray bytes): cut the exec call out by bracket matching
and parse only that."""

from __future__ import annotations

import ast
import re
import warnings

from .model import _FALLBACK_CODE, _FALLBACK_LEFTOVER, UnpackError, _Plan
from .resolve import _EXEC_RE, _WRAPPER_LIKE_RE, _checked_plan, _collect_aliases, _Resolver

_STRING_RES = {
    q * 3: re.compile(q * 3 + r"(?:[^" + q + r"\\]|\\.|" + q + "(?!" + q * 2 + "))*" + q * 3, re.S) for q in "'\""
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
        out.append(text[pos : m.start()])
        token = m.group()
        if token.startswith("#"):
            out.append(" " * len(token))
            pos = m.end()
            continue
        end, closed = _string_end(text, m.start(), token)
        body_end = end - len(token) if closed else end
        body = text[m.start() + len(token) : body_end]
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
        elif depth == 0 and not (ch == "\n" and masked[m.start() - 1 : m.start()] == "\\"):
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


def _fragments_from_text(
    text: str, masked: str, limit: int
) -> tuple[list[ast.stmt], dict[str, ast.expr], list[tuple[int, int]]]:
    """Import statements and assignments before `limit`, with their spans."""
    imports: list[ast.stmt] = []
    env: dict[str, ast.expr] = {}
    spans: list[tuple[int, int]] = []
    for m in _IMPORT_RE.finditer(masked, 0, limit):
        try:
            imports.extend(ast.parse(text[m.start(1) : m.end(1)]).body)
            spans.append((m.start(1), m.end(1)))
        except (SyntaxError, ValueError):
            continue
    for m in _ASSIGN_RE.finditer(masked, 0, limit):
        end = _statement_end(masked, m.end())
        node = _parse_expr(text[m.end() : end]) if end is not None else None
        if node is not None:
            env[m.group(1)] = node
            spans.append((m.start(1), end))  # type: ignore[arg-type]
    return imports, env, spans


def _leftover(masked: str, spans: list[tuple[int, int]]) -> int:
    kept, pos = [], 0
    for start, end in sorted(spans):
        kept.append(masked[pos : max(pos, start)])
        pos = max(pos, end)
    kept.append(masked[pos:])
    return len(re.sub(r"[\s;]", "", "".join(kept)))


def _plan_from_text(text: str) -> _Plan | None:
    """Careful regex reading of a wrapper that `ast` cannot parse as a whole."""
    masked = _mask(text)
    for m in _EXEC_RE.finditer(masked):
        close = _close_paren(masked, m.end() - 1)
        call = _parse_expr(text[m.start() : close + 1]) if close is not None else None
        if not isinstance(call, ast.Call) or not call.args:
            continue
        imports, env, spans = _fragments_from_text(text, masked, m.start())
        plan = _checked_plan(_Resolver(_collect_aliases(imports), env), call.args[0])
        if plan is None or close is None:
            continue
        if _leftover(masked, spans + [(m.start(), close + 1)]) > _FALLBACK_LEFTOVER:
            return None  # a real script embedding a packed blob
        return plan
    if _WRAPPER_LIKE_RE.search(masked) and len(re.sub(r"[\s\0]", "", masked)) <= _FALLBACK_CODE:
        raise UnpackError("looks like a self-extracting wrapper but its exec call cannot be read")
    return None
