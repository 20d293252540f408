"""FlashAttention-2 API (`flash_attn`) backed by torch SDPA, for CPU dynamic checks.

Same signatures and returns as flash-attn 2: the output, or (output, softmax_lse, None) with
return_attn_probs=True (no attention-probability matrix is materialised). Computation is in
pgolf_shim_attention. `flash_attn.flash_attn_interface` is this module too, since scripts
import from either.
"""

from __future__ import annotations

import sys

import torch
from pgolf_shim_attention import AttnOptions, dense_attention, varlen_attention

__version__ = "2.8.3+pgolf.shim"
Tensor = torch.Tensor


def flash_attn_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    opts = _options(dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, return_attn_probs)
    return _fa2_result(dense_attention(q, k, v, opts), return_attn_probs)


def flash_attn_varlen_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
    block_table: Tensor | None = None,
):
    if block_table is not None:
        raise NotImplementedError("pgolf-shim: paged KV (block_table) has no CPU stand-in")
    opts = _options(dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, return_attn_probs)
    return _fa2_result(varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, opts), return_attn_probs)


def flash_attn_qkvpacked_func(
    qkv: Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    q, k, v = qkv.unbind(dim=2)
    return flash_attn_func(
        q, k, v, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic, return_attn_probs
    )


def flash_attn_kvpacked_func(
    q: Tensor,
    kv: Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    k, v = kv.unbind(dim=2)
    return flash_attn_func(
        q, k, v, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic, return_attn_probs
    )


def flash_attn_varlen_qkvpacked_func(
    qkv: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    q, k, v = qkv.unbind(dim=1)
    return flash_attn_varlen_func(
        q,
        k,
        v,
        cu_seqlens,
        cu_seqlens,
        max_seqlen,
        max_seqlen,
        dropout_p,
        softmax_scale,
        causal,
        window_size,
        softcap,
        alibi_slopes,
        deterministic,
        return_attn_probs,
    )


def flash_attn_varlen_kvpacked_func(
    q: Tensor,
    kv: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
):
    k, v = kv.unbind(dim=1)
    return flash_attn_varlen_func(
        q,
        k,
        v,
        cu_seqlens_q,
        cu_seqlens_k,
        max_seqlen_q,
        max_seqlen_k,
        dropout_p,
        softmax_scale,
        causal,
        window_size,
        softcap,
        alibi_slopes,
        deterministic,
        return_attn_probs,
    )


def flash_attn_with_kvcache(*args, **kwargs):
    raise NotImplementedError("pgolf-shim: flash_attn_with_kvcache has no CPU stand-in")


def _options(dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, return_lse) -> AttnOptions:
    return AttnOptions(causal, softmax_scale, tuple(window_size), softcap, dropout_p, alibi_slopes, return_lse)


def _fa2_result(result, return_attn_probs: bool):
    # flash-attn 2 returns (out, softmax_lse, S_dmask) when asked for probabilities.
    if return_attn_probs:
        out, lse = result
        return out, lse, None
    return result


flash_attn_interface = sys.modules[__name__]
sys.modules[__name__ + ".flash_attn_interface"] = flash_attn_interface
