"""Parse submission source into a Python `ast` tree, whatever interpreter runs the checker.

The fast path is `ast.parse`. Sources written for a newer grammar than the
running interpreter (3.12 f-strings such as f"{", ".join(x)}") go through
libcst, whose native parser accepts 3.0-3.14 syntax: every f-string is
replaced by a plain literal holding its literal text (file globs survive),
padded with the same number of newlines, so line numbers do not move.
libcst's native parser recurses on the C stack and crashes the process on
pathological nesting, so it runs in a child process with a time limit, and
sources nested past what the Python grammar allows never reach it.
Nothing is ever imported or executed.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import warnings

_SAFE = re.compile(r"[^A-Za-z0-9_*./:\- ]")
FALLBACK_TIMEOUT_S = 60
MAX_BRACKET_DEPTH = 200  # CPython's own tokenizer limit (MAXLEVEL)


class StaticParseError(Exception):
    """The source cannot be parsed by either parser; the message is one line.

    `limit` is set when an analysis limit (nesting, time, a crashed parser) stopped
    it, rather than a syntax error in the source.
    """

    def __init__(self, message: str, limit: bool = False) -> None:
        super().__init__(message)
        self.limit = limit


def parse_source(source: str) -> ast.Module:
    try:
        return _ast_parse(source)
    except RecursionError:
        raise StaticParseError("expression nesting is deeper than the parser's recursion limit", limit=True) from None
    except MemoryError:
        raise StaticParseError("the parser ran out of memory", limit=True) from None
    except (SyntaxError, ValueError) as first:
        depth = bracket_depth(source)
        if depth > MAX_BRACKET_DEPTH:
            raise StaticParseError(
                f"brackets nested {depth} deep, past the limit of {MAX_BRACKET_DEPTH}", limit=True
            ) from None
        flattened = _flatten_fstrings_guarded(source)
        try:
            return _ast_parse(flattened)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise StaticParseError(f"cannot parse: {first.__class__.__name__}: {exc}") from None


def _ast_parse(source: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old scripts
        return ast.parse(source)


def bracket_depth(source: str) -> int:
    """The deepest nesting of (), [] and {} outside string literals and comments (a cheap scan)."""
    depth = deepest = 0
    quote: str | None = None
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if source.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif c == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            quote = c * 3 if source.startswith(c * 3, i) else c
            i += len(quote)
            continue
        elif c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def _flatten_fstrings_guarded(source: str) -> str:
    """Run the libcst rewrite in a child: a native parser crash or hang costs a review, not the audit."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pgolf.compliance.static.parse"],
            input=source.encode("utf-8", "surrogatepass"),
            capture_output=True,
            timeout=FALLBACK_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise StaticParseError(f"the fallback parser took over {FALLBACK_TIMEOUT_S} s", limit=True) from None
    if done.returncode < 0:
        raise StaticParseError(f"the fallback parser crashed (signal {-done.returncode})", limit=True)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise StaticParseError(message[-1] if message else "cannot parse")
    return done.stdout.decode("utf-8", "surrogatepass")


def _flatten_fstrings(source: str) -> str:
    try:
        import libcst as cst
    except ImportError:  # pragma: no cover - libcst is a dependency
        raise StaticParseError("source needs a newer grammar and libcst is not installed") from None
    try:
        module = cst.parse_module(source)
    except Exception as exc:  # libcst raises ParserSyntaxError and friends
        raise StaticParseError(f"cannot parse: {' '.join(str(exc).split())[:200]}") from None

    class _Flatten(cst.CSTTransformer):
        def leave_FormattedString(  # noqa: N802 - libcst API
            self, original: cst.FormattedString, updated: cst.FormattedString
        ) -> cst.BaseExpression:
            text = "".join(p.value for p in original.parts if isinstance(p, cst.FormattedStringText))
            newlines = module.code_for_node(original).count("\n")
            body = _SAFE.sub("", text.replace("\n", " "))
            literal = f'"""{body}{chr(10) * newlines}"""' if newlines else f'"{body}"'
            return cst.SimpleString(literal)

    return module.visit(_Flatten()).code


def _child() -> int:
    """`python -m pgolf.compliance.static.parse`: source on stdin, flattened source on stdout."""
    source = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    try:
        sys.stdout.buffer.write(_flatten_fstrings(source).encode("utf-8", "surrogatepass"))
    except StaticParseError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child())
