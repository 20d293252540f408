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
import lzma
import warnings
from collections.abc import Callable
from typing import Any

from .codecs import _run_plan
from .fallback import _plan_from_text
from .model import _MAX_LIMIT, _MIB, _STUB_DICT, _STUB_HEAD, _STUB_TAIL, Decoded, UnpackError, _bytes_to_text, _Plan
from .resolve import _TOP_EXEC_RE, _plan_from_module, sibling_exec

__all__ = ["Decoded", "UnpackError", "build_wrapper", "decode_script", "is_wrapper", "sibling_exec"]

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


def decode_script(
    source: str | bytes,
    max_bytes: int = 64 * _MIB,
    max_depth: int = 4,
    sibling: Callable[[str], str | None] | None = None,
) -> Decoded:
    """Peel up to `max_depth` nested wrappers; a non-wrapper comes back as is.

    `sibling(name)` reads a file next to the script, for a script that only execs another
    file of its folder; without it such a script comes back as is.
    """
    if not _positive_int(max_bytes) or not _positive_int(max_depth):
        raise UnpackError("max_bytes and max_depth must be positive integers")
    max_bytes = min(max_bytes, _MAX_LIMIT)
    text = _source_text(source)
    layers: list[str] = []
    origin: str | None = None
    for depth in range(max_depth + 1):
        name = _sibling_of(text) if sibling is not None else None
        if name is not None:
            if depth == max_depth:
                raise UnpackError(f"wrappers nested deeper than {max_depth} levels")
            content = sibling(name)  # type: ignore[misc]
            if content is None:
                raise UnpackError(f"the script execs {name}, which is not in its folder")
            text, origin = content, name
            layers.append(f"file:{name}")
            continue
        plan = _find_plan(text)
        if plan is None:
            return Decoded(text=text, layers=layers, wrapped=bool(layers), origin=origin)
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


def _sibling_of(text: str) -> str | None:
    if "exec" not in text or "open" not in text or len(text) > 4096:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sibling_exec(ast.parse(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _source_text(source: object) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, (bytes, bytearray)):
        return _bytes_to_text(bytes(source), "source")
    raise UnpackError(f"source must be str or bytes, not {type(source).__name__}")


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
