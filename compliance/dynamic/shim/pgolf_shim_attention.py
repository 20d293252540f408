"""Flash-attention stand-in on torch SDPA, shared by the FA3 and FA2 API shims.

Record scripts call flash-attention kernels that need a GPU; a CPU dynamic check runs the same
attention through `torch.nn.functional.scaled_dot_product_attention` instead. Conventions follow
flash-attention, not SDPA:
- dense q/k/v are (batch, seqlen, heads, head_dim); varlen ones are (total_tokens, heads,
  head_dim), cut into sequences by int32 `cu_seqlens` offsets;
- k/v may have fewer heads than q (GQA): q head h reads kv head h // (heads_q // heads_kv);
- `causal` and sliding windows are aligned to the bottom-right corner when seqlen_q != seqlen_k
  (query i sits at key position i + seqlen_k - seqlen_q); `window=(left, right)`, -1 = unbounded;
- a query row that sees no key gives zeros (SDPA would give NaN) and a log-sum-exp of +inf;
- the log-sum-exp is float32, (batch, heads, seqlen_q) dense and (heads, total_q) varlen.
Softcapping and ALiBi slopes go through an explicit float32 softmax, since SDPA has neither. A
log-sum-exp beside SDPA comes from torch's fused CPU flash kernel (else a no-grad recomputation),
and is detached: flash-attention's backward ignores any gradient on it.

FA3 builds before `return_attn_probs` existed always returned (out, softmax_lse), and some records
were written for them (`y, _ = flash_attn_func(q, k, v, causal=True)`). A plain tensor would be
unpacked along its batch dimension there: silently wrong when the batch is 2, an error otherwise.
So when the script's own frame unpacks an FA3 call into exactly two names, the pair is returned.
"""

from __future__ import annotations

import dis
import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import CodeType

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
AttnResult = Tensor | tuple[Tensor, Tensor]


@dataclass(frozen=True)
class AttnOptions:
    causal: bool = False
    softmax_scale: float | None = None
    window: tuple[int, int] = (-1, -1)
    softcap: float = 0.0
    dropout_p: float = 0.0
    alibi_slopes: Tensor | None = None
    return_lse: bool = False


def dense_attention(q: Tensor, k: Tensor, v: Tensor, opts: AttnOptions) -> AttnResult:
    """Attention over (B, T, H, D) tensors; returns out, or (out, lse) when opts.return_lse."""
    _check_dense(q, k, v)
    opts = _with_legacy_pair(opts)
    scale = opts.softmax_scale if opts.softmax_scale is not None else q.shape[-1] ** -0.5
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
    kh, vh = _expand_kv_heads(kh, vh, qh.shape[1])
    t_q, t_k = qh.shape[2], kh.shape[2]
    mask = _visibility(t_q, t_k, opts.causal, opts.window, q.device)
    if _needs_explicit_softmax(opts, mask):
        with torch.autocast(device_type=q.device.type, enabled=False):  # FA keeps softmax in fp32
            out, lse = _explicit_softmax_attention(qh, kh, vh, scale, mask, opts)
    else:
        out, lse = _sdpa(qh, kh, vh, scale, mask, opts)
    out = out.transpose(1, 2).to(q.dtype).contiguous()  # FA returns (B, T, H, D) contiguous
    # flash-attention's backward ignores any gradient on lse: it is a detached statistic
    return (out, lse.detach()) if opts.return_lse else out


def varlen_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    opts: AttnOptions,
    seqused_q: Tensor | None = None,
    seqused_k: Tensor | None = None,
) -> AttnResult:
    """Attention over packed (total, H, D) tensors, one dense call per cu_seqlens segment."""
    _check_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k)
    opts = _with_legacy_pair(opts)
    spans_q = _spans(cu_seqlens_q, seqused_q)
    spans_k = _spans(cu_seqlens_k, seqused_k)
    out_pieces: list[Tensor] = []
    lse_pieces: list[Tensor] = []
    cursor = 0
    for (q_start, q_end, q_stop), (k_start, k_end, _) in zip(spans_q, spans_k, strict=False):
        _append_gap(q, v, cursor, q_start, out_pieces, lse_pieces)
        out_seg, lse_seg = _segment(q, k, v, (q_start, q_end), (k_start, k_end), opts)
        out_pieces.append(out_seg)
        lse_pieces.append(lse_seg)
        cursor = q_end
        _append_gap(q, v, cursor, q_stop, out_pieces, lse_pieces)
        cursor = q_stop
    _append_gap(q, v, cursor, q.shape[0], out_pieces, lse_pieces)
    out = torch.cat(out_pieces, dim=0)
    if not opts.return_lse:
        return out
    return out, torch.cat(lse_pieces, dim=1)


_SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
_FA3_API = os.path.join(_SHIM_DIR, "flash_attn_interface.py")


def _with_legacy_pair(opts: AttnOptions) -> AttnOptions:
    return replace(opts, return_lse=True) if not opts.return_lse and fa3_caller_unpacks_pair() else opts


def fa3_caller_unpacks_pair() -> bool:
    """True when the first frame outside the shims called the FA3 API and unpacks what it returns
    into exactly two names (`out, lse = flash_attn_func(...)`, the pre-return_attn_probs API)."""
    frame, entry = sys._getframe(1), None
    while frame is not None and _in_shim(frame.f_code.co_filename):
        frame, entry = frame.f_back, frame
    if frame is None or entry is None or _abspath(entry.f_code.co_filename) != _FA3_API:
        return False
    return _unpacks_two_after(frame.f_code, frame.f_lasti)


@functools.lru_cache(maxsize=256)
def _abspath(filename: str) -> str:
    return os.path.abspath(filename)


def _in_shim(filename: str) -> bool:
    # "<string>", "<stdin>": code compiled from text is the script's, wherever the cwd is
    return not filename.startswith("<") and _abspath(filename).startswith(_SHIM_DIR + os.sep)


@functools.lru_cache(maxsize=4096)
def _unpacks_two_after(code: CodeType, last_offset: int) -> bool:
    # f_lasti is the call or one of its inline caches (3.11+); the first listed instruction
    # past it is what the script does with the result.
    following = next((i for i in dis.get_instructions(code) if i.offset > last_offset), None)
    return following is not None and following.opname == "UNPACK_SEQUENCE" and following.arg == 2


def _segment(
    q: Tensor, k: Tensor, v: Tensor, q_span: tuple[int, int], k_span: tuple[int, int], opts: AttnOptions
) -> tuple[Tensor, Tensor]:
    q_seg = q[q_span[0] : q_span[1]]
    k_seg, v_seg = k[k_span[0] : k_span[1]], v[k_span[0] : k_span[1]]
    if q_seg.shape[0] == 0 or k_seg.shape[0] == 0:
        return _empty_rows(q, v, q_seg.shape[0])
    out, lse = _dense_pair(q_seg[None], k_seg[None], v_seg[None], opts)
    if lse is None:  # not asked for: a placeholder the caller drops
        return out[0], out.new_empty(0)
    return out[0], lse[0]


def _empty_rows(q: Tensor, v: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    # Rows that see no key: zeros out, +inf log-sum-exp (flash-attention's convention).
    out = q.new_zeros(n_rows, q.shape[1], v.shape[-1])
    return out, torch.full((q.shape[1], n_rows), float("inf"), device=q.device)


def _spans(cu_seqlens: Tensor, seqused: Tensor | None) -> list[tuple[int, int, int]]:
    # (start, end of the used part, end of the segment) per sequence.
    offsets = [int(x) for x in cu_seqlens.tolist()]
    used = [int(x) for x in seqused.tolist()] if seqused is not None else None
    spans = []
    for i in range(len(offsets) - 1):
        start, stop = offsets[i], offsets[i + 1]
        end = min(stop, start + used[i]) if used is not None else stop
        spans.append((start, end, stop))
    return spans


def _append_gap(q: Tensor, v: Tensor, start: int, stop: int, outs: list, lses: list) -> None:
    # Tokens outside every used segment: flash-attention leaves them untouched; zeros here.
    if stop > start:
        out, lse = _empty_rows(q, v, stop - start)
        outs.append(out)
        lses.append(lse)


def _dense_pair(q: Tensor, k: Tensor, v: Tensor, opts: AttnOptions) -> tuple[Tensor, Tensor | None]:
    result = dense_attention(q, k, v, opts)
    return result if isinstance(result, tuple) else (result, None)


def _expand_kv_heads(k: Tensor, v: Tensor, n_heads_q: int) -> tuple[Tensor, Tensor]:
    n_heads_kv = k.shape[1]
    if n_heads_kv == n_heads_q:
        return k, v
    group = n_heads_q // n_heads_kv
    return k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)


def _visibility(t_q: int, t_k: int, causal: bool, window: Sequence[int], device) -> Tensor | None:
    """Boolean (t_q, t_k) mask of visible keys; None when SDPA can do without one."""
    left, right = int(window[0]), int(window[1])
    if causal:
        right = 0
    if right < 0 and left < 0:
        return None
    if causal and left < 0 and t_q == t_k:
        return None  # SDPA's is_causal (top-left) equals bottom-right for square masks
    q_pos = torch.arange(t_q, device=device)[:, None] + (t_k - t_q)
    k_pos = torch.arange(t_k, device=device)[None, :]
    mask = torch.ones(t_q, t_k, dtype=torch.bool, device=device)
    if right >= 0:
        mask &= k_pos <= q_pos + right
    if left >= 0:
        mask &= k_pos >= q_pos - left
    return mask


def _needs_explicit_softmax(opts: AttnOptions, mask: Tensor | None) -> bool:
    # the log-sum-exp alone does not need it (_log_sum_exp): SDPA keeps its fused backward
    if opts.softcap > 0.0 or opts.alibi_slopes is not None:
        return True
    return mask is not None and not bool(mask.any(dim=-1).all())


def _sdpa(
    q: Tensor, k: Tensor, v: Tensor, scale: float, mask: Tensor | None, opts: AttnOptions
) -> tuple[Tensor, Tensor | None]:
    """SDPA's output, and the log-sum-exp when asked: from torch's fused CPU flash kernel when it
    can serve the call (one pass, as fast as SDPA), else recomputed beside SDPA."""
    plain_causal = opts.causal and mask is None
    if opts.return_lse and mask is None and q.device.type == "cpu":
        fused = _cpu_flash_with_lse(q, k, v, scale, plain_causal, opts.dropout_p)
        if fused is not None:
            return fused
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=opts.dropout_p, is_causal=plain_causal, scale=scale
    )
    return out, (_log_sum_exp(q, k, scale, mask, plain_causal) if opts.return_lse else None)


def _cpu_flash_with_lse(
    q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool, dropout_p: float
) -> tuple[Tensor, Tensor] | None:
    kernel = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if kernel is None:
        return None
    try:  # a private op: any refusal (dtype, shape, build) falls back to the public path
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else q.dtype
        out, lse = kernel(q.to(dtype), k.to(dtype), v.to(dtype), dropout_p, causal, scale=scale)
    except (RuntimeError, TypeError):
        return None
    return out, lse


def _log_sum_exp(q: Tensor, k: Tensor, scale: float, mask: Tensor | None, causal: bool) -> Tensor:
    """The float32 softmax normaliser of SDPA's scores, outside autograd (every row sees a key)."""
    with torch.no_grad(), torch.autocast(device_type=q.device.type, enabled=False):
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
        if causal:
            mask = _causal_square(q.shape[2], q.device)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.logsumexp(scores, dim=-1)


def _explicit_softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, scale: float, mask: Tensor | None, opts: AttnOptions
) -> tuple[Tensor, Tensor | None]:
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if opts.softcap > 0.0:
        scores = opts.softcap * torch.tanh(scores / opts.softcap)
    if opts.alibi_slopes is not None:
        scores = scores + _alibi_bias(opts.alibi_slopes, q.shape[2], k.shape[2], q.shape[1], q.device)
    if opts.causal and mask is None:
        mask = _causal_square(q.shape[2], q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    seen_any = torch.isfinite(lse)
    probs = torch.exp(scores - torch.where(seen_any, lse, torch.zeros_like(lse))[..., None])
    if opts.dropout_p > 0.0:
        probs = F.dropout(probs, p=opts.dropout_p)
    out = torch.matmul(probs, v.float())
    lse = torch.where(seen_any, lse, torch.full_like(lse, float("inf")))
    return out, (lse if opts.return_lse else None)


def _causal_square(t: int, device) -> Tensor:
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()


def _alibi_bias(slopes: Tensor, t_q: int, t_k: int, n_heads: int, device) -> Tensor:
    # flash-attention: bias = -slope * |i + t_k - t_q - j|, slopes (H,) or (B, H).
    q_pos = torch.arange(t_q, device=device)[:, None] + (t_k - t_q)
    k_pos = torch.arange(t_k, device=device)[None, :]
    distance = (q_pos - k_pos).abs().float()
    slopes = slopes.float().reshape(-1, n_heads)[:, :, None, None]
    return -slopes * distance


def _check_dense(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("flash-attention shim: dense q, k, v must be (batch, seqlen, heads, head_dim)")
    _check_heads(q.shape[-2], k.shape[-2], v.shape[-2])
    if q.shape[0] != k.shape[0] or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"flash-attention shim: shapes q={tuple(q.shape)} k={tuple(k.shape)} v={tuple(v.shape)}")


def _check_varlen(q: Tensor, k: Tensor, v: Tensor, cu_q: Tensor, cu_k: Tensor) -> None:
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError("flash-attention shim: varlen q, k, v must be (total_tokens, heads, head_dim)")
    _check_heads(q.shape[-2], k.shape[-2], v.shape[-2])
    if cu_q.dim() != 1 or cu_k.dim() != 1 or cu_q.numel() != cu_k.numel() or cu_q.numel() < 1:
        raise ValueError("flash-attention shim: cu_seqlens_q and cu_seqlens_k must be 1-D of equal length")


def _check_heads(h_q: int, h_k: int, h_v: int) -> None:
    if h_k != h_v or h_k == 0 or h_q % h_k != 0:
        raise ValueError(f"flash-attention shim: {h_q} query heads cannot share {h_k} key/value heads")
