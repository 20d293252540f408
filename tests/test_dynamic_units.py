"""The parts of the dynamic check that need no child process: canary, locator, ledger judgement,
evidence, byte recount, numeric margin."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pgolf.compliance.dynamic import canary as canary_mod
from pgolf.compliance.dynamic.evidence import byte_recount, canary_evidence, true_bytes
from pgolf.compliance.dynamic.harness import SHIM_DIR
from pgolf.compliance.dynamic.ledger import Ledger, Tolerance, judge_order, position_ranges
from pgolf.compliance.rules.registry import CATALOG_DIR

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SP1024 = SHARED / "tokenizers" / "fineweb_1024_bpe.model"
SP8192 = SHARED / "tokenizers" / "fineweb_8192_bpe.model"  # the one with byte-fallback pieces
needs_tokenizer = pytest.mark.skipif(not SP8192.is_file(), reason="../shared/tokenizers absent")

sys.path.insert(0, str(SHIM_DIR))
from pgolf_shim_tracer import Locator, run_offsets  # noqa: E402  (child-side module, stdlib + numpy)

sys.path.remove(str(SHIM_DIR))

IDS = np.arange(4, 1024)


def make_canary(n=16384, seed=b"\x01" * 32):
    return canary_mod.generate(IDS, n, entropy=seed)


# ------------------------------------------------------------------ canary


@needs_tokenizer
def test_content_ids_of_the_official_tokenizer_are_the_1020_non_control_ids():
    ids = canary_mod.content_ids(SP1024)
    assert len(ids) == 1020 and ids.min() == 4 and ids.max() == 1023


def test_canary_stream_shape_and_documents():
    c = make_canary()
    t = c.tokens.astype(np.int64)
    assert len(t) == 16385 and t[0] == canary_mod.BOS_ID
    assert not np.any((t[1:] == 1) & (t[:-1] == 1)), "an empty document"
    assert set(np.unique(t)) <= set(IDS) | {1}
    docs = (t == 1).sum()
    assert 10 <= docs <= 70  # mean length 512 over 16k tokens


def test_target_nll_is_the_generators_exact_likelihood():
    c = make_canary(4096)
    t, nll = c.tokens.astype(np.int64), c.target_nll()
    k, q = len(IDS), c.p_bos
    for i in range(1, len(t)):
        want = math.log(k) if t[i - 1] == 1 else (-math.log(q) if t[i] == 1 else -math.log((1 - q) / k))
        assert nll[i] == pytest.approx(want, abs=1e-12)


def test_a_shrunk_canary_keeps_the_default_document_count():
    """Document-scheduled evaluation (phased TTT, per-document batches over ranks) was planned
    against the default canary's documents; a smaller canary keeps their number, not their length."""
    assert [canary_mod.mean_doc_len_for(n) for n in (65536, 16384, 4096)] == [512, 512, 128]
    docs = [
        int((canary_mod.generate(IDS, n, canary_mod.mean_doc_len_for(n), entropy=b"\x03" * 32).tokens == 1).sum())
        for n in (16384, 4096)
    ]
    assert 20 <= docs[0] <= 48 and 0.6 <= docs[1] / docs[0] <= 1.6, docs


def test_fresh_canaries_differ():
    assert canary_mod.generate(IDS, 256).sha256 != canary_mod.generate(IDS, 256).sha256


def _online_unigram_losses(t: np.ndarray, leak: bool) -> np.ndarray:
    """Laplace unigram over the canary's symbols; `leak` fits it on the whole stream first."""
    counts = np.ones(1024)
    if leak:
        np.add.at(counts, t[1:], 1)
    losses = np.empty(len(t) - 1)
    for i, y in enumerate(t[1:]):
        losses[i] = -math.log(counts[y] / counts[4:].sum() * 1) if y != 1 else -math.log(counts[1] / counts.sum())
        if not leak:
            counts[y] += 1
    return losses


def test_ville_bound_flags_a_pre_eval_fit_and_spares_a_score_first_learner():
    c = make_canary()
    t = c.tokens.astype(np.int64)
    positions = np.arange(1, len(t))
    nll = c.target_nll()
    legal = canary_evidence(nll, positions, float(_online_unigram_losses(t, leak=False).sum()), 1e-4)
    leaked = canary_evidence(nll, positions, float(_online_unigram_losses(t, leak=True).sum()), 1e-4)
    assert legal.p_value == 1.0 and legal.evidence_nats < 0
    assert leaked.p_value < 1e-6 and leaked.evidence_nats > math.log(1e6)


def _mass_inflating_losses(c, s: float) -> np.ndarray:
    """A scorer that adapts nothing but whose "distribution" holds S > 1 over the content ids: it
    gives every content target S/K (and the BOS its true probability)."""
    nll = c.target_nll()[1:]
    content = c.tokens[1:].astype(np.int64) != canary_mod.BOS_ID
    return np.where(content, nll - math.log(s), nll)


@pytest.mark.parametrize("s", [1.05, 1.5])
def test_a_mass_inflating_mixture_shows_evidence_of_about_n_ln_s(s):
    """C2 (Jensen, ../shared/notes/cpu-harness.md): on a uniform canary the expected loss of a
    mixture whose mass is S is as low as ln K - ln S, so the canary sees about N ln S nats even when
    nothing adapts: above ln(1/alpha) at S = 1.05 already."""
    c = make_canary()
    positions = np.arange(1, len(c.tokens))
    ev = canary_evidence(c.target_nll(), positions, float(_mass_inflating_losses(c, s).sum()), 1e-4)
    content = int((c.tokens[1:] != canary_mod.BOS_ID).sum())
    assert ev.evidence_nats == pytest.approx(content * math.log(s) - ev.margin_nats, rel=1e-9)
    assert ev.evidence_nats > ev.threshold_nats == pytest.approx(math.log(1e6))
    assert ev.p_value < 1e-6 and ev.repeats == 1


def test_targets_counted_again_raise_the_threshold_by_their_repeats():
    """Sliding windows that count the stream's last 512 targets 8 times: a legal scorer lucky on those
    targets would cross ln(1/alpha) counted 8 times over; E > R (ln(1/alpha) + ln m) does not."""
    c = make_canary()
    nll = c.target_nll()
    once = np.arange(1, len(c.tokens))
    tail = once[-512:]
    counted = np.concatenate([once, np.repeat(tail, 7)])
    luck = np.zeros(len(c.tokens))
    luck[tail] = 0.01  # 5.1 nats of luck, one prediction sequence
    scored = float((nll[counted] - luck[counted]).sum())
    ev = canary_evidence(nll, counted, scored, 0.0, None, alpha=1e-6, lines=2)
    assert ev.repeats == 8 and ev.tokens == len(counted)
    assert ev.evidence_nats == pytest.approx(8 * 5.12, rel=1e-6)
    assert ev.evidence_nats > math.log(1e6)  # the naive test: a false proof
    assert ev.threshold_nats == pytest.approx(8 * (math.log(1e6) + math.log(2)))
    assert ev.p_value > 1e-6 and ev.p_value == pytest.approx(min(1.0, 2 * math.exp(-ev.evidence_nats / 8)))


# ------------------------------------------------------------------ locator


def test_locator_finds_windows_rows_and_flattened_sliding_batches():
    c = make_canary()
    loc = Locator(c.tokens)
    t = c.tokens.astype(np.int64)
    starts = np.array([1, 65, 129, 5000])
    rows = np.stack([t[s : s + 256] for s in starts])
    pos = loc.locate(rows)
    assert (pos == starts[:, None] + np.arange(256)).all()
    flat = loc.locate(rows.reshape(1, -1))  # windows overlap: each row is its own run
    assert (flat.reshape(4, 256) == pos).all()
    offsets = run_offsets(flat).reshape(4, 256)
    assert (offsets == np.arange(256)).all()


def test_locator_extends_short_tails_and_ignores_other_text():
    c = make_canary()
    loc = Locator(c.tokens)
    t = c.tokens.astype(np.int64)
    row = np.concatenate([t[300:340], t[900:910]])  # a 10-token run has no whole window of its own
    pos = loc.locate(row[None, :])[0]
    assert (pos[:40] == np.arange(300, 340)).all()
    assert (pos[40:] == -1).all()  # too short to place with certainty
    other = np.random.default_rng(0).integers(4, 1024, size=(2, 200))
    assert (loc.locate(other) == -1).all()


# ------------------------------------------------------------------ ledger judgement


class Book:
    """Builds a Ledger by hand: loss calls, backward passes and printed lines at given times."""

    def __init__(self, nll: dict[int, float] | None = None):
        self.rows, self.lines, self.nll = [], [], nll or {}

    def loss(self, t, positions, offsets=None, losses=None, backward_at=math.inf):
        positions = np.asarray(positions)
        offsets = np.arange(len(positions)) if offsets is None else np.asarray(offsets)
        losses = np.array([self.nll.get(int(p), 7.0) for p in positions]) if losses is None else np.asarray(losses)
        self.rows.append((t, positions, offsets, losses, backward_at))

    def line(self, t, text):
        self.lines.append((t, text))

    def build(self) -> Ledger:
        n = [len(r[1]) for r in self.rows]
        cat = lambda i: np.concatenate([np.asarray(r[i], dtype=float) for r in self.rows])  # noqa: E731
        return Ledger(
            t=np.repeat([r[0] for r in self.rows], n).astype(np.int64),
            pos=cat(1).astype(np.int64),
            off=cat(2).astype(np.int64),
            loss=cat(3),
            update_t=np.repeat([r[4] for r in self.rows], n).astype(float),
            site=["s.py:1 in f"],
            site_of=np.zeros(sum(n), dtype=np.int64),
            lowp=np.zeros(sum(n), dtype=bool),
            lines=self.lines,
            processes=1,
            torch_seen=True,
        )


CHUNKS = [np.arange(1 + 100 * i, 101 + 100 * i) for i in range(4)]


def test_score_first_ttt_passes():
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk)  # scored under no_grad
        if i < 3:
            book.loss(10 * i + 5, chunk, backward_at=10 * i + 6)  # then trained on
    book.line(100, "final val_loss:7.00000000")
    order = judge_order(book.build(), 7.0)
    assert order.matched is not None and order.matched.n == 400 and len(order.c3_positions) == 0


def test_of_passes_with_the_same_mean_the_latest_is_the_reported_one():
    book = Book()
    book.loss(10, np.arange(1, 401), losses=np.full(400, 7.0))  # a diagnostic pass
    book.line(20, "diagnostic val_loss:7.00000000")
    book.loss(30, np.arange(1, 401), losses=np.full(400, 7.0 + 1e-7))  # the reported one, equal to 1e-7
    book.line(40, "final val_loss:7.00000000")
    order = judge_order(book.build(), 7.0)
    assert order.matched is not None and order.matched.start_t == 20


def test_pre_eval_adaptation_is_c3_on_every_position():
    book = Book()
    book.loss(1, np.arange(1, 401), backward_at=2)
    book.loss(5, np.arange(1, 401), losses=np.full(400, 6.5))
    book.line(9, "final val_loss:6.50000000")
    order = judge_order(book.build(), 6.5)
    assert order.matched is not None and len(order.c3_positions) == 400
    assert position_ranges(order.c3_positions) == "1-400"


def test_score_and_train_from_one_forward_is_legal():
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk, backward_at=10 * i + 1)
    book.line(100, "final val_loss:7.0")
    order = judge_order(book.build(), 7.0)
    assert order.matched.mode == "forwards" and len(order.c3_positions) == 0


def test_a_later_global_step_over_scored_documents_is_not_the_counted_score():
    """Phased TTT: each chunk scored and trained from one forward; then a global step over the scored
    documents joined together sees the same tokens with longer contexts. The report is the first."""
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk, losses=np.full(100, 7.0), backward_at=10 * i + 1)
    book.loss(100, np.arange(1, 401), offsets=np.arange(400) + 1000, losses=np.full(400, 6.5), backward_at=101)
    book.line(200, "final val_loss:7.0")
    order = judge_order(book.build(), 7.0, Tolerance(lowp_abs=0.1))
    assert order.matched.mean == pytest.approx(7.0) and len(order.c3_positions) == 0


def test_a_longer_context_after_an_update_is_not_preferred_to_the_score_before_it():
    """Score-first TTT scoring and training from one forward per chunk; then a global step over the
    scored documents joined together gives three positions a longer context, with the same loss (a
    near-uniform model). Each position's counted score is its longest context before its update."""
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk, losses=np.full(100, 6.9), backward_at=10 * i + 1)
    book.loss(100, np.arange(1, 4), offsets=np.arange(3) + 1000, losses=np.full(3, 6.9), backward_at=101)
    book.line(200, "final val_loss:6.9")
    order = judge_order(book.build(), 6.9)
    assert order.matched is not None and len(order.c3_positions) == 0


def test_scores_taken_from_the_last_epochs_training_forward_are_c3():
    """LoRA TTT that accumulates its score in the last of its epochs, from forwards that also train."""
    book = Book()
    for epoch, loss in enumerate((7.2, 7.0, 6.8)):
        book.loss(10 * epoch, np.arange(1, 401), losses=np.full(400, loss), backward_at=10 * epoch + 1)
    book.line(100, "final val_loss:6.8")
    order = judge_order(book.build(), 6.8)
    assert order.matched.rule == "last" and len(order.c3_positions) == 400


def test_rescoring_without_a_line_between_passes_is_c3():
    """A second pass after adapting on everything, no line between: each position's last score is
    the reported one, made after its update (C3); the first scores would have given 7.0."""
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk)
        book.loss(10 * i + 5, chunk, backward_at=10 * i + 6)
    for i, chunk in enumerate(CHUNKS):
        book.loss(100 + i, chunk, losses=np.full(100, 6.0))  # second pass, after adapting on everything
    book.line(200, "final val_loss:6.0")
    order = judge_order(book.build(), 6.0)
    assert order.matched.rule == "last" and len(order.c3_positions) == 400
    assert order.legal_mean == pytest.approx(7.0) and order.legal_missing == 0


def test_keeping_the_better_of_two_scores_is_reproduced_and_a_hand_mixed_report_is_not():
    book = Book()
    book.loss(1, np.arange(1, 401), losses=np.full(400, 7.2))
    book.loss(2, np.arange(1, 401), losses=np.where(np.arange(400) % 2 == 0, 7.0, 7.4))
    book.line(9, "final val_loss:7.1")
    order = judge_order(book.build(), 7.1)
    assert order.matched is None and order.best_of is not None and order.best_of.mean == pytest.approx(7.1)
    assert judge_order(book.build(), 6.9).best_of is None  # a mixture the ledger cannot reproduce


def test_rescoring_reported_after_its_own_line_is_c3():
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk)
        book.loss(10 * i + 5, chunk, backward_at=10 * i + 6)
    book.line(50, "pass1 val_loss:7.0")
    for i, chunk in enumerate(CHUNKS):
        book.loss(100 + i, chunk, losses=np.full(100, 6.0))
    book.line(200, "final val_loss:6.0")
    order = judge_order(book.build(), 6.0)
    assert order.matched is not None and len(order.c3_positions) == 400


def test_sliding_windows_count_each_target_where_it_has_most_context():
    book = Book()
    seq, stride, n = 64, 16, 400
    for k, start in enumerate(range(1, n - seq + 2, stride)):
        window = np.arange(start, start + seq)
        losses = np.where(np.arange(seq) >= seq - stride, 7.0, 9.0)  # context-poor scores are worse
        if start == 1:
            losses[:] = 7.0
        book.loss(k, window, offsets=np.arange(seq), losses=losses)
    book.line(1000, "final val_loss:7.0")
    order = judge_order(book.build(), 7.0)
    assert order.matched is not None and order.matched.mean == pytest.approx(7.0)


def test_a_probability_mixed_in_after_the_softmax_is_c4():
    book = Book()
    book.loss(1, np.arange(1, 401))
    book.line(2, "final val_loss:6.2")
    order = judge_order(book.build(), 6.2)
    assert order.matched is None and order.judged.mean == pytest.approx(7.0)


def test_bf16_scores_get_the_wider_tolerance():
    book = Book()
    book.loss(1, np.arange(1, 401))
    book.line(2, "final val_loss:7.03")
    ledger = book.build()
    assert judge_order(ledger, 7.03).matched is None
    ledger.lowp[:] = True
    assert judge_order(ledger, 7.03, Tolerance()).matched is not None


# ------------------------------------------------------------------ bytes and margins


@needs_tokenizer
def test_true_bytes_of_real_text_equal_its_utf8_length():
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(SP8192))
    text = "Parameter golf: café, naïve — 16,000,000 bytes… and 日本語 text."
    tokens = np.array([1] + sp.encode(text), dtype=np.int64)
    assert any(sp.is_byte(int(i)) for i in tokens)
    assert true_bytes(tokens, np.arange(1, len(tokens)), SP8192) == len(text.encode("utf-8"))


@needs_tokenizer
def test_byte_recount_catches_byte_fallback_counted_as_three_bytes():
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(SP8192))
    c = canary_mod.generate(canary_mod.content_ids(SP8192), 4096, entropy=b"\x02" * 32)
    positions = np.arange(1, len(c.tokens))
    truth = true_bytes(c.tokens, positions, SP8192)
    n_byte_pieces = sum(sp.is_byte(int(i)) for i in c.tokens[positions])
    assert n_byte_pieces > 50
    loss = 7.0
    honest = byte_recount(c.tokens, positions, SP8192, loss, loss * len(positions) / (math.log(2) * truth))
    scylla_bytes = truth + 2 * n_byte_pieces
    scylla = byte_recount(c.tokens, positions, SP8192, loss, loss * len(positions) / (math.log(2) * scylla_bytes))
    assert honest.ratio == pytest.approx(1.0, abs=1e-9)
    assert scylla.ratio > 1.005


def test_catalog_margins_cover_the_measured_arithmetic():
    from pgolf.compliance.dynamic.margin import measure

    rules = {r["id"]: r for r in yaml.safe_load((CATALOG_DIR / "dynamic.yaml").read_text())["rules"]}
    params = rules["R-DYN-CANARY"]["params"]
    worst = {
        name: max(measure(tokens=8192, trials=2, scale=s)[name] for s in (0.1, 3.0))
        for name in ("fp32_loss", "bf16_loss")
    }
    assert params["margin_nats_per_token"] > worst["fp32_loss"]
    assert params["lowp_margin_nats_per_token"] > worst["bf16_loss"]
    assert params["lowp_abs_tolerance"] > worst["bf16_loss"]


def test_a_fused_kernel_loss_reported_by_the_device_shim_is_traced_with_its_backward(tmp_path):
    """Records wrap their Triton cross-entropy in torch.library.custom_op, out of any mode's
    sight; the shim's kernel reference tells the tracer directly."""
    import os
    import subprocess

    from pgolf.compliance.dynamic.ledger import read_ledger

    c = make_canary(4096)
    np.save(tmp_path / "canary.npy", c.tokens)
    child = (
        "import numpy as np, torch\n"
        "import pgolf_shim_tracer as tracer\n"
        "t = torch.from_numpy(np.load('canary.npy').astype(np.int64))\n"
        "targets = t[1:1025]\n"
        "logits = torch.zeros(1024, 1024)\n"
        "losses = torch.full((1024,), 6.9)\n"
        "tracer.kernel_loss(logits, targets, losses)\n"
        "tracer.kernel_backward(targets)\n"
        "tracer.kernel_loss(logits, t[1025:2049], losses)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(SHIM_DIR),
        "PGOLF_LEDGER_DIR": str(tmp_path / "ledger"),
        "PGOLF_CANARY": str(tmp_path / "canary.npy"),
    }
    subprocess.run([sys.executable, "-c", child], cwd=tmp_path, env=env, check=True)
    ledger = read_ledger(tmp_path / "ledger")
    assert sorted(ledger.pos.tolist()) == list(range(1, 2049))
    updated = ledger.pos[np.isfinite(ledger.update_t)]
    assert sorted(updated.tolist()) == list(range(1, 1025))
    assert ledger.loss == pytest.approx(6.9)


def test_the_device_shim_is_left_out_for_scripts_of_the_stage_contract():
    from pgolf.compliance.dynamic.harness import DynamicOptions, _wants_device_shim

    reference = (Path(__file__).resolve().parents[1] / "pipeline" / "reference" / "train_gpt.py").read_text()
    record_style = "import torch\nif not torch.cuda.is_available():\n    raise RuntimeError('CUDA is required')\n"
    assert not _wants_device_shim(DynamicOptions(), reference)
    assert _wants_device_shim(DynamicOptions(), record_style)
    assert _wants_device_shim(DynamicOptions(device_shim=True), reference)


def test_windows_at_the_end_of_the_stream_count_its_last_targets_again():
    """The records' sliding eval: every window counts its last `stride` targets, the first all of
    them, and the windows that reach the end of the stream count its last targets once each."""
    book = Book()
    seq, stride, n = 64, 16, 256
    rng = np.random.default_rng(0)
    truth = {p: float(v) for p, v in zip(range(1, n + 1), rng.uniform(5, 9, n), strict=False)}
    counted = []
    for k, start in enumerate(range(1, n + 1, stride)):
        window = np.arange(start, min(start + seq, n + 1))
        book.loss(k, window, losses=np.array([truth[p] for p in window]))
        counted += list(window if start == 1 else window[-stride:])
    reported = float(np.mean([truth[p] for p in counted]))
    book.line(1000, f"final val_loss:{reported:.8f}")
    order = judge_order(book.build(), reported)
    assert order.matched.rule == "windows" and order.matched.mean == pytest.approx(reported, abs=1e-9)
    assert len(order.matched.weighted) == len(counted) > n and order.matched.n == n


ADAPTER_CHILD = """
import os, numpy as np, torch, torch.nn.functional as F
torch.manual_seed(0)
tokens = torch.from_numpy(np.load('canary.npy').astype(np.int64))
x, y = tokens[:-1].view(8, -1), tokens[1:].view(8, -1)
base = torch.nn.Embedding(1024, 1024)
for i in range(8):                      # per document: a fresh adapter, trained on it, then dropped
    adapter = torch.nn.Parameter(torch.zeros(1024))
    opt = torch.optim.SGD([adapter], lr=1.0)
    F.cross_entropy((base(x[i]) + adapter).detach() + adapter, y[i]).backward()
    opt.step()
    if os.environ.get('MODE') == 'reset':
        torch.nn.init.zeros_(adapter)     # reset in place for the next document
    if os.environ.get('MODE') == 'kept':
        base.weight.data += 0 * adapter.sum()   # the adapter is read again: the update persists
with torch.no_grad():
    loss = F.cross_entropy(base(x).view(-1, 1024), y.reshape(-1))
print(f'final val_loss:{loss.item():.8f}')
"""


@pytest.mark.parametrize("mode, flagged", [("drop", False), ("reset", False), ("kept", True)])
def test_an_update_thrown_away_before_anything_reads_it_is_no_update(tmp_path, mode, flagged):
    """Per-document adapters that are discarded or reset leave the scoring model untouched
    (2026-03-20_10L_4K_Sliding_TTT); an update read again afterwards persists."""
    import os
    import subprocess

    from pgolf.compliance.dynamic.ledger import read_ledger

    np.save(tmp_path / "canary.npy", make_canary(4096).tokens)
    env = {
        **os.environ,
        "PYTHONPATH": str(SHIM_DIR),
        "PGOLF_LEDGER_DIR": str(tmp_path / "ledger"),
        "PGOLF_CANARY": str(tmp_path / "canary.npy"),
        "MODE": mode,
    }
    out = subprocess.run(
        [sys.executable, "-c", ADAPTER_CHILD], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout
    reported = float(out.split("val_loss:")[1])
    order = judge_order(read_ledger(tmp_path / "ledger"), reported)
    assert order.matched is not None
    assert (len(order.c3_positions) == 4096) is flagged and (len(order.c3_positions) == 0) is not flagged


# ------------------------------------------------------------------ per-family outcomes for the audit


def _context(
    book: Book,
    reported: float,
    status: str = "ok",
    bpb: float = 3.0,
    tokenizer: Path = Path("t.model"),
    before: str = "",
):
    from pgolf.compliance.dynamic.context import DynamicContext
    from pgolf.compliance.dynamic.harness import DynamicRun
    from pgolf.compliance.logparse import parse_log_bytes

    final = f"final_int8_zlib_roundtrip_exact val_loss:{reported:.8f} val_bpb:{bpb:.8f}\n"
    facts = parse_log_bytes((before + final).encode())
    run = DynamicRun(
        script="s.py",
        status=status,
        returncode=0 if status == "ok" else 1,
        wall_s=1.0,
        log_path=Path("run.log"),
        canary=make_canary(400),
        tokenizer=tokenizer,
        facts=facts,
        ledger=book.build(),
        env={},
        knobs_ignored=[],
    )
    return DynamicContext(run, file="s.py")


def _score_first_book(rescore: bool = False) -> Book:
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 * i, chunk)
        if i < 3:
            book.loss(10 * i + 5, chunk, backward_at=10 * i + 6)
    if rescore:
        book.line(60, "diagnostic val_loss:7.00000000")
        for i, chunk in enumerate(CHUNKS):
            book.loss(70 + i, chunk)
    book.line(100, "final_int8_zlib_roundtrip_exact val_loss:7.00000000")
    return book


def test_family_outcomes_confirm_a_clean_score_first_run():
    outcomes = _context(_score_first_book(), 7.0).family_outcomes()
    assert outcomes == {"C1": "clean", "C2": "clean", "C3": "clean", "C4": "unknown", "data": "clean"}
    assert _context(_score_first_book(rescore=True), 7.0).family_outcomes()["C4"] == "clean"


def test_family_outcomes_flag_what_the_ledger_and_the_canary_show():
    book = Book()
    book.loss(1, np.arange(1, 401), backward_at=2)  # pre-eval adaptation
    book.loss(5, np.arange(1, 401), losses=np.full(400, 7.5))
    book.line(9, "final_int8_zlib_roundtrip_exact val_loss:7.50000000")
    assert _context(book, 7.5).family_outcomes()["C3"] == "flagged"
    book = Book()  # scores mixed outside the softmax
    book.loss(1, np.arange(1, 401), losses=np.full(400, 7.0))
    book.line(9, "final_int8_zlib_roundtrip_exact val_loss:6.00000000")
    outcomes = _context(book, 6.0).family_outcomes()
    assert outcomes["C1"] == outcomes["C2"] == "flagged"  # the canary: 370 nats below its bound
    assert outcomes["C4"] == "unknown"  # the ledger cannot say what 6.0 is
    assert outcomes["C3"] == "unknown"  # nothing was trained: C3 not seen
    book = Book()  # two scores each, the better kept
    book.loss(1, np.arange(1, 401), losses=np.full(400, 7.2))
    book.loss(2, np.arange(1, 401), losses=np.where(np.arange(400) % 2 == 0, 7.0, 7.4))
    book.line(9, "final_int8_zlib_roundtrip_exact val_loss:7.10000000")
    assert _context(book, 7.1).family_outcomes()["C4"] == "flagged"


def test_family_outcomes_are_unknown_when_the_run_did_not_finish():
    outcomes = _context(_score_first_book(), 7.0, status="timeout").family_outcomes()
    assert set(outcomes.values()) == {"unknown"} and set(outcomes) == {"C1", "C2", "C3", "C4", "data"}


def test_an_unexplained_report_over_overlapping_windows_is_tested_with_its_repeats():
    """No traced pass reproduces the report, and windows scored every target up to 4 times: the script
    may have counted each score, so the canary's threshold is 4 (ln(1/alpha) + ln m), not ln(1/alpha)."""
    book = Book()
    for k, start in enumerate(range(1, 400 - 64 + 2, 16)):
        book.loss(k, np.arange(start, start + 64), offsets=np.arange(64), losses=np.full(64, 7.0))
    book.line(1000, "final_int8_zlib_roundtrip_exact val_loss:6.50000000")
    ctx = _context(book, 6.5)
    ev = ctx.canary({"alpha": 1e-6})
    assert ctx.order({}).matched is None and ev.repeats == 4
    assert ev.threshold_nats == pytest.approx(4 * math.log(1e6))


def _uniform_scores_and_their_bpb() -> tuple[Book, float, float]:
    """400 targets scored at the canary's own uniform loss, and the val_bpb that is that loss over
    the tokenizer's bytes of those targets."""
    from pgolf.compliance.dynamic.evidence import true_bytes

    book = Book()
    loss = math.log(len(IDS))
    book.loss(1, np.arange(1, 401), losses=np.full(400, loss))
    book.line(9, "final_int8_zlib_roundtrip_exact val_loss:6.92853781")
    truth = true_bytes(_context(book, loss, tokenizer=SP1024).run.canary.tokens, np.arange(1, 401), SP1024)
    return book, loss, 400 * loss / (math.log(2) * truth)


@needs_tokenizer
def test_a_val_bpb_below_what_the_val_loss_gives_is_judged_in_bytes():
    """A byte-level mixture prints its own val_bpb beside the network's val_loss: the bpb ranks,
    so the canary tests it too, over the tokenizer's own bytes of the scored targets."""
    book, loss, as_bytes = _uniform_scores_and_their_bpb()
    params = {"alpha": 1e-6}
    same = _context(book, loss, bpb=as_bytes, tokenizer=SP1024).canary(params)
    assert same.lines == 1 and same.evidence_nats < same.threshold_nats  # one statistic: nothing proven
    mixed = _context(book, loss, bpb=0.9 * as_bytes, tokenizer=SP1024).canary(params)
    assert mixed.lines == 2 and mixed.evidence_nats > mixed.threshold_nats and mixed.measure == "val_bpb"
    assert mixed.evidence_nats == pytest.approx(0.1 * 400 * loss, rel=0.05)


@needs_tokenizer
def test_a_byte_mixture_the_canary_cannot_fault_is_not_clean():
    """A claimed val_bpb that is not the traced loss in bytes (a mixture worse than the network on
    the canary) proves nothing, and it must not clear a static C1/C2 fail either."""
    book, loss, as_bytes = _uniform_scores_and_their_bpb()
    params = {"alpha": 1e-6}
    honest = _context(book, loss, bpb=as_bytes, tokenizer=SP1024).family_outcomes(params)
    assert honest["C1"] == honest["C2"] == "clean"
    worse = _context(book, loss, bpb=1.2 * as_bytes, tokenizer=SP1024)
    evidence = worse.canary(params)
    assert evidence.lines == 2 and evidence.evidence_nats < evidence.threshold_nats
    assert worse.family_outcomes(params)["C1"] == worse.family_outcomes(params)["C2"] == "unknown"


@needs_tokenizer
def test_a_claimed_bpb_apart_from_a_sound_byte_table_is_not_called_a_wrong_byte_table():
    """A mixture's bpb beside the network's loss implies the wrong bytes, but another pass of the same
    run shows the byte table right: review, not a byte-table fail. Without that pass it stays a fail."""
    from pgolf.compliance.audit import run_check
    from pgolf.compliance.rules import load_ruleset

    rule = next(r for r in load_ruleset("dynamic").rules if r.id == "R-DYN-TOKENIZER-BPB")
    book, loss, as_bytes = _uniform_scores_and_their_bpb()
    sound = f"diagnostic quantized val_loss:{loss:.8f} val_bpb:{as_bytes:.8f}\n"
    mixed = run_check(rule, _context(book, loss, bpb=0.8 * as_bytes, tokenizer=SP1024, before=sound))
    assert [f.severity for f in mixed] == ["review"] and "byte table is right" in mixed[0].message
    wrong = run_check(rule, _context(book, loss, bpb=0.8 * as_bytes, tokenizer=SP1024))
    assert [f.severity for f in wrong] == ["fail"] and "byte table is wrong" in wrong[0].message


@needs_tokenizer
def test_a_byte_ratio_off_for_a_report_no_pass_reproduces_is_review():
    """The report's val_loss matches no traced pass (a last-epoch rescoring): its val_loss/val_bpb may
    cover other tokens than the pass recounted, so a ratio off the pieces proves no wrong byte table."""
    from pgolf.compliance.audit import run_check
    from pgolf.compliance.rules import load_ruleset

    rule = next(r for r in load_ruleset("dynamic").rules if r.id == "R-DYN-TOKENIZER-BPB")
    book, loss, as_bytes = _uniform_scores_and_their_bpb()
    unexplained = run_check(
        rule, _context(book, loss - 0.5, bpb=0.8 * (loss - 0.5) / loss * as_bytes, tokenizer=SP1024)
    )
    assert [f.severity for f in unexplained] == ["review"], [f.message for f in unexplained]
    assert "no traced pass reproduces" in unexplained[0].message
    explained = run_check(rule, _context(book, loss, bpb=0.8 * as_bytes, tokenizer=SP1024))
    assert [f.severity for f in explained] == ["fail"]


def test_the_latest_window_that_explains_the_report_is_the_reported_pass():
    """A diagnostic pass, then the final pass; on a near-uniform model a window reaching back over
    both fits the report closer by chance. The pass printed last before the report is the one."""
    book = Book()
    for i, chunk in enumerate(CHUNKS):
        book.loss(10 + i, chunk, losses=np.full(100, 7.0))
    book.line(20, "diagnostic quantized val_loss:7.00000000")
    for i, chunk in enumerate(CHUNKS):
        book.loss(30 + i, chunk, losses=np.full(100, 7.0003))
    book.line(40, "final val_loss:7.00000000")
    order = judge_order(book.build(), 7.0)
    assert order.matched is not None and order.matched.start_t == 20 and order.matched.mean == pytest.approx(7.0003)


def test_the_last_output_is_the_newest_line_any_process_printed_and_how_long_before_the_end():
    empty = np.zeros(0)
    ledger = Ledger(
        t=empty.astype(np.int64),
        pos=empty.astype(np.int64),
        off=empty.astype(np.int64),
        loss=empty,
        update_t=empty,
        site=[],
        site_of=empty.astype(np.int64),
        lowp=empty.astype(bool),
        events=[
            {"kind": "beat", "t": 10 * 10**9, "cpu_s": 1.0, "said_t": 9 * 10**9, "said": "launcher: starting 2 ranks"},
            {"kind": "beat", "t": 20 * 10**9, "cpu_s": 9.0, "said_t": 15 * 10**9, "said": "gptq: generating 64 seqs"},
            {"kind": "beat", "t": 30 * 10**9, "cpu_s": 2.0},
            {"kind": "beat", "t": 615 * 10**9, "cpu_s": 600.0},
        ],
    )
    assert ledger.last_output() == ("gptq: generating 64 seqs", 600.0)
    ledger.events = [e for e in ledger.events if "said" not in e]
    assert ledger.last_output() is None


@needs_tokenizer
def test_a_canary_fail_on_a_claimed_bpb_names_the_bpb_it_tested():
    from pgolf.compliance.audit import run_check
    from pgolf.compliance.rules import load_ruleset

    rule = next(r for r in load_ruleset("dynamic").rules if r.id == "R-DYN-CANARY")
    book, loss, as_bytes = _uniform_scores_and_their_bpb()
    (found,) = run_check(rule, _context(book, loss, bpb=0.9 * as_bytes, tokenizer=SP1024))
    assert found.severity == "fail" and found.message.startswith(f"val_bpb {0.9 * as_bytes:.6f} (the claim"), (
        found.message
    )
