"""Parse submission source into a Python `ast` tree, whatever interpreter runs the checker.

The fast path is `ast.parse`. Sources written for a newer grammar than the
running interpreter (3.12 f-strings such as f"{", ".join(x)}") go through
libcst, whose native parser accepts 3.0-3.14 syntax: every f-string is
replaced by a plain literal holding its literal text (file globs survive),
padded with the same number of newlines, so line numbers do not move.
Nothing is ever imported or executed.
"""
from __future__ import annotations

import ast
import re
import warnings

_SAFE = re.compile(r"[^A-Za-z0-9_*./:\- ]")


class StaticParseError(Exception):
    """The source cannot be parsed by either parser; the message is one line."""


def parse_source(source: str) -> ast.Module:
    try:
        return _ast_parse(source)
    except (SyntaxError, ValueError) as first:
        try:
            return _ast_parse(_flatten_fstrings(source))
        except StaticParseError:
            raise
        except (SyntaxError, ValueError, RecursionError) as exc:
            raise StaticParseError(f"cannot parse: {first.__class__.__name__}: {exc}") from None
    except RecursionError:
        raise StaticParseError("cannot parse: expression nesting too deep") from None


def _ast_parse(source: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old scripts
        return ast.parse(source)


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
        def leave_FormattedString(self, original, updated):  # noqa: N802 - libcst API
            text = "".join(p.value for p in original.parts if isinstance(p, cst.FormattedStringText))
            newlines = module.code_for_node(original).count("\n")
            body = _SAFE.sub("", text.replace("\n", " "))
            literal = f'"""{body}{chr(10) * newlines}"""' if newlines else f'"{body}"'
            return cst.SimpleString(literal)

    return module.visit(_Flatten()).code
