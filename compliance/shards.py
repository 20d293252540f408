"""The official token shard format (RULES.md section 6).

A shard is a 256-int32 little-endian header (magic 20240520, version 1, token count,
then zeros) followed by the tokens as little-endian uint16, so its size is always
1024 + 2 * count bytes. The training scripts check exactly these three facts, so a
shard we write must pass them and a shard we read is rejected on the same grounds.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np

from .fsutil import atomic_write

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKEN = np.iinfo(np.uint16).max
KINDS = ("train", "val")
_NAME_RE = {kind: re.compile(rf"^fineweb_{kind}_(\d{{6}})\.bin$") for kind in KINDS}


class ShardError(ValueError):
    """A shard file is missing, malformed, or the tokens cannot be stored."""


def shard_name(kind: str, index: int) -> str:
    """`fineweb_train_000003.bin` style name for shard `index` of `kind`."""
    _check_kind(kind)
    if not 0 <= index <= 999_999:
        raise ShardError(f"shard index {index} out of range 0..999999")
    return f"fineweb_{kind}_{index:06d}.bin"


def write_shard(path: str | os.PathLike[str], tokens: np.ndarray) -> None:
    """Write `tokens` as one shard; atomic, so a reader never sees half a file."""
    path = Path(path)
    array = _as_token_array(tokens, path)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (MAGIC, VERSION, array.size)
    atomic_write(path, (header.tobytes(), array.astype("<u2", copy=False).tobytes()))


def read_header(path: str | os.PathLike[str]) -> int:
    """Validate a shard's header and size; return its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            raw = handle.read(HEADER_BYTES)
    except OSError as exc:
        raise ShardError(f"{path}: cannot read shard ({exc.strerror or exc})") from None
    if len(raw) < HEADER_BYTES:
        raise ShardError(f"{path}: truncated header ({size} bytes, need {HEADER_BYTES})")
    magic, version, count = (int(x) for x in np.frombuffer(raw, dtype="<i4", count=3))
    if magic != MAGIC:
        raise ShardError(f"{path}: bad magic {magic} (expected {MAGIC})")
    if version != VERSION:
        raise ShardError(f"{path}: unsupported version {version} (expected {VERSION})")
    expected = HEADER_BYTES + 2 * count
    if count < 0 or size != expected:
        raise ShardError(f"{path}: size {size} bytes does not match header token count {count} (expected {expected})")
    return count


def read_shard(path: str | os.PathLike[str], *, mmap: bool = False) -> np.ndarray:
    """Tokens of a validated shard as uint16; `mmap=True` avoids loading 200 MB shards."""
    count = read_header(path)
    if mmap:
        if count == 0:
            return np.zeros(0, dtype=np.uint16)
        return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,))
    tokens = np.fromfile(path, dtype="<u2", count=count, offset=HEADER_BYTES)
    return tokens.astype(np.uint16, copy=False)


def shard_paths(dir_or_glob: str | os.PathLike[str], kind: str = "train") -> list[Path]:
    """Shards of `kind` in a directory (or matching a glob), in index order.

    Only official names count, so side files such as CaseOps byte sidecars
    (`fineweb_val_bytes_000000.bin`) or `.tmp` leftovers are never mistaken for shards.
    """
    _check_kind(kind)
    text = os.fspath(dir_or_glob)
    if any(ch in text for ch in "*?["):
        candidates = [Path(p) for p in glob.glob(text)]
    else:
        folder = Path(text)
        candidates = list(folder.iterdir()) if folder.is_dir() else []
    pattern = _NAME_RE[kind]
    found = [p for p in candidates if pattern.match(p.name) and p.is_file()]
    return sorted(found, key=lambda p: (p.name, str(p)))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ShardError(f"shard kind must be one of {KINDS}, got {kind!r}")


def _as_token_array(tokens: np.ndarray, path: Path) -> np.ndarray:
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ShardError(f"{path}: tokens must be 1-D, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ShardError(f"{path}: tokens must be integers, got {array.dtype}")
    if array.size >= 2**31:
        raise ShardError(f"{path}: {array.size} tokens do not fit an int32 header")
    if array.size and (int(array.min()) < 0 or int(array.max()) > MAX_TOKEN):
        raise ShardError(f"{path}: token ids must lie in 0..{MAX_TOKEN}")
    return array
