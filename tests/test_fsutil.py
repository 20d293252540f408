"""compliance/fsutil.py: whole-or-nothing writes and file digests, shared by the pipeline and the checker."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgolf.compliance import fsutil


def test_a_write_lands_whole_with_the_umask_mode_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "folder" / "submission.json"
    old = os.umask(0o027)
    try:
        fsutil.atomic_write_json(target, {"val_bpb": 1.2, "seeds": [1, 2]})
    finally:
        os.umask(old)
    assert json.loads(target.read_text(encoding="utf-8")) == {"val_bpb": 1.2, "seeds": [1, 2]}
    assert target.read_text(encoding="utf-8").endswith("\n")
    assert target.stat().st_mode & 0o777 == 0o640  # what open() gives, not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["submission.json"]


def test_a_write_that_fails_half_way_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "README.md"
    fsutil.atomic_write_text(target, "old\n")

    def chunks() -> Iterator[bytes]:
        yield b"new, but "
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fsutil.atomic_write(target, chunks())
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_a_write_replaces_the_file_and_keeps_every_chunk(tmp_path: Path) -> None:
    target = tmp_path / "shard.bin"
    fsutil.atomic_write(target, [b"a" * 10])
    fsutil.atomic_write(target, (bytes([i]) * 1000 for i in range(5)))
    assert target.read_bytes() == b"".join(bytes([i]) * 1000 for i in range(5))


def test_sha256_file_reads_past_one_block(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert fsutil.sha256_file(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert fsutil.sha256_file(empty) == hashlib.sha256(b"").hexdigest()
