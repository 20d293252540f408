"""The decoders, each with a hard output limit, so a decompression bomb costs neither time nor memory."""

from __future__ import annotations

import base64
import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

from .model import _BROTLI_STEP, _LZMA_MEMLIMIT, _MAX_LZMA_DICT, _MIB, UnpackError, _bytes_to_text, _Op, _Plan
from .resolve import _LAYER_NAMES


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
    if op.kind == "replace":
        return _replace(data, options.get("old"), options.get("new")), None
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


def _replace(data: str | bytes, old: Any, new: Any) -> str | bytes:
    """`blob.replace(b"\\n", b"")`: wrappers that wrap their payload over lines strip it back."""
    if type(old) is not type(data) or type(new) is not type(data):
        raise UnpackError("payload .replace() mixes text and bytes")
    return data.replace(old, new)  # type: ignore[arg-type]


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
    "b85": base64.b85decode,
    "b64": base64.b64decode,
    "b64url": base64.urlsafe_b64decode,
    "a85": base64.a85decode,
    "b32": base64.b32decode,
    "b16": base64.b16decode,
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
    if "wbits" in options or (len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0):
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
    return _multistream(
        lambda: _lzma_decompressor(options),
        data,
        limit,
        "lzma",
        (lzma.LZMAError, ValueError, TypeError, KeyError, MemoryError),
    )


def _bz2(data: bytes, options: dict[str, Any], limit: int) -> bytes:
    return _multistream(bz2.BZ2Decompressor, data, limit, "bz2", (OSError, ValueError))


def _multistream(
    make: Callable[[], Any], data: bytes, limit: int, kind: str, errors: tuple[type[BaseException], ...]
) -> bytes:
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
        out += decomp.process(data[i : i + 1])
        if len(out) > limit:
            raise _too_big(limit)
    if not decomp.is_finished():
        raise UnpackError("corrupt brotli payload: stream is truncated")
    return bytes(out)


_DECOMPRESSORS: dict[str, Callable[[bytes, dict[str, Any], int], bytes]] = {
    "lzma": _lzma,
    "zlib": _zlib,
    "gzip": _gzip,
    "bz2": _bz2,
    "brotli": _brotli,
}
