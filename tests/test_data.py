"""pgolf.pipeline.data: shard format, offline synthetic dataset, official download.

Everything runs for real: SentencePiece trains on stdlib text, shards are real files, and
the downloader talks HTTP to a local server laid out like the Hugging Face repo.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
import urllib.parse
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from click.testing import CliRunner

from pgolf.pipeline.data import ShardError, read_header, read_shard, shard_name, shard_paths, write_shard
from pgolf.pipeline.data.commands import data as data_group
from pgolf.pipeline.data.fetch import (
    PUBLIC_REPO,
    PUBLIC_REVISION,
    FetchConfig,
    FetchError,
    HashMismatchError,
    NetworkError,
    NotFoundError,
    fetch,
    file_url,
)
from pgolf.pipeline.data.synth import SynthConfig, SynthError, collect_documents, split_documents, synth

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OFFICIAL_1024 = SHARED / "tokenizers" / "fineweb_1024_bpe.model"
MAX_CHARS = 300_000


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _official_tokenizer() -> Path:
    if not OFFICIAL_1024.is_file():
        pytest.skip(f"official tokenizer not available: {OFFICIAL_1024} is absent (no /work/shared beside the repo)")
    return OFFICIAL_1024


# ---------------------------------------------------------------- shards


def test_shard_round_trip_keeps_header_and_tokens(tmp_path: Path) -> None:
    tokens = np.random.default_rng(0).integers(0, 65536, size=5000).astype(np.uint16)
    tokens[0], tokens[-1] = 0, 65535
    path = tmp_path / shard_name("train", 7)
    write_shard(path, tokens)
    assert path.name == "fineweb_train_000007.bin"
    assert path.stat().st_size == 1024 + 2 * tokens.size
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[:3].tolist() == [20240520, 1, tokens.size] and not header[3:].any()
    assert np.array_equal(read_shard(path), tokens)
    assert np.array_equal(read_shard(path, mmap=True), tokens)
    assert read_header(path) == tokens.size
    write_shard(tmp_path / "empty.bin", np.array([], dtype=np.int64))
    assert read_shard(tmp_path / "empty.bin").size == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "tokens, message",
    [
        (np.array([1, 65536]), "0..65535"),
        (np.array([-1, 2]), "0..65535"),
        (np.zeros((2, 2), dtype=np.int32), "1-D"),
        (np.array([1.5, 2.0]), "integers"),
    ],
)
def test_write_shard_rejects_unstorable_tokens(tmp_path: Path, tokens: np.ndarray, message: str) -> None:
    with pytest.raises(ShardError, match=message):
        write_shard(tmp_path / "x.bin", tokens)
    assert not (tmp_path / "x.bin").exists()


def _corrupt(path: Path, case: str) -> None:
    raw = bytearray(path.read_bytes())
    if case == "magic":
        raw[0:4] = (20240521).to_bytes(4, "little")
    elif case == "version":
        raw[4:8] = (2).to_bytes(4, "little")
    elif case == "count":
        raw[8:12] = (11).to_bytes(4, "little")
    elif case == "truncated-body":
        raw = raw[:-2]
    elif case == "truncated-header":
        raw = raw[:100]
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "case, message",
    [
        ("magic", "bad magic 20240521"),
        ("version", "unsupported version 2"),
        ("count", "header token count 11"),
        ("truncated-body", "size 1042 bytes"),
        ("truncated-header", "truncated header"),
    ],
)
def test_read_shard_rejects_corrupt_files_naming_them(tmp_path: Path, case: str, message: str) -> None:
    path = tmp_path / "fineweb_val_000000.bin"
    write_shard(path, np.arange(10))
    _corrupt(path, case)
    with pytest.raises(ShardError, match=message) as info:
        read_shard(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ShardError, match="cannot read shard"):
        read_shard(tmp_path / "missing.bin")


def test_shard_paths_sorts_and_ignores_non_shards(tmp_path: Path) -> None:
    for name in [
        "fineweb_train_000010.bin",
        "fineweb_train_000002.bin",
        "fineweb_val_000000.bin",
        "fineweb_val_bytes_000000.bin",
        ".fineweb_train_000003.bin.1.ab.tmp",
        "fineweb_train_3.bin",
    ]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in shard_paths(tmp_path)] == ["fineweb_train_000002.bin", "fineweb_train_000010.bin"]
    assert [p.name for p in shard_paths(tmp_path, kind="val")] == ["fineweb_val_000000.bin"]
    assert len(shard_paths(str(tmp_path / "fineweb_*_0000*.bin"), kind="train")) == 2
    assert shard_paths(tmp_path / "no-such-dir") == []
    with pytest.raises(ShardError):
        shard_paths(tmp_path, kind="test")


# ---------------------------------------------------------------- synth


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthConfig, dict]:
    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(out=out, vocab_size=1024, val_fraction=0.1, train_shards=2, seed=7, max_chars=MAX_CHARS)
    result = synth(config)
    assert not result.skipped
    return config, result.manifest


def _documents_of(path: Path) -> list[np.ndarray]:
    tokens = read_shard(path)
    starts = np.flatnonzero(tokens == 1)
    assert starts.size and starts[0] == 0, f"{path.name} does not start with BOS"
    return np.split(tokens, starts[1:])


@pytest.mark.slow
def test_synth_layout_bos_and_exact_documents(built: tuple[SynthConfig, dict]) -> None:
    config, manifest = built
    folder = config.out / "datasets" / "synth_sp1024"
    assert manifest["dataset"] == "datasets/synth_sp1024"
    assert [p.name for p in shard_paths(folder)] == ["fineweb_train_000000.bin", "fineweb_train_000001.bin"]
    assert [p.name for p in shard_paths(folder, "val")] == ["fineweb_val_000000.bin"]
    processor = spm.SentencePieceProcessor(model_file=str(config.out / "tokenizers" / "synth_1024_bpe.model"))
    texts: dict[str, list[str]] = {"train": [], "val": []}
    for kind in texts:
        for path in shard_paths(folder, kind):
            docs = _documents_of(path)
            assert len(docs) == manifest["files"][f"datasets/synth_sp1024/{path.name}"]["docs"]
            texts[kind] += [processor.decode(doc[1:].tolist()) for doc in docs]
    # The shards hold exactly the documents of the seeded split, each once, in order.
    corpus = collect_documents(MAX_CHARS)
    train, val = split_documents(corpus.docs, config.seed, None, config.val_fraction)
    assert texts["train"] == train and texts["val"] == val
    assert not set(texts["train"]) & set(texts["val"])
    assert len(val) == round(0.1 * len(corpus.docs)) and manifest["splits"]["val"]["docs"] == len(val)
    assert manifest["splits"]["val"]["utf8_bytes"] == sum(len(t.encode()) for t in val)
    assert manifest["splits"]["val"]["roundtrip_exact"] and manifest["splits"]["train"]["unk_tokens"] == 0
    assert {s["name"] for s in manifest["sources"] if s["docs"] > 0} == {
        "python-language-reference",
        "stdlib-docstrings",
    }


def test_synth_tokenizer_special_ids_and_byte_fallback(built: tuple[SynthConfig, dict]) -> None:
    config, manifest = built
    processor = spm.SentencePieceProcessor(model_file=str(config.out / "tokenizers" / "synth_1024_bpe.model"))
    assert processor.get_piece_size() == 1024
    assert (processor.pad_id(), processor.bos_id(), processor.eos_id(), processor.unk_id()) == (0, 1, 2, 3)
    assert [processor.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert sum(processor.is_byte(i) for i in range(1024)) == 256
    snowman = processor.encode("☃", out_type=str)
    assert snowman == ["<0xE2>", "<0x98>", "<0x83>"]
    text = "  two spaces, digits 2024 and ünïcode ☃\n"
    assert processor.decode(processor.encode(text)) == text
    assert processor.encode("▁x 12", out_type=str)[-2:] == ["1", "2"]  # split_digits
    assert not processor.encode("hello", out_type=str)[0].startswith("▁")  # no dummy prefix
    assert manifest["tokenizer"]["byte_fallback"] and manifest["tokenizer"]["trained"]
    # spm_train's format: piece<TAB>score<NL>, pieces raw (so a ".\n" piece spans two lines).
    vocab = (config.out / "tokenizers" / "synth_1024_bpe.vocab").read_text(encoding="utf-8")
    assert vocab.startswith("<pad>\t0\n<s>\t0\n</s>\t0\n<unk>\t0\n<0x00>\t0\n")
    assert vocab.count("\t") >= 1024 and f"\n{processor.id_to_piece(1023)}\t" in vocab


def test_synth_manifest_hashes_and_counts(built: tuple[SynthConfig, dict]) -> None:
    config, manifest = built
    on_disk = json.loads((config.out / "manifest.json").read_text())
    assert on_disk == manifest
    assert len(manifest["files"]) == 5
    for rel, entry in manifest["files"].items():
        path = config.out / rel
        assert _sha(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
        if rel.endswith(".bin"):
            assert read_shard(path).size == entry["tokens"]
    train_tokens = sum(e["tokens"] for r, e in manifest["files"].items() if "_train_" in r)
    assert train_tokens == manifest["splits"]["train"]["tokens"]
    assert manifest["params"]["seed"] == 7 and manifest["params"]["max_chars"] == MAX_CHARS


@pytest.mark.slow
def test_synth_is_idempotent_and_deterministic(built: tuple[SynthConfig, dict], tmp_path: Path) -> None:
    config, manifest = built
    shard = config.out / "datasets" / "synth_sp1024" / "fineweb_val_000000.bin"
    before = shard.stat().st_mtime_ns
    again = synth(config)
    assert again.skipped and shard.stat().st_mtime_ns == before
    # A build elsewhere with the same options gives the same bytes, tokenizer model included.
    other = synth(replace(config, out=tmp_path / "other"))
    assert not other.skipped
    assert {r: e["sha256"] for r, e in other.manifest["files"].items()} == {
        r: e["sha256"] for r, e in manifest["files"].items()
    }
    # A damaged file is noticed and rebuilt; fewer shards leave no stale shard behind.
    _corrupt(tmp_path / "other" / "datasets" / "synth_sp1024" / "fineweb_val_000000.bin", "magic")
    assert not synth(replace(config, out=tmp_path / "other")).skipped
    one = synth(replace(config, out=tmp_path / "other", train_shards=1))
    assert not one.skipped
    assert len(shard_paths(tmp_path / "other" / "datasets" / "synth_sp1024")) == 1


@pytest.mark.shared
def test_synth_with_official_tokenizer(tmp_path: Path) -> None:
    model = _official_tokenizer()
    result = synth(SynthConfig(out=tmp_path, tokenizer=model, val_docs=5, train_shards=1, max_chars=60_000))
    manifest = result.manifest
    assert manifest["tokenizer"] == {
        "model": "tokenizers/fineweb_1024_bpe.model",
        "vocab_size": 1024,
        "trained": False,
        "source": str(model),
        "byte_fallback": False,
    }
    assert _sha(tmp_path / "tokenizers" / "fineweb_1024_bpe.model") == _sha(model)
    val = read_shard(tmp_path / "datasets" / "synth_sp1024" / "fineweb_val_000000.bin")
    assert int(val.max()) < 1024 and np.count_nonzero(val == 1) == 5 and val[0] == 1
    assert manifest["params"]["tokenizer_sha256"] == _sha(model)


def test_synth_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="cannot hold out"):
        synth(SynthConfig(out=tmp_path, val_docs=10**6, max_chars=20_000))
    with pytest.raises(SynthError, match="too small for vocab size 8000"):
        synth(SynthConfig(out=tmp_path, vocab_size=8000, max_chars=20_000))
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a model")
    with pytest.raises(SynthError, match="not a SentencePiece model"):
        synth(SynthConfig(out=tmp_path, tokenizer=garbage, max_chars=20_000))
    runner = CliRunner()
    result = runner.invoke(
        data_group, ["synth", "--out", str(tmp_path), "--val-docs", "1000000", "--max-chars", "20000"]
    )
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and errors[0].startswith("Error: cannot hold out")
    assert result.output.rstrip().endswith(errors[0]) and "Traceback" not in result.output


def test_synth_cli_builds_then_reports_up_to_date(tmp_path: Path) -> None:
    args = ["synth", "--out", str(tmp_path), "--vocab-size", "512", "--max-chars", "80000", "--train-shards", "3"]
    first = CliRunner().invoke(data_group, args)
    assert first.exit_code == 0, first.output
    assert "wrote" in first.output and "3 shard(s)" in first.output
    second = CliRunner().invoke(data_group, args)
    assert second.exit_code == 0 and "up to date" in second.output
    both = CliRunner().invoke(data_group, [*args, "--val-docs", "3", "--val-fraction", "0.2"])
    assert both.exit_code == 2 and "not both" in both.output


# ---------------------------------------------------------------- fetch against a local hub


class _Hub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: set[str] = set()  # paths whose first answer stops half-way


class _HubHandler(BaseHTTPRequestHandler):
    server: _Hub

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        rel = urllib.parse.unquote(self.path.lstrip("/"))
        rng = self.headers.get("Range")
        self.server.requests.append((rel, rng))
        file = self.server.root / rel
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
        if start >= len(body) and rng:
            self.send_error(416)
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if rel in self.server.cut_once:
            self.server.cut_once.discard(rel)
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            return
        self.wfile.write(body[start:])

    def log_message(self, *_args: object) -> None:
        return None


REMOTE_PREFIX = f"datasets/{PUBLIC_REPO}/resolve/{PUBLIC_REVISION}"
VAL = "datasets/datasets/fineweb10B_sp1024/fineweb_val_000000.bin"
TRAIN = "datasets/datasets/fineweb10B_sp1024/fineweb_train_{:06d}.bin"
MODEL = "datasets/tokenizers/fineweb_1024_bpe.model"


@pytest.fixture
def hub(tmp_path: Path):
    """A local server laid out like huggingface.co/datasets/<repo>/resolve/<rev>/..., 3 train shards."""
    root = tmp_path / "hub"
    repo = root / REMOTE_PREFIX
    model = _official_tokenizer()
    rng = np.random.default_rng(1)
    write_shard(repo / VAL, rng.integers(0, 1024, 70_000))
    for i in range(3):
        write_shard(repo / TRAIN.format(i), rng.integers(0, 1024, 50_000 + i))
    (repo / MODEL).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, repo / MODEL)
    (repo / MODEL).with_suffix(".vocab").write_text("<pad>\t0\n<s>\t0\n", encoding="utf-8")
    manifest = {
        "datasets": [
            {"name": "fineweb10B_sp1024", "tokenizer_name": "sp_bpe_1024", "stats": {"files_train": 4, "files_val": 1}}
        ],  # one more than served: the 404 case
        "tokenizers": [
            {
                "name": "sp_bpe_1024",
                "model_path": "tokenizers/fineweb_1024_bpe.model",
                "vocab_path": "tokenizers/fineweb_1024_bpe.vocab",
            }
        ],
    }
    (repo / "datasets" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    server = _Hub(root)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.repo = repo  # type: ignore[attr-defined]
    server.endpoint = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def _config(hub: _Hub, out: Path, **overrides: object) -> FetchConfig:
    base = {"out": out, "train_shards": 2, "endpoint": hub.endpoint, "retries": 2, "backoff_s": 0.0, "timeout_s": 10.0}
    return FetchConfig(**{**base, **overrides})


@pytest.mark.shared
def test_fetch_downloads_verifies_and_skips_present(hub: _Hub, tmp_path: Path) -> None:
    out = tmp_path / "data"
    report = fetch(_config(hub, out))
    assert [f.remote for f in report.files] == [
        "datasets/manifest.json",
        VAL,
        TRAIN.format(0),
        TRAIN.format(1),
        MODEL,
        MODEL.replace(".model", ".vocab"),
    ]
    assert {f.action for f in report.files} == {"downloaded"} and all(f.trusted for f in report.files)
    assert (report.repo, report.revision) == (PUBLIC_REPO, PUBLIC_REVISION)
    assert hub.requests[0] == (f"{REMOTE_PREFIX}/datasets/manifest.json", None)
    for f in report.files:
        assert f.local.read_bytes() == (hub.repo / f.remote).read_bytes()
    assert (out / "datasets" / "fineweb10B_sp1024" / "fineweb_train_000001.bin").is_file()
    assert read_shard(out / "datasets" / "fineweb10B_sp1024" / "fineweb_val_000000.bin").size == 70_000
    assert not list(out.rglob("*.part"))
    lock = json.loads((out / "pgolf-fetch-lock.json").read_text())
    entries = lock["sources"][f"{PUBLIC_REPO}@{PUBLIC_REVISION}"]["files"]
    assert entries[VAL] == {"sha256": _sha(hub.repo / VAL), "size": (hub.repo / VAL).stat().st_size}
    hub.requests.clear()
    again = fetch(_config(hub, out))
    assert {f.action for f in again.files} == {"present"} and not any(f.trusted for f in again.files)
    assert hub.requests == []


@pytest.mark.shared
def test_fetch_resumes_an_interrupted_download(hub: _Hub, tmp_path: Path) -> None:
    hub.cut_once.add(f"{REMOTE_PREFIX}/{TRAIN.format(0)}")
    report = fetch(_config(hub, tmp_path / "data", train_shards=1))
    result = next(f for f in report.files if f.remote == TRAIN.format(0))
    assert result.action == "resumed"
    assert result.local.read_bytes() == (hub.repo / TRAIN.format(0)).read_bytes()
    ranges = [rng for rel, rng in hub.requests if rel.endswith(TRAIN.format(0))]
    size = (hub.repo / TRAIN.format(0)).stat().st_size
    assert ranges == [None, f"bytes={size // 2}-"]


@pytest.mark.shared
def test_fetch_resumes_a_partial_file_left_by_an_earlier_run(hub: _Hub, tmp_path: Path) -> None:
    out = tmp_path / "data"
    part = out / "datasets" / "fineweb10B_sp1024" / "fineweb_val_000000.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes((hub.repo / VAL).read_bytes()[:4096])
    report = fetch(_config(hub, out, train_shards=0))
    assert next(f for f in report.files if f.remote == VAL).action == "resumed"
    assert (f"{REMOTE_PREFIX}/{VAL}", "bytes=4096-") in hub.requests
    assert _sha(out / "datasets" / "fineweb10B_sp1024" / "fineweb_val_000000.bin") == _sha(hub.repo / VAL)


@pytest.mark.shared
def test_fetch_hash_mismatch_names_the_file(hub: _Hub, tmp_path: Path) -> None:
    hashes = tmp_path / "hashes.json"
    hashes.write_text(json.dumps({"files": {VAL: {"sha256": "0" * 64, "size": (hub.repo / VAL).stat().st_size}}}))
    out = tmp_path / "data"
    with pytest.raises(HashMismatchError, match=re.escape(VAL) + ".*expected 0{64}.*hash manifest") as info:
        fetch(_config(hub, out, hashes=hashes))
    assert "\n" not in str(info.value)
    assert not (out / "datasets" / "fineweb10B_sp1024" / "fineweb_val_000000.bin").exists()
    assert not list(out.rglob("*.part"))


@pytest.mark.shared
def test_fetch_lock_catches_a_changed_remote_file(hub: _Hub, tmp_path: Path) -> None:
    out = tmp_path / "data"
    fetch(_config(hub, out, train_shards=1))
    write_shard(hub.repo / TRAIN.format(0), np.arange(50_000) % 1024)  # same size, other bytes
    (out / "datasets" / "fineweb10B_sp1024" / "fineweb_train_000000.bin").unlink()
    with pytest.raises(HashMismatchError, match="fineweb_train_000000.bin.*recorded on first download"):
        fetch(_config(hub, out, train_shards=1))


@pytest.mark.shared
def test_fetch_404_and_bad_requests(hub: _Hub, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"fineweb_train_000003\.bin: not found \(HTTP 404\)"):
        fetch(_config(hub, tmp_path / "a", train_shards=4))
    with pytest.raises(FetchError, match="has only 4 train shards, 5 requested"):
        fetch(_config(hub, tmp_path / "b", train_shards=5))
    with pytest.raises(FetchError, match="no expected sha256.*strict"):
        fetch(_config(hub, tmp_path / "c", strict=True))
    with pytest.raises(NotFoundError, match="manifest.json"):
        fetch(_config(hub, tmp_path / "d", revision="0" * 40))


def test_fetch_unreachable_endpoint_is_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before use: nothing listens there
    config = FetchConfig(out=tmp_path, endpoint=f"http://127.0.0.1:{port}", retries=1, backoff_s=0.0, timeout_s=5.0)
    with pytest.raises(NetworkError, match=rf"cannot reach http://127.0.0.1:{port}.*gave up after 2 attempts"):
        fetch(config)


@pytest.mark.shared
def test_fetch_from_file_url_and_env_endpoint(hub: _Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGOLF_HF_ENDPOINT", (tmp_path / "hub").as_uri())
    report = fetch(_config(hub, tmp_path / "data", endpoint=None, train_shards=1))
    assert report.endpoint.startswith("file://") and len(report.files) == 5
    assert _sha(tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model") == _sha(OFFICIAL_1024)
    assert file_url("https://huggingface.co", PUBLIC_REPO, "main", VAL) == (
        f"https://huggingface.co/datasets/{PUBLIC_REPO}/resolve/main/{VAL}"
    )


@pytest.mark.shared
def test_fetch_cli_summary_and_one_line_errors(hub: _Hub, tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "fetch",
        "--out",
        str(tmp_path / "data"),
        "--endpoint",
        hub.endpoint,
        "--train-shards",
        "1",
        "--retries",
        "0",
    ]
    ok = runner.invoke(data_group, args)
    assert ok.exit_code == 0, ok.output
    assert "sp1024: 5 files (5 downloaded, 0 resumed, 0 already present)" in ok.output
    bad = runner.invoke(data_group, [*args[:-4], "--train-shards", "4", "--retries", "0"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert (
        bad.output.strip()
        .splitlines()[-1]
        .startswith("Error: datasets/datasets/fineweb10B_sp1024/fineweb_train_000003")
    )
