"""Static decoding of self-extracting wrappers (compliance/unpack.py)."""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from pgolf.compliance.unpack import (
    Decoded,
    UnpackError,
    build_wrapper,
    decode_script,
    is_wrapper,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TRACK = SHARED / "records-data" / "records" / "track_10min_16mb"
# Real Python sources to pack: this project's own modules.
SOURCE = (REPO / "compliance" / "stats.py").read_text()
PY312_ONLY = 'names = ["a", "b"]\nprint(f"{", ".join(names)}")\n'

try:
    import brotli
except ImportError:  # the train extra is not installed
    brotli = None

COMPRESS = {
    "lzma": lzma.compress,
    "zlib": lambda b: zlib.compress(b, 9),
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "brotli": lambda b: brotli.compress(b, quality=11),
}
ENCODE = {"b85": base64.b85encode, "b64": base64.b64encode, "a85": base64.a85encode}


def wrap(source: str | bytes, codec: str, enc: str) -> str:
    raw = source.encode() if isinstance(source, str) else source
    payload = ENCODE[enc](COMPRESS[codec](raw)).decode("ascii")
    # repr(): a85 output may hold quotes and backslashes.
    return f"import {codec} as C,base64 as E\nexec(C.decompress(E.{enc}decode({payload!r})))\n"


def wrap_payload(stub_call: str, packed: bytes) -> str:
    return "import lzma as L,base64 as B\n" + stub_call.replace("PAYLOAD", repr(base64.b85encode(packed).decode()))


def needs_brotli(codec: str) -> None:
    if codec == "brotli" and brotli is None:
        pytest.skip("brotli is not installed (pgolf[train] extra)")


# ------------------------------------------------------------ round trips


@pytest.mark.parametrize("codec", ["lzma", "zlib", "brotli", "gzip", "bz2"])
@pytest.mark.parametrize("enc", ["b85", "b64", "a85"])
def test_round_trip_each_codec_and_encoding(codec, enc):
    needs_brotli(codec)
    wrapper = wrap(SOURCE, codec, enc)
    assert is_wrapper(wrapper)
    got = decode_script(wrapper)
    assert got == Decoded(text=SOURCE, layers=[enc, codec], wrapped=True)


def test_build_wrapper_round_trip_and_shape():
    wrapper = build_wrapper(SOURCE)
    assert wrapper.startswith('import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("')
    assert wrapper.endswith('"),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n')
    assert len(wrapper) < len(SOURCE) / 2
    got = decode_script(wrapper)
    assert got.text == SOURCE and got.layers == ["b85", "lzma"] and got.wrapped
    assert decode_script(build_wrapper("")).text == ""
    unicode = "# ünïcödé → ok\nprint('π')\r\n"
    assert decode_script(build_wrapper(unicode)).text == unicode


@pytest.mark.shared
def test_real_train_log_as_payload():
    if not TRACK.is_dir():
        pytest.skip(f"record data not found at {TRACK} (../shared absent)")
    log = next(TRACK.glob("2026-04-22_*/train_seed1.log"), None)
    if log is None:
        pytest.skip("2026-04-22 record log missing")
    text = log.read_text()
    assert decode_script(build_wrapper(text)).text == text
    assert decode_script(wrap(text, "zlib", "b64"), max_bytes=len(text.encode())).text == text


def test_bytes_source_and_bytes_payload_result():
    got = decode_script(build_wrapper(SOURCE).encode("ascii"))
    assert got.text == SOURCE
    plain = decode_script(SOURCE.encode())
    assert plain == Decoded(text=SOURCE, layers=[], wrapped=False)
    # A coding cookie in the decoded bytes is honoured, as exec() would.
    latin = "# -*- coding: latin-1 -*-\ns = 'café'\n"
    wrapper = wrap(latin.encode("latin-1"), "zlib", "b64")
    assert decode_script(wrapper).text == latin


# ------------------------------------------------------- wrapper variants


def test_nested_layers():
    inner = wrap(SOURCE, "zlib", "b64")
    middle = wrap(inner, "bz2", "a85")
    outer = build_wrapper(middle)
    got = decode_script(outer)
    assert got.text == SOURCE
    assert got.layers == ["b85", "lzma", "a85", "bz2", "b64", "zlib"]
    with pytest.raises(UnpackError, match="nested deeper than 2"):
        decode_script(outer, max_depth=2)
    assert decode_script(outer, max_depth=3).text == SOURCE


def test_payload_in_variables_and_split_literals():
    payload = base64.b85encode(lzma.compress(SOURCE.encode())).decode()
    a, b, c = payload[:100], payload[100:2000], payload[2000:]
    wrapper = (
        "import lzma as L, base64 as B\n"
        f"P = ({a!r}\n     {b!r})\n"
        f"Q: str = {c!r}\n"
        "exec(compile(L.decompress(B.b85decode((P + Q).encode())).decode('utf-8'),"
        " 'train_gpt.py', 'exec'))\n"
    )
    got = decode_script(wrapper)
    assert got.text == SOURCE and got.layers == ["b85", "lzma"]


def test_join_and_import_forms():
    packed = zlib.compress(SOURCE.encode())
    b64 = base64.b64encode(packed).decode()
    chunks = [b64[i : i + 5000] for i in range(0, len(b64), 5000)]
    wrapper = f"from zlib import decompress as D\nfrom base64 import *\nexec(D(b64decode(''.join({chunks!r}))))\n"
    assert decode_script(wrapper).layers == ["b64", "zlib"]
    dunder = f"exec(__import__('zlib').decompress(__import__('base64').b64decode({b64!r})))"
    assert decode_script(dunder).text == SOURCE


def test_raw_lzma_with_filter_chain_in_a_variable():
    filters = [{"id": lzma.FILTER_DELTA, "dist": 4}, {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    packed = lzma.compress(SOURCE.encode(), format=lzma.FORMAT_RAW, filters=filters)
    wrapper = wrap_payload(
        "F = [{'id': L.FILTER_DELTA, 'dist': 2 + 2},\n"
        "     {'id': L.FILTER_LZMA2, 'preset': 9 | L.PRESET_EXTREME}]\n"
        "exec(L.decompress(B.b85decode(PAYLOAD), format=L.FORMAT_RAW, filters=F))\n",
        packed,
    )
    assert decode_script(wrapper).text == SOURCE
    # The decoder has to use the wrapper's filters: without the delta filter it is garbage.
    wrong = wrapper.replace("'dist': 2 + 2", "'dist': 1")
    with pytest.raises(UnpackError):
        decode_script(wrong)


def test_missing_alias_is_sniffed_from_the_payload():
    # Seen in real stubs: `import lzma; exec(L.decompress(B.b85decode(...)))`.
    packed = lzma.compress(SOURCE.encode())
    wrapper = f"import lzma\nexec(L.decompress(B.b85decode({base64.b85encode(packed).decode()!r})))\n"
    assert decode_script(wrapper).layers == ["b85", "lzma"]


def test_inner_source_with_python312_syntax():
    wrapper = build_wrapper(PY312_ONLY)
    got = decode_script(wrapper)
    assert got.text == PY312_ONLY and got.wrapped
    assert not is_wrapper(PY312_ONLY)
    assert decode_script(wrap(wrapper, "zlib", "b85")).text == PY312_ONLY


def test_unparseable_wrapper_uses_regex_fallback():
    # A stray Python 2 line makes the whole file unparseable.
    broken = build_wrapper(SOURCE) + "print 'unpacked'\n"
    got = decode_script(broken)
    assert got.text == SOURCE and got.layers == ["b85", "lzma"]
    payload = base64.b85encode(lzma.compress(SOURCE.encode())).decode()
    split = (
        f"import lzma as L,base64 as B;P=({payload[:50]!r}\n{payload[50:]!r})\nexec(L.decompress(B.b85decode(P)))\n)"
    )
    assert decode_script(split).text == SOURCE


def test_truncated_wrapper_is_an_error():
    truncated = build_wrapper(SOURCE)[:200]
    assert is_wrapper(truncated)
    with pytest.raises(UnpackError):
        decode_script(truncated)


# ------------------------------------------------------------- not wrappers


def test_non_wrappers_pass_through():
    for text in (
        SOURCE,
        PY312_ONLY,
        "",
        "exec(open('train.py').read())\n",
        "import lzma\nexec(lzma.decompress(open('blob', 'rb').read()))\n",
        "exec('print(1)')\n",
    ):
        assert not is_wrapper(text)
        assert decode_script(text) == Decoded(text=text, layers=[], wrapped=False)


def test_script_embedding_a_blob_is_not_a_wrapper():
    # Unwrapping would hide the outer code from the checker.
    embedded = SOURCE + "\n" + build_wrapper("x = 1\n") + "main()\n"
    assert not is_wrapper(embedded)
    assert decode_script(embedded).text == embedded
    # Same, in a file only a newer grammar parses (the fallback path on 3.11).
    newer = PY312_ONLY * 20 + build_wrapper("x = 1\n") + SOURCE
    assert decode_script(newer).text == newer


def test_bad_arguments():
    with pytest.raises(UnpackError, match="str or bytes"):
        decode_script(123)  # type: ignore[arg-type]
    with pytest.raises(UnpackError, match="positive"):
        decode_script(SOURCE, max_depth=0)
    with pytest.raises(UnpackError, match="valid source text"):
        decode_script(b"\xff\xfe\xfa not utf-8")
    assert not is_wrapper(b"\xff\xfe\xfa")
    with pytest.raises(UnpackError):
        build_wrapper("\udc80")


# ------------------------------------------------- corrupt payloads, bombs


@pytest.mark.parametrize("codec", ["lzma", "zlib", "brotli", "bz2"])
def test_corrupt_payload(codec):
    needs_brotli(codec)
    packed = bytearray(COMPRESS[codec](SOURCE.encode()))
    for i in range(len(packed) // 3, len(packed) // 3 + 16):
        packed[i] ^= 0x5A
    wrapper = (
        f"import {codec} as C,base64 as E\n"
        f"exec(C.decompress(E.b64decode({base64.b64encode(bytes(packed)).decode()!r})))\n"
    )
    assert is_wrapper(wrapper)
    with pytest.raises(UnpackError) as err:
        decode_script(wrapper)
    assert "\n" not in str(err.value)
    truncated = (
        f"import {codec} as C,base64 as E\nexec(C.decompress(E.b64decode("
        f"{base64.b64encode(COMPRESS[codec](SOURCE.encode())[:-40]).decode()!r})))\n"
    )
    with pytest.raises(UnpackError):
        decode_script(truncated)


def test_corrupt_base85_text():
    wrapper = build_wrapper(SOURCE).replace('b85decode("', 'b85decode("\\\\ ', 1)
    with pytest.raises(UnpackError, match="b85"):
        decode_script(wrapper)


def _lzma_bomb() -> bytes:
    # xz streams may be concatenated: 16 x 64 MiB of zeros = 1 GiB.
    return lzma.compress(bytes(64 << 20), preset=0) * 16


def _deflate_bomb() -> bytes:
    # A full flush resets the compressor, so every 1 MiB block compresses identically.
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 20)
    comp.compress(block)
    first = comp.flush(zlib.Z_FULL_FLUSH)
    comp.compress(block)
    repeat = comp.flush(zlib.Z_FULL_FLUSH)
    return first + repeat * 1023 + comp.flush()


def _brotli_bomb() -> bytes:
    comp = brotli.Compressor(quality=1)
    block = bytes(1 << 20)
    return b"".join(comp.process(block) for _ in range(1024)) + comp.finish()


BOMBS = {
    "lzma": ("lzma", "", _lzma_bomb),
    "zlib": ("zlib", ", -15", _deflate_bomb),
    "brotli": ("brotli", "", _brotli_bomb),
}


@pytest.mark.slow
@pytest.mark.parametrize("codec", sorted(BOMBS))
def test_decompression_bomb_is_refused_quickly_and_cheaply(codec):
    needs_brotli(codec)
    module, extra, make = BOMBS[codec]
    packed = make()
    assert len(packed) < 2 << 20  # 1 GiB of zeros in under 2 MiB
    wrapper = (
        f"import {module} as C,base64 as E\n"
        f"exec(C.decompress(E.b85decode({base64.b85encode(packed).decode()!r}){extra}))\n"
    )
    # The cap covers the limit plus parsing and pure-Python b85 work on a ~1.3 MB payload.
    for limit, peak_cap in ((64 << 20, 200 << 20), (1 << 20, 64 << 20)):
        tracemalloc.start()
        start = time.perf_counter()
        try:
            with pytest.raises(UnpackError, match="exceeds .* limit .*bomb"):
                decode_script(wrapper, max_bytes=limit)
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert elapsed < 10, f"{codec} bomb took {elapsed:.1f}s"
        assert peak < peak_cap, f"{codec} bomb peaked at {peak >> 20} MiB"


def test_huge_lzma_dictionary_refused():
    wrapper = wrap_payload(
        "exec(L.decompress(B.b85decode(PAYLOAD),format=L.FORMAT_RAW,"
        "filters=[{'id':L.FILTER_LZMA2,'dict_size':1<<31}]))",
        b"\0" * 16,
    )
    with pytest.raises(UnpackError, match="dictionary"):
        decode_script(wrapper)


def test_brotli_without_the_module(monkeypatch):
    needs_brotli("brotli")
    wrapper = wrap(SOURCE, "brotli", "b85")
    monkeypatch.setitem(sys.modules, "brotli", None)
    with pytest.raises(UnpackError) as err:
        decode_script(wrapper)
    assert str(err.value) == "brotli payload but the brotli module is not installed"


_REAL_BROTLI_DECOMPRESSOR = brotli.Decompressor if brotli else None


class _OldBrotliDecompressor:
    """brotli < 1.2: process() takes no output limit."""

    def __init__(self) -> None:
        self._inner = _REAL_BROTLI_DECOMPRESSOR()

    def process(self, data: bytes) -> bytes:
        return self._inner.process(data)

    def is_finished(self) -> bool:
        return self._inner.is_finished()


def test_old_brotli_api_still_limits_output(monkeypatch):
    needs_brotli("brotli")
    monkeypatch.setattr(brotli, "Decompressor", _OldBrotliDecompressor)
    assert decode_script(wrap(SOURCE, "brotli", "b64")).text == SOURCE
    comp = brotli.Compressor(quality=1)
    packed = b"".join(comp.process(bytes(1 << 20)) for _ in range(64)) + comp.finish()
    wrapper = (
        f"import brotli as C,base64 as E\nexec(C.decompress(E.b85decode({base64.b85encode(packed).decode()!r})))\n"
    )
    with pytest.raises(UnpackError, match="bomb"):
        decode_script(wrapper, max_bytes=1 << 20)
