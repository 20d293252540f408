"""What the parts of the unpacker share: limits, the error, the decode plan, source text."""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass
from typing import Any

_MIB = 1024 * 1024
# liblzma allocates the whole dictionary up front: cap what a wrapper may ask for.
_MAX_LZMA_DICT = 256 * _MIB
_LZMA_MEMLIMIT = _MAX_LZMA_DICT + 64 * _MIB
# Records' stub decodes with the default LZMA2 filter, whose dictionary is 8 MiB.
_STUB_DICT = 8 * _MIB
_BROTLI_STEP = _MIB
_MAX_LIMIT = 1 << 62  # decompressors take a C ssize_t output limit
_FALLBACK_LEFTOVER = 64  # stray code allowed around an unparseable wrapper
_FALLBACK_CODE = 512  # code size under which unreadable exec chains raise

_STUB_HEAD = 'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("'
_STUB_TAIL = '"),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n'


class UnpackError(Exception):
    """A wrapper was found but cannot be decoded; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class Decoded:
    text: str  # the innermost source
    layers: list[str]  # transforms, outermost first; [] when not wrapped
    wrapped: bool
    origin: str | None = None  # the sibling file the source was read from (`exec(open(...).read())`)


@dataclass(frozen=True)
class _Op:
    kind: str  # a decoder id, or "encode" / "decode"
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_layer(self) -> bool:
        return self.kind not in ("encode", "decode", "replace")


@dataclass(frozen=True)
class _Plan:
    payload: str | bytes
    ops: tuple[_Op, ...] = ()

    def then(self, op: _Op) -> _Plan:
        return _Plan(self.payload, self.ops + (op,))

    @property
    def has_layers(self) -> bool:
        return any(op.is_layer for op in self.ops)


def _bytes_to_text(data: bytes, what: str) -> str:
    """Decode like exec() would: BOM or coding cookie, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise UnpackError(f"{what} is not valid source text: {exc}") from None
