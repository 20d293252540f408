"""`pgolf data synth`: a small offline dataset in the official shard layout.

The text is English that every Python installation carries: the language reference in
`pydoc_data/topics.py` and the docstrings of the standard library, read from source
with `ast` so no module is imported (imports of arbitrary stdlib modules have side
effects: `antigravity` opens a browser, `this` prints). Documents are shuffled with a
seed and split into train/val by document; the tokenizer is trained on the train
documents only, because a tokenizer fitted on validation text is itself a leak
(RULES.md R-NO-VAL-IN-TRAIN).
"""

from __future__ import annotations

import ast
import io
import json
import os
import random
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import numpy as np
import sentencepiece as spm

from ...compliance.fsutil import atomic_write, atomic_write_json, atomic_write_text, sha256_file
from ...compliance.shards import shard_name, shard_paths, write_shard

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "pgolf-synth-manifest/1"
BOS_ID = 1
MIN_DOCSTRING_CHARS = 40  # shorter docstrings are mostly "Return x." fragments
TOPIC_DOC_CHARS = 2000  # topics are split into documents of about this size
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})

# The official trainer's settings as recovered from the trainer_spec stored in
# /work/shared/tokenizers/fineweb_*_bpe.model: BPE, coverage 0.999, split_digits,
# no dummy prefix, pad/bos/eos/unk = 0/1/2/3, soft vocab limit. Two deliberate
# differences: the official models use the nmt_nfkc normalizer (and the 1024 one has
# no byte fallback); here normalization is identity with byte fallback and no
# whitespace folding, so every document decodes back to its exact bytes and the
# bits-per-byte byte count equals the text's UTF-8 length.
TRAINER_SETTINGS: dict[str, object] = {
    "model_type": "bpe",
    "character_coverage": 0.999,
    "byte_fallback": True,
    "add_dummy_prefix": False,
    "split_digits": True,
    "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False,
    "pad_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "unk_id": 3,
    "hard_vocab_limit": False,
    # Determinism: one thread, input order kept, whole documents as sentences.
    "num_threads": 1,
    "shuffle_input_sentence": False,
    "input_sentence_size": 0,
    "max_sentence_length": 1 << 20,
    "minloglevel": 2,
}


class SynthError(Exception):
    """The synthetic dataset cannot be built; the message is one line."""


@dataclass(frozen=True)
class SynthConfig:
    out: Path = Path("data/synth")
    vocab_size: int = 1024
    val_docs: int | None = None  # wins over val_fraction when set
    val_fraction: float = 0.1
    train_shards: int = 2
    seed: int = 1337
    max_chars: int | None = None  # None: every document the sources offer
    tokenizer: Path | None = None  # an existing .model: skip training


@dataclass
class SourceInfo:
    name: str
    path: str
    docs: int = 0
    chars: int = 0
    files: int = 0


@dataclass
class Corpus:
    docs: list[str]
    sources: list[SourceInfo] = field(default_factory=list)


@dataclass
class SynthResult:
    out: Path
    manifest: dict
    skipped: bool
    seconds: float


# ---------------------------------------------------------------- text sources


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def topic_documents(path: Path) -> Iterator[str]:
    """Language-reference topics, cut at paragraph breaks into ~2 kB documents."""
    topics = _literal_assignment(path, "topics")
    if not isinstance(topics, dict):
        return
    for key in sorted(topics):
        text = topics[key]
        if isinstance(text, str):
            yield from _paragraph_chunks(text, TOPIC_DOC_CHARS)


def docstring_documents(root: Path, info: SourceInfo) -> Iterator[str]:
    """Module, class and function docstrings of every stdlib source file under `root`."""
    for path in _stdlib_sources(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        info.files += 1
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc and len(doc) >= MIN_DOCSTRING_CHARS:
                    yield doc


def collect_documents(max_chars: int | None = None, root: Path | None = None) -> Corpus:
    """Unique documents from both sources, alternating so a small `max_chars` still mixes them."""
    root = root or stdlib_dir()
    topics_path = root / "pydoc_data" / "topics.py"
    topic_info = SourceInfo("python-language-reference", str(topics_path), files=1)
    doc_info = SourceInfo("stdlib-docstrings", str(root))
    streams = [(topic_documents(topics_path), topic_info), (docstring_documents(root, doc_info), doc_info)]
    corpus = Corpus(docs=[], sources=[topic_info, doc_info])
    seen: set[str] = set()
    total = 0
    while streams and (max_chars is None or total < max_chars):
        stream, info = streams.pop(0)
        text = next(stream, None)
        if text is None:
            continue
        streams.append((stream, info))
        text = text.strip()
        if not text or text in seen:
            continue  # exact duplicates would put one text in both splits
        seen.add(text)
        corpus.docs.append(text)
        info.docs += 1
        info.chars += len(text)
        total += len(text)
    return corpus


def _literal_assignment(path: Path, name: str) -> object:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def _paragraph_chunks(text: str, limit: int) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for para in text.split("\n\n"):
        if chunk and size + len(para) > limit:
            yield "\n\n".join(chunk)
            chunk, size = [], 0
        chunk.append(para)
        size += len(para) + 2
    if chunk:
        yield "\n\n".join(chunk)


def _stdlib_sources(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


# ---------------------------------------------------------------- split, tokenizer, shards


def split_documents(
    docs: Sequence[str], seed: int, val_docs: int | None, val_fraction: float
) -> tuple[list[str], list[str]]:
    """Shuffle with `seed`; the first documents become validation (as the official first-50k split)."""
    count = val_docs if val_docs is not None else max(1, round(len(docs) * val_fraction))
    if count < 1 or count >= len(docs):
        raise SynthError(
            f"cannot hold out {count} validation documents from {len(docs)} (need at least one train document)"
        )
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    shuffled = [docs[i] for i in order]
    return shuffled[count:], shuffled[:count]


def train_tokenizer(docs: Sequence[str], vocab_size: int, seed: int) -> bytes:
    """Serialized SentencePiece BPE model trained on `docs` in memory."""
    spm.set_random_generator_seed(seed)
    buffer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(docs), model_writer=buffer, vocab_size=vocab_size, **TRAINER_SETTINGS
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise SynthError(f"sentencepiece training failed: {_first_line(exc)}") from None
    model = buffer.getvalue()
    pieces = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    if pieces != vocab_size:
        raise SynthError(
            f"text too small for vocab size {vocab_size}: tokenizer has {pieces} pieces (raise --max-chars)"
        )
    return model


def vocab_text(processor: spm.SentencePieceProcessor) -> str:
    """The `.vocab` companion file: piece<TAB>score per line, as spm_train writes it."""
    lines = (f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}" for i in range(processor.get_piece_size()))
    return "\n".join(lines) + "\n"


def encode_documents(processor: spm.SentencePieceProcessor, docs: Sequence[str]) -> list[np.ndarray]:
    """Token ids per document, each led by BOS as in the official shards."""
    encoded = processor.encode(list(docs), out_type=int)
    return [np.asarray([BOS_ID, *ids], dtype=np.uint16) for ids in encoded]


def shard_groups(lengths: Sequence[int], parts: int) -> list[tuple[int, int]]:
    """Cut documents into `parts` contiguous, non-empty runs of roughly equal token count."""
    if parts < 1 or parts > len(lengths):
        raise SynthError(f"cannot make {parts} train shards from {len(lengths)} train documents")
    cumulative = np.cumsum(lengths)
    cuts = [0]
    for k in range(1, parts):
        cut = int(np.searchsorted(cumulative, cumulative[-1] * k / parts)) + 1
        cut = min(max(cut, cuts[-1] + 1), len(lengths) - (parts - k))
        cuts.append(cut)
    cuts.append(len(lengths))
    return list(pairwise(cuts))


# ---------------------------------------------------------------- manifest and idempotence


def load_manifest(out: Path) -> dict | None:
    try:
        data = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


def manifest_is_current(out: Path, manifest: dict | None, params: dict) -> bool:
    """True when the manifest was written for `params` and every file still has its hash."""
    if not manifest or manifest.get("params") != params:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for rel, entry in files.items():
        path = out / rel
        if not path.is_file() or not isinstance(entry, dict) or sha256_file(path) != entry.get("sha256"):
            return False
    return True


def synth_params(config: SynthConfig) -> dict:
    """Everything that decides the output bytes; a change in any of them forces a rebuild."""
    params: dict[str, object] = {
        "vocab_size": config.vocab_size,
        "val_docs": config.val_docs,
        "val_fraction": None if config.val_docs is not None else config.val_fraction,
        "train_shards": config.train_shards,
        "seed": config.seed,
        "max_chars": config.max_chars,
        "tokenizer_sha256": None,
        "trainer_settings": None,
        # The text comes from this interpreter's stdlib; the model bytes from this sentencepiece.
        "python": sys.version.split()[0],
        "sentencepiece": _version("sentencepiece"),
    }
    if config.tokenizer is not None:
        params["tokenizer_sha256"] = sha256_file(config.tokenizer)
        params["vocab_size"] = None  # taken from the model
    else:
        params["trainer_settings"] = dict(TRAINER_SETTINGS)
    return params


# ---------------------------------------------------------------- the command's work


def synth(config: SynthConfig, log: Callable[[str], None] = lambda _msg: None) -> SynthResult:
    """Build (or confirm) the dataset described by `config` under `config.out`."""
    start = time.monotonic()
    _check_config(config)
    out = Path(config.out)
    params = synth_params(config)
    previous = load_manifest(out)
    if manifest_is_current(out, previous, params):
        return SynthResult(out, previous or {}, skipped=True, seconds=time.monotonic() - start)

    log("collecting documents from the Python standard library")
    corpus = collect_documents(config.max_chars)
    train_docs, val_docs = split_documents(corpus.docs, config.seed, config.val_docs, config.val_fraction)
    log(f"{len(corpus.docs)} documents: {len(train_docs)} train, {len(val_docs)} val")
    model_rel, model_bytes, trained = _tokenizer_model(config, train_docs, log)
    processor = spm.SentencePieceProcessor(model_proto=model_bytes)
    vocab = processor.get_piece_size()
    if vocab > 65536:
        raise SynthError(f"vocab size {vocab} does not fit uint16 shards")

    files: dict[str, dict] = {}
    atomic_write(out / model_rel, [model_bytes])
    atomic_write_text((out / model_rel).with_suffix(".vocab"), vocab_text(processor))
    dataset_rel = f"datasets/synth_sp{vocab}"
    log(f"tokenizing into {out / dataset_rel}")
    splits = {
        "train": _write_split(out, dataset_rel, "train", train_docs, processor, config.train_shards, files),
        "val": _write_split(out, dataset_rel, "val", val_docs, processor, 1, files),
    }
    _remove_stale_shards(out / dataset_rel, files)
    for rel in (model_rel, str(Path(model_rel).with_suffix(".vocab"))):
        path = out / rel
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}

    manifest = {
        "format": MANIFEST_FORMAT,
        "params": params,
        "tokenizer": {
            "model": model_rel,
            "vocab_size": vocab,
            "trained": trained,
            "source": None if trained else str(config.tokenizer),
            "byte_fallback": any(processor.is_byte(i) for i in range(vocab)),
        },
        "dataset": dataset_rel,
        "sources": [asdict(s) for s in corpus.sources],
        "splits": splits,
        "files": dict(sorted(files.items())),
    }
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return SynthResult(out, manifest, skipped=False, seconds=time.monotonic() - start)


def _check_config(config: SynthConfig) -> None:
    if config.tokenizer is None and not 260 < config.vocab_size <= 65536:
        raise SynthError(
            f"vocab size must be in 261..65536 (256 byte pieces + 4 specials need room), got {config.vocab_size}"
        )
    if config.val_docs is None and not 0.0 < config.val_fraction < 1.0:
        raise SynthError(f"val fraction must be strictly between 0 and 1, got {config.val_fraction}")
    if config.train_shards < 1:
        raise SynthError(f"train shards must be at least 1, got {config.train_shards}")
    if config.tokenizer is not None and not Path(config.tokenizer).is_file():
        raise SynthError(f"tokenizer model not found: {config.tokenizer}")


def _tokenizer_model(config: SynthConfig, train_docs: list[str], log: Callable[[str], None]) -> tuple[str, bytes, bool]:
    if config.tokenizer is not None:
        source = Path(config.tokenizer)
        model = source.read_bytes()
        try:
            spm.SentencePieceProcessor(model_proto=model)
        except (RuntimeError, OSError) as exc:
            raise SynthError(f"{source}: not a SentencePiece model ({_first_line(exc)})") from None
        return f"tokenizers/{source.name}", model, False
    log(f"training a {config.vocab_size}-piece SentencePiece BPE on {len(train_docs)} train documents")
    model = train_tokenizer(train_docs, config.vocab_size, config.seed)
    return f"tokenizers/synth_{config.vocab_size}_bpe.model", model, True


def _write_split(
    out: Path,
    dataset_rel: str,
    kind: str,
    docs: list[str],
    processor: spm.SentencePieceProcessor,
    shards: int,
    files: dict[str, dict],
) -> dict:
    encoded = encode_documents(processor, docs)
    lengths = [len(doc) for doc in encoded]
    for index, (lo, hi) in enumerate(shard_groups(lengths, shards)):
        rel = f"{dataset_rel}/{shard_name(kind, index)}"
        tokens = np.concatenate(encoded[lo:hi])
        write_shard(out / rel, tokens)
        files[rel] = {
            "sha256": sha256_file(out / rel),
            "bytes": (out / rel).stat().st_size,
            "tokens": int(tokens.size),
            "docs": hi - lo,
        }
    decoded = processor.decode([doc[1:].tolist() for doc in encoded])
    return {
        "docs": len(docs),
        "tokens": int(sum(lengths)),
        "utf8_bytes": sum(len(doc.encode("utf-8")) for doc in docs),
        "unk_tokens": int(sum(int(np.count_nonzero(doc == processor.unk_id())) for doc in encoded)),
        # Exact round trip means a byte-counting LUT can be checked against utf8_bytes.
        "roundtrip_exact": decoded == list(docs),
    }


def _remove_stale_shards(folder: Path, files: dict[str, dict]) -> None:
    """Drop shards of an earlier build (e.g. more train shards) that a glob would still pick up."""
    keep = {Path(rel).name for rel in files}
    for kind in ("train", "val"):
        for path in shard_paths(folder, kind):
            if path.name not in keep:
                path.unlink()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


__all__ = [
    "SynthConfig",
    "SynthError",
    "SynthResult",
    "TRAINER_SETTINGS",
    "collect_documents",
    "encode_documents",
    "shard_groups",
    "split_documents",
    "synth",
    "train_tokenizer",
]
