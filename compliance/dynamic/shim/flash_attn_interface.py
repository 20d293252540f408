"""FlashAttention-3 API (`flash_attn_interface`) backed by torch SDPA, for CPU dynamic checks.

Record scripts import `flash_attn_func` / `flash_attn_varlen_func` from the Hopper build of
flash-attention; this module has the same signatures and return values (the output, or
(output, softmax_lse) with return_attn_probs=True) and computes through pgolf_shim_attention.
FP8 descales, deterministic, num_splits, pack_gqa and sm_margin are GPU tuning knobs: accepted
and ignored. qv and attention_chunk change the result and are refused with NotImplementedError.
"""

from __future__ import annotations

import torch
from pgolf_shim_attention import AttnOptions, AttnResult, dense_attention, varlen_attention

Tensor = torch.Tensor


def flash_attn_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    softmax_scale: float | None = None,
    causal: bool = False,
    qv: Tensor | None = None,
    q_descale: Tensor | None = None,
    k_descale: Tensor | None = None,
    v_descale: Tensor | None = None,
    window_size: tuple[int, int] = (-1, -1),
    attention_chunk: int = 0,
    softcap: float = 0.0,
    num_splits: int = 1,
    pack_gqa: bool | None = None,
    deterministic: bool = False,
    sm_margin: int = 0,
    return_attn_probs: bool = False,
) -> AttnResult:
    _refuse(qv, attention_chunk)
    opts = AttnOptions(causal, softmax_scale, tuple(window_size), softcap, return_lse=return_attn_probs)
    return dense_attention(q, k, v, opts)


def flash_attn_varlen_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    seqused_q: Tensor | None = None,
    seqused_k: Tensor | None = None,
    softmax_scale: float | None = None,
    causal: bool = False,
    qv: Tensor | None = None,
    q_descale: Tensor | None = None,
    k_descale: Tensor | None = None,
    v_descale: Tensor | None = None,
    window_size: tuple[int, int] = (-1, -1),
    attention_chunk: int = 0,
    softcap: float = 0.0,
    num_splits: int = 1,
    pack_gqa: bool | None = None,
    deterministic: bool = False,
    sm_margin: int = 0,
    return_attn_probs: bool = False,
) -> AttnResult:
    _refuse(qv, attention_chunk)
    opts = AttnOptions(causal, softmax_scale, tuple(window_size), softcap, return_lse=return_attn_probs)
    return varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, opts, seqused_q, seqused_k)


def flash_attn_qkvpacked_func(
    qkv: Tensor,
    softmax_scale: float | None = None,
    causal: bool = False,
    q_descale: Tensor | None = None,
    k_descale: Tensor | None = None,
    v_descale: Tensor | None = None,
    window_size: tuple[int, int] = (-1, -1),
    attention_chunk: int = 0,
    softcap: float = 0.0,
    deterministic: bool = False,
    num_heads_q: int | None = None,
    sm_margin: int = 0,
    return_attn_probs: bool = False,
) -> AttnResult:
    q, k, v = _unpack_qkv(qkv, num_heads_q)
    return flash_attn_func(
        q,
        k,
        v,
        softmax_scale,
        causal,
        window_size=window_size,
        attention_chunk=attention_chunk,
        softcap=softcap,
        return_attn_probs=return_attn_probs,
    )


def flash_attn_with_kvcache(*args, **kwargs):
    raise NotImplementedError("pgolf-shim: flash_attn_with_kvcache has no CPU stand-in")


def _unpack_qkv(qkv: Tensor, num_heads_q: int | None) -> tuple[Tensor, Tensor, Tensor]:
    if qkv.dim() == 5:
        q, k, v = qkv.unbind(dim=-3)
        return q, k, v
    if qkv.dim() != 4 or num_heads_q is None:
        raise ValueError("flash-attention shim: qkv must be (B, T, 3, H, D), or (B, T, Hq + 2 Hk, D) with num_heads_q")
    num_heads_k = (qkv.shape[2] - num_heads_q) // 2
    q, k, v = qkv.split([num_heads_q, num_heads_k, num_heads_k], dim=-2)
    return q, k, v


def _refuse(qv: Tensor | None, attention_chunk: int) -> None:
    if qv is not None:
        raise NotImplementedError("pgolf-shim: FA3 qv (extra query-value term) has no CPU stand-in")
    if attention_chunk:
        raise NotImplementedError("pgolf-shim: FA3 attention_chunk has no CPU stand-in")
