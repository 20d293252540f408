"""pgolf reference submission: a small GPT trained, quantized and scored for Parameter Golf.

Stages, chosen by PGOLF_STAGE: train -> quantize -> eval; unset runs all three in one process.
Everything is configured through environment variables (see README.md beside this file).
Runs on CUDA (bf16 autocast, FlashAttention-3 on SM90 when installed) and on CPU (fp32),
single process or under torchrun.
"""

from __future__ import annotations

import glob
import io
import json
import math
import os
import sys
import time
import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

try:
    from flash_attn_interface import flash_attn_func as fa3_func
except ImportError:
    fa3_func = None

IS_MASTER = int(os.environ.get("RANK", "0")) == 0
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
STAGES = ("train", "quantize", "eval")
POSITIVE = (
    "num_layers",
    "model_dim",
    "num_heads",
    "num_kv_heads",
    "mlp_mult",
    "train_seq_len",
    "train_batch_tokens",
    "iterations",
    "train_log_every",
    "val_batch_tokens",
    "ttt_chunk_tokens",
)


@dataclass
class Hyperparameters:
    """Each field is read from the environment variable of its upper-cased name."""

    pgolf_stage: str = ""
    pgolf_train_data: str = "./data/datasets/fineweb10B_sp1024"
    pgolf_val_data: str = "./data/datasets/fineweb10B_sp1024"
    pgolf_tokenizer: str = "./data/tokenizers/fineweb_1024_bpe.model"
    pgolf_checkpoint: str = "./out/checkpoint.pt"
    pgolf_artifact: str = "./out/model.ptz"
    pgolf_result: str = "./out/result.json"
    pgolf_train_budget_s: float = 600.0
    seed: int = 1337
    num_layers: int = 9
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: int = 2
    train_seq_len: int = 1024
    train_batch_tokens: int = 524288
    grad_accum_steps: int = 0  # 0: 8 // world_size, so 8 GPUs and 1 GPU see the same batch
    iterations: int = 20000
    lr: float = 3e-3
    warmup_iters: int = 100
    warmdown_iters: int = 1200
    grad_clip: float = 1.0
    train_log_every: int = 50
    val_loss_every: int = 0  # in-training validation (untimed); 0 disables it
    val_batch_tokens: int = 524288
    compile: int = 1  # torch.compile, CUDA only
    quant_bits: int = 8
    compressor: str = "zstd"
    ttt_enabled: int = 0
    ttt_lr: float = 2e-3
    ttt_chunk_tokens: int = 32768
    ttt_epochs: int = 1


def load_hparams() -> Hyperparameters:
    hp = Hyperparameters()
    for f in fields(hp):
        raw = os.environ.get(f.name.upper())
        if raw is not None:
            try:
                setattr(hp, f.name, type(getattr(hp, f.name))(raw))
            except ValueError:
                fail(f"{f.name.upper()}={raw!r} is not a valid {type(getattr(hp, f.name)).__name__}")
    if hp.pgolf_stage not in ("",) + STAGES:
        fail(f"PGOLF_STAGE={hp.pgolf_stage!r}: expected one of {', '.join(STAGES)} or unset")
    if hp.quant_bits not in (6, 8):
        fail(f"QUANT_BITS={hp.quant_bits}: expected 8 or 6")
    if hp.compressor not in ("zstd", "brotli", "zlib"):
        fail(f"COMPRESSOR={hp.compressor!r}: expected zstd, brotli or zlib")
    for name in POSITIVE:
        if getattr(hp, name) <= 0:
            fail(f"{name.upper()}={getattr(hp, name)}: must be positive")
    if hp.model_dim % (2 * hp.num_heads) or hp.num_heads % hp.num_kv_heads:
        fail("MODEL_DIM / NUM_HEADS must be even (rotary), NUM_HEADS must divide by NUM_KV_HEADS")
    return hp


def log(msg: str) -> None:
    if IS_MASTER:
        print(msg, flush=True)


def fail(msg: str) -> None:
    # Bad input ends the run with one line on stderr, not a traceback.
    sys.exit(f"error: {msg}")


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int
    world: int
    device: torch.device

    def share(self, first: int, last: int) -> tuple[int, int]:
        """This rank's contiguous part of the items [first, last)."""
        n = last - first
        return first + n * self.rank // self.world, first + n * (self.rank + 1) // self.world

    def all_reduce(self, t: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t, op=op)
        return t

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_distributed() -> Dist:
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, device)


def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- data


def shard_files(spec: str, kind: str) -> list[str]:
    pattern = os.path.join(spec, f"fineweb_{kind}_*.bin") if os.path.isdir(spec) else spec
    files = sorted(glob.glob(pattern))
    if not files:
        fail(f"no {kind} shards match {pattern}")
    return files


def read_shard(path: str) -> np.ndarray:
    header = np.fromfile(path, dtype="<i4", count=256)
    if header.size != 256 or header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION or header[2] <= 0:
        fail(f"{path}: not a token shard (bad header)")
    tokens = np.fromfile(path, dtype="<u2", offset=256 * 4)
    if tokens.size != header[2]:
        fail(f"{path}: header says {header[2]} tokens, file holds {tokens.size}")
    return tokens


class TokenStream:
    """Training tokens read shard after shard, wrapping around at the end."""

    def __init__(self, files: list[str]):
        self.files, self.index, self.pos = files, 0, 0
        self.tokens = read_shard(files[0])

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            if self.pos == len(self.tokens):
                self.index = (self.index + 1) % len(self.files)
                self.tokens, self.pos = read_shard(self.files[self.index]), 0
            k = min(n, len(self.tokens) - self.pos)
            parts.append(self.tokens[self.pos : self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(parts)


def to_batch(span: np.ndarray, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets from a span of n * seq_len + 1 tokens."""
    t = torch.from_numpy(span.astype(np.int64)).to(device)
    return t[:-1].view(-1, seq_len), t[1:].view(-1, seq_len)


def load_val_tokens(hp: Hyperparameters) -> tuple[np.ndarray, int]:
    """All validation tokens and how many whole sequences of targets they hold."""
    tokens = np.concatenate([read_shard(f) for f in shard_files(hp.pgolf_val_data, "val")])
    n_seq = (len(tokens) - 1) // hp.train_seq_len
    if n_seq == 0:
        fail(f"validation data holds fewer than TRAIN_SEQ_LEN+1={hp.train_seq_len + 1} tokens")
    return tokens, n_seq


@dataclass
class ByteTables:
    """Per token id, what RULES.md section 6 charges a scored target in bytes."""

    base: torch.Tensor  # UTF-8 bytes of the piece without its leading "▁"
    space: torch.Tensor  # the piece starts with "▁"
    boundary: torch.Tensor  # control/unknown/unused: no leading space is charged after it

    def count(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.base[y] + (self.space[y] & ~self.boundary[x]).long()


def byte_tables(sp: spm.SentencePieceProcessor, device: torch.device) -> ByteTables:
    v = sp.vocab_size()
    base = torch.zeros(v, dtype=torch.long)
    space, boundary = torch.zeros(v, dtype=torch.bool), torch.zeros(v, dtype=torch.bool)
    for i in range(v):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            boundary[i] = True
        elif sp.is_byte(i):
            base[i] = 1
        else:
            piece = sp.id_to_piece(i)
            space[i] = piece.startswith("\u2581")
            base[i] = len(piece.removeprefix("\u2581").encode("utf-8"))
    return ByteTables(base.to(device), space.to(device), boundary.to(device))


def load_tokenizer(path: str) -> spm.SentencePieceProcessor:
    if not os.path.isfile(path):
        fail(f"tokenizer not found: {path}")
    return spm.SentencePieceProcessor(model_file=path)


# ----------------------------------------------------------------------------- model


@dataclass
class ModelConfig:
    vocab_size: int
    num_layers: int
    model_dim: int
    num_heads: int
    num_kv_heads: int
    mlp_mult: int


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # fp32 tables would upcast bf16 activations
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def fa3_usable(device: torch.device) -> bool:
    hopper = device.type == "cuda" and torch.cuda.get_device_capability(device) == (9, 0)
    return fa3_func is not None and hopper


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, use_fa3: bool) -> torch.Tensor:
    """Causal attention on (batch, time, heads, head_dim) tensors; k/v may have fewer heads."""
    if use_fa3:
        out = fa3_func(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True)
        return (out[0] if isinstance(out, tuple) else out).to(q.dtype)  # versions differ
    rep = q.size(2) // k.size(2)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, use_fa3: bool):
        super().__init__()
        self.heads, self.kv_heads = cfg.num_heads, cfg.num_kv_heads
        self.head_dim, self.use_fa3 = cfg.model_dim // cfg.num_heads, use_fa3
        self.q = nn.Linear(cfg.model_dim, cfg.model_dim, bias=False)
        self.kv = nn.Linear(cfg.model_dim, 2 * self.kv_heads * self.head_dim, bias=False)
        self.proj = nn.Linear(cfg.model_dim, cfg.model_dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q = self.q(x).view(b, t, self.heads, self.head_dim)
        k, v = self.kv(x).view(b, t, 2, self.kv_heads, self.head_dim).unbind(dim=2)
        y = attend(rotate(q, cos, sin), rotate(k, cos, sin), v, self.use_fa3)
        return self.proj(y.reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, use_fa3: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(cfg.model_dim), nn.RMSNorm(cfg.model_dim)
        self.attn = Attention(cfg, use_fa3)
        self.fc = nn.Linear(cfg.model_dim, cfg.mlp_mult * cfg.model_dim, bias=False)
        self.fc_proj = nn.Linear(cfg.mlp_mult * cfg.model_dim, cfg.model_dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.fc_proj(F.relu(self.fc(self.norm2(x))).square())


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, use_fa3: bool = False):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.blocks = nn.ModuleList(Block(cfg, use_fa3) for _ in range(cfg.num_layers))
        self.norm = nn.RMSNorm(cfg.model_dim)
        half = cfg.model_dim // cfg.num_heads // 2
        self.register_buffer("inv_freq", 10000.0 ** (-torch.arange(half) / half), persistent=False)
        for name, p in self.named_parameters():
            if p.ndim == 2:  # GPT-2 init: residual projections shrink with depth
                std = 0.02 / math.sqrt(2 * cfg.num_layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        angles = torch.outer(torch.arange(idx.size(1), device=idx.device).float(), self.inv_freq)
        cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = F.linear(self.norm(x), self.embed.weight)  # tied: one matrix in the artifact
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


# ----------------------------------------------------------------------------- scoring


@torch.no_grad()
def score_range(
    model: nn.Module, tokens: np.ndarray, first: int, last: int, hp: Hyperparameters, tables: ByteTables, d: Dist
) -> torch.Tensor:
    """[loss sum, targets, bytes] over validation sequences [first, last), each target once."""
    t = hp.train_seq_len
    per_batch = max(1, hp.val_batch_tokens // (t * d.world))
    sums = torch.zeros(3, dtype=torch.float64, device=d.device)
    lo, hi = d.share(first, last)
    model.eval()
    for s in range(lo, hi, per_batch):
        e = min(hi, s + per_batch)
        x, y = to_batch(tokens[s * t : e * t + 1], t, d.device)
        with autocast(d.device):
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
        sums += torch.stack(
            [loss.double(), torch.tensor(y.numel(), device=d.device).double(), tables.count(x, y).sum().double()]
        )
    return d.all_reduce(sums)


def adapt(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    tokens: np.ndarray,
    first: int,
    last: int,
    hp: Hyperparameters,
    d: Dist,
) -> None:
    """SGD on validation sequences [first, last); the caller has already scored them."""
    t = hp.train_seq_len
    per_step = max(1, hp.val_batch_tokens // t)
    model.train()
    for s in range(first, last, per_step):
        e = min(last, s + per_step)
        lo, hi = d.share(s, e)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)  # a rank with no sequences still joins the all-reduce
        if hi > lo:
            x, y = to_batch(tokens[lo * t : hi * t + 1], t, d.device)
            with autocast(d.device):
                loss = model(x, y)
            (loss * (hi - lo) / (e - s)).backward()  # summed over ranks: the mean over [s, e)
        for p in model.parameters():
            d.all_reduce(p.grad)
        opt.step()


def score_with_ttt(
    model: nn.Module, tokens: np.ndarray, n_seq: int, hp: Hyperparameters, tables: ByteTables, d: Dist
) -> torch.Tensor:
    """Legal test-time training (RULES.md R-TTT-SCORE-FIRST): score each chunk, then train on it."""
    chunk = max(1, hp.ttt_chunk_tokens // hp.train_seq_len)
    opt = torch.optim.SGD(model.parameters(), lr=hp.ttt_lr, momentum=0.9)
    sums = torch.zeros(3, dtype=torch.float64, device=d.device)
    for first in range(0, n_seq, chunk):
        last = min(n_seq, first + chunk)
        sums += score_range(model, tokens, first, last, hp, tables, d)
        if last < n_seq:  # the last chunk is never trained on
            for _ in range(hp.ttt_epochs):
                adapt(model, opt, tokens, first, last, hp, d)
    return sums


def metrics(sums: torch.Tensor) -> tuple[float, float]:
    loss_sum, n_tokens, n_bytes = sums.tolist()
    return loss_sum / n_tokens, loss_sum / (math.log(2) * n_bytes)


# ----------------------------------------------------------------------------- quantization


def quantize_state(state: dict[str, torch.Tensor], bits: int) -> dict:
    """Per-row symmetric integers with fp16 scales for matrices; other tensors in fp16."""
    qmax = 2 ** (bits - 1) - 1  # int6 values live in int8 storage and compress well
    out = {}
    for name, w in state.items():
        w = w.float()
        if w.ndim != 2:
            out[name] = w.half()
            continue
        scale = (w.abs().amax(dim=1) / qmax).half()
        scale[scale == 0] = 1.0  # an all-zero row would divide by zero
        q = torch.round(w / scale.float()[:, None]).clamp(-qmax, qmax).to(torch.int8)
        out[name] = {"q": q, "scale": scale}
    return out


def dequantize_state(qstate: dict) -> dict[str, torch.Tensor]:
    return {
        name: v["q"].float() * v["scale"].float()[:, None] if isinstance(v, dict) else v.float()
        for name, v in qstate.items()
    }


def compress(data: bytes, name: str) -> tuple[bytes, str]:
    """The compressed bytes and the compressor used: zlib stands in for a missing module."""
    try:
        if name == "zstd":
            import zstandard

            return zstandard.ZstdCompressor(level=22).compress(data), name
        if name == "brotli":
            import brotli

            return brotli.compress(data, quality=11), name
    except ImportError:
        log(f"compressor:{name} unavailable, falling back to zlib")
    return zlib.compress(data, 9), "zlib"


def decompress(blob: bytes) -> tuple[bytes, str]:
    """The payload and the compressor's name, told apart by the stream's first bytes."""
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(blob), "zstd"
    try:
        return zlib.decompress(blob), "zlib"
    except zlib.error:  # brotli streams have no magic number
        import brotli

        return brotli.decompress(blob), "brotli"


# ----------------------------------------------------------------------------- stages


def lr_scale(step: int, train_ms: float, hp: Hyperparameters) -> float:
    """Linear warm-up, then linear warm-down over the last WARMDOWN_ITERS steps; the steps
    left are the fewer of the iteration count and what the wall-clock budget still allows."""
    left = float(hp.iterations - step)
    if step > 0:
        left = min(left, (hp.pgolf_train_budget_s * 1000 - train_ms) / (train_ms / step))
    warm = min(1.0, (step + 1) / max(1, hp.warmup_iters))
    return warm * min(1.0, max(0.0, left) / max(1, hp.warmdown_iters))


def train(hp: Hyperparameters, d: Dist) -> None:
    sp = load_tokenizer(hp.pgolf_tokenizer)
    files = shard_files(hp.pgolf_train_data, "train")
    log(f"train_shards:{len(files)}")
    cfg = ModelConfig(sp.vocab_size(), hp.num_layers, hp.model_dim, hp.num_heads, hp.num_kv_heads, hp.mlp_mult)
    use_fa3 = fa3_usable(d.device)
    log(f"vocab_size:{cfg.vocab_size} attention:{'fa3' if use_fa3 else 'sdpa'}")
    torch.manual_seed(hp.seed)
    base = GPT(cfg, use_fa3).to(d.device)
    log(f"model_params:{sum(p.numel() for p in base.parameters())}")
    compiled = hp.compile and d.device.type == "cuda"
    model = torch.compile(base) if compiled else base
    if d.world > 1:
        model = DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    accum = hp.grad_accum_steps or max(1, 8 // d.world)
    micro = hp.train_batch_tokens // (d.world * accum)
    if micro < hp.train_seq_len or micro % hp.train_seq_len:
        fail("TRAIN_BATCH_TOKENS / (world_size * grad_accum_steps) must be a multiple of TRAIN_SEQ_LEN")
    log(f"grad_accum_steps:{accum} micro_batch_tokens:{micro}")
    opt = torch.optim.AdamW(base.parameters(), lr=hp.lr, betas=(0.9, 0.95), weight_decay=0.0)
    stream = TokenStream(files)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        # Every rank reads the same span and keeps its own slice, so ranks never overlap.
        span = stream.take(d.world * micro + 1)
        return to_batch(span[d.rank * micro : (d.rank + 1) * micro + 1], hp.train_seq_len, d.device)

    if compiled:  # compile outside the timed loop; no optimizer step, so nothing is learned
        for _ in range(2):
            x, y = batch()
            with autocast(d.device):
                model(x, y).backward()
        opt.zero_grad(set_to_none=True)
    if hp.val_loss_every > 0:
        val_tokens, val_seqs = load_val_tokens(hp)
        tables = byte_tables(sp, d.device)

    step, train_ms = 0, 0.0
    while step < hp.iterations:
        sync(d.device)
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = hp.lr * lr_scale(step, train_ms, hp)
        total = torch.zeros((), device=d.device)
        for i in range(accum):
            x, y = batch()
            last = i == accum - 1
            with model.no_sync() if isinstance(model, DDP) and not last else nullcontext():
                with autocast(d.device):
                    loss = model(x, y) / accum
                loss.backward()
            total += loss.detach()
        if hp.grad_clip > 0:
            nn.utils.clip_grad_norm_(base.parameters(), hp.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(d.device)
        train_ms += 1000 * (time.perf_counter() - t0)
        step += 1
        timing = f"train_time:{train_ms:.0f}ms step_avg:{train_ms / step:.2f}ms"
        if step <= 10 or step % hp.train_log_every == 0 or step == hp.iterations:
            log(f"step:{step}/{hp.iterations} train_loss:{total.item():.4f} {timing}")
        if hp.val_loss_every > 0 and step % hp.val_loss_every == 0:
            vl, vb = metrics(score_range(base, val_tokens, 0, val_seqs, hp, tables, d))
            base.train()
            log(f"step:{step}/{hp.iterations} val_loss:{vl:.4f} val_bpb:{vb:.4f} {timing}")
        # Stop before a step that would overrun the budget; every rank must agree.
        over = train_ms + train_ms / step > hp.pgolf_train_budget_s * 1000
        over = d.all_reduce(torch.tensor(float(over), device=d.device), dist.ReduceOp.MAX).item()
        if over and step < hp.iterations:
            log(f"stopping_early: wallclock_cap train_time:{train_ms:.0f}ms step:{step}/{hp.iterations}")
            break
    if d.device.type == "cuda":
        log(
            f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB "
            f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB"
        )
    if d.rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(hp.pgolf_checkpoint)), exist_ok=True)
        torch.save({"config": asdict(cfg), "state": base.state_dict()}, hp.pgolf_checkpoint)
    log(f"checkpoint:{hp.pgolf_checkpoint}")


def quantize(hp: Hyperparameters, d: Dist) -> None:
    if d.rank != 0:  # one writer; the others wait at the stage barrier
        return
    if not os.path.isfile(hp.pgolf_checkpoint):
        fail(f"checkpoint not found: {hp.pgolf_checkpoint}")
    ckpt = torch.load(hp.pgolf_checkpoint, map_location="cpu", weights_only=True)
    buf = io.BytesIO()
    torch.save(
        {"config": ckpt["config"], "bits": hp.quant_bits, "weights": quantize_state(ckpt["state"], hp.quant_bits)}, buf
    )
    blob, name = compress(buf.getvalue(), hp.compressor)
    os.makedirs(os.path.dirname(os.path.abspath(hp.pgolf_artifact)), exist_ok=True)
    with open(hp.pgolf_artifact, "wb") as f:
        f.write(blob)
    code_bytes = os.path.getsize(__file__)
    fmt = f"int{hp.quant_bits}+{name}"
    log(f"Serialized model {fmt}: {len(blob)} bytes (payload:{len(buf.getvalue())})")
    log(f"Code size: {code_bytes} bytes")
    log(f"Total submission size {fmt}: {len(blob) + code_bytes} bytes")


def load_artifact(path: str, device: torch.device) -> tuple[GPT, str]:
    """The dequantized model and its format label, e.g. int8_zstd."""
    if not os.path.isfile(path):
        fail(f"artifact not found: {path}")
    try:
        with open(path, "rb") as f:
            data, name = decompress(f.read())
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model = GPT(ModelConfig(**payload["config"]), fa3_usable(device))
        model.load_state_dict(dequantize_state(payload["weights"]))
    except Exception as e:  # any corruption: report it in one line
        fail(f"{path}: not a readable artifact ({type(e).__name__}: {str(e)[:200]})")
    return model.to(device), f"int{payload['bits']}_{name}"


def evaluate(hp: Hyperparameters, d: Dist) -> None:
    # Reads only the artifact, the tokenizer and validation data (RULES.md R-NO-TRAIN-IN-EVAL).
    sp = load_tokenizer(hp.pgolf_tokenizer)
    model, fmt = load_artifact(hp.pgolf_artifact, d.device)
    if model.embed.num_embeddings != sp.vocab_size():
        fail(f"model vocab {model.embed.num_embeddings} != tokenizer vocab {sp.vocab_size()}")
    tables = byte_tables(sp, d.device)
    tokens, n_seq = load_val_tokens(hp)
    log(f"val_tokens:{n_seq * hp.train_seq_len}")
    passes = [(f"final_{fmt}_roundtrip_exact", score_range, (0, n_seq))]
    if hp.ttt_enabled:
        passes.append(("legal_ttt_exact", score_with_ttt, (n_seq,)))
    for label, scorer, args in passes:
        sync(d.device)
        t0 = time.perf_counter()
        sums = scorer(model, tokens, *args, hp, tables, d)
        sync(d.device)
        eval_ms = 1000 * (time.perf_counter() - t0)
        val_loss, val_bpb = metrics(sums)
        log(f"{label} val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")
        log(f"eval_time:{eval_ms:.0f}ms")
    if d.rank == 0:  # the last pass is the score
        result = {
            "val_loss": val_loss,
            "val_bpb": val_bpb,
            "val_tokens": int(sums[1].item()),
            "val_bytes": int(sums[2].item()),
            "eval_time_ms": eval_ms,
            "metric_label": label,
        }
        os.makedirs(os.path.dirname(os.path.abspath(hp.pgolf_result)), exist_ok=True)
        with open(hp.pgolf_result, "w") as f:
            json.dump(result, f, indent=2)


def main() -> None:
    hp = load_hparams()
    d = setup_distributed()
    log("Hyperparameters:")
    for key, value in asdict(hp).items():
        log(f"  {key}: {value}")
    log(f"seed:{hp.seed}")
    log(f"world_size:{d.world}")
    log(f"torch:{torch.__version__}")
    log(f"device:{d.device.type} threads:{torch.get_num_threads()}")
    run = {"train": train, "quantize": quantize, "eval": evaluate}
    for stage in [hp.pgolf_stage] if hp.pgolf_stage else STAGES:
        log(f"stage:{stage}")
        run[stage](hp, d)
        d.barrier()
    if d.world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
