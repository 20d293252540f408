"""The canary validation set: documents of i.i.d. uniform tokens, and its exact likelihood.

The stream is BOS, then document after document: each a run of tokens drawn uniformly from
the K non-control ids below the vocabulary size, ended (with probability p_bos after every
token) by the BOS that starts the next one. A causal scorer cannot, on average, do better
than this generator's own negative log-likelihood of the tokens it scores; by Ville's
inequality the chance that it beats that bound by E nats is at most exp(-E). The bytes come
from os.urandom, so no submission can have seen this canary before the run.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..shards import shard_name, write_shard

if TYPE_CHECKING:
    import sentencepiece as spm

BOS_ID = 1
DEFAULT_SCORED_TOKENS = 16384  # 8 x 2048: whole sequences at the records' lengths
DEFAULT_MEAN_DOC_LEN = 512
CANARY_FILE = "canary.npy"


@dataclass(frozen=True)
class Canary:
    tokens: np.ndarray  # uint16 stream, tokens[0] is BOS; target positions are 1..len-1
    content_ids: np.ndarray  # the K ids a content token is drawn from
    p_bos: float
    seed: str  # hex of the os.urandom bytes the stream came from

    @property
    def k(self) -> int:
        return len(self.content_ids)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tokens.astype("<u2").tobytes()).hexdigest()

    def target_nll(self) -> np.ndarray:
        """The generator's -log p of every target, indexed by position (entry 0, the first BOS, is 0)."""
        tokens = self.tokens.astype(np.int64)
        nll = np.zeros(len(tokens))
        after_bos = tokens[:-1] == BOS_ID
        is_bos = tokens[1:] == BOS_ID
        nll[1:] = np.where(
            after_bos,
            math.log(self.k),
            np.where(is_bos, -math.log(self.p_bos), math.log(self.k) - math.log1p(-self.p_bos)),
        )
        return nll


def _processor(tokenizer: Path) -> spm.SentencePieceProcessor:
    import sentencepiece as spm

    try:
        return spm.SentencePieceProcessor(model_file=str(tokenizer))
    except (OSError, RuntimeError) as exc:
        raise InputError(tokenizer, f"not a SentencePiece model: {str(exc).splitlines()[0]}") from None


def piece_count(tokenizer: Path) -> int:
    return _processor(tokenizer).get_piece_size()


def content_ids(tokenizer: Path, vocab_size: int | None = None) -> np.ndarray:
    """Ids below the vocabulary size that are ordinary pieces (not control, unknown or unused)."""
    processor = _processor(tokenizer)
    size = min(vocab_size or processor.get_piece_size(), processor.get_piece_size())
    ids = [i for i in range(size) if not (processor.is_control(i) or processor.is_unknown(i) or processor.is_unused(i))]
    return np.array(ids, dtype=np.int64)


def mean_doc_len_for(scored_tokens: int) -> int:
    """Documents as long as keeps a smaller canary's document count the default one's. Scripts
    schedule evaluation by documents (phased TTT prefixes, per-document LoRA batches split over
    ranks) and the eval preset caps document counts against the default canary: a shrunk canary with
    long documents left a phased TTT 9 documents for 2 ranks and a 4-document prefix, and it hung."""
    return max(1, round(DEFAULT_MEAN_DOC_LEN * min(1.0, scored_tokens / DEFAULT_SCORED_TOKENS)))


def generate(
    ids: np.ndarray,
    scored_tokens: int = DEFAULT_SCORED_TOKENS,
    mean_doc_len: int = DEFAULT_MEAN_DOC_LEN,
    entropy: bytes | None = None,
) -> Canary:
    entropy = entropy if entropy is not None else os.urandom(32)
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(entropy, "little")))
    p_bos = 1.0 / mean_doc_len
    tokens = ids[rng.integers(0, len(ids), size=scored_tokens + 1)]
    ends = rng.random(scored_tokens + 1) < p_bos
    ends[0] = True  # the stream opens a document
    for i in np.flatnonzero(ends):
        if i == 0 or tokens[i - 1] != BOS_ID:  # a document holds at least one token
            tokens[i] = BOS_ID
    return Canary(tokens.astype(np.uint16), ids, p_bos, entropy.hex())


def write(canary: Canary, folder: Path) -> Path:
    """The validation shard a script reads, plus the stream itself for the tracer."""
    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / shard_name("val", 0), canary.tokens)
    path = folder / CANARY_FILE
    np.save(path, canary.tokens)
    return path
