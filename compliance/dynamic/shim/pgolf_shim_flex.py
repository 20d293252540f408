"""FlexAttention on the CPU with gradients, as dense attention: a stand-in for
`torch.nn.attention.flex_attention.flex_attention`, whose CPU path has no backward.

The same computation as the kernel, written out: scores q.k * scale in float32 over the whole
(query, key) grid, `score_mod(score, b, h, q_idx, kv_idx)` applied with broadcast index tensors,
keys outside the block mask (its blocks, then its `mask_mod`) set to -inf, softmax, times v.
A query row that sees no key gives zeros and a log-sum-exp of -inf, as the kernel does. GQA
(`enable_gqa`) repeats each key/value head for its group of query heads. `return_aux` is refused.
"""

from __future__ import annotations

import math
from typing import Any

import torch

Tensor = torch.Tensor


def flex_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    score_mod: Any = None,
    block_mask: Any = None,
    scale: float | None = None,
    enable_gqa: bool = False,
    return_lse: bool = False,
    kernel_options: Any = None,
    *,
    return_aux: Any = None,
) -> Any:
    if return_aux is not None:
        raise NotImplementedError("pgolf-shim flex_attention: return_aux is not supported")
    batch, heads, t_q, dim = query.shape
    if key.shape[1] != heads:
        if not enable_gqa or heads % key.shape[1]:
            raise ValueError(f"flex_attention: {heads} query heads and {key.shape[1]} key heads without enable_gqa")
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
        value = value.repeat_interleave(heads // value.shape[1], dim=1)
    t_k = key.shape[2]
    scores = torch.matmul(query.float(), key.float().transpose(-2, -1)) * (scale or 1.0 / math.sqrt(dim))
    b, h, q_idx, kv_idx = _indices(batch, heads, t_q, t_k, query.device)
    if score_mod is not None:
        scores = score_mod(scores, b, h, q_idx, kv_idx)
    visible = _visible(block_mask, (b, h, q_idx, kv_idx), (batch, heads, t_q, t_k))
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    # rows that see no key are computed on zeros and then zeroed: -inf rows would put NaN in the gradients
    seen = torch.isfinite(scores.detach()).any(dim=-1, keepdim=True)
    safe = torch.where(seen, scores, 0.0)
    weights = torch.where(seen, torch.softmax(safe, dim=-1), 0.0)
    out = torch.matmul(weights, value.float()).to(query.dtype)
    if not return_lse:
        return out
    return out, torch.where(seen.squeeze(-1), torch.logsumexp(safe, dim=-1), float("-inf"))


def _indices(batch: int, heads: int, t_q: int, t_k: int, device: Any) -> tuple[Tensor, ...]:
    def along(n: int, axis: int) -> Tensor:
        shape = [1, 1, 1, 1]
        shape[axis] = n
        return torch.arange(n, device=device).view(shape)

    return along(batch, 0), along(heads, 1), along(t_q, 2), along(t_k, 3)


def _visible(block_mask: Any, idx: tuple[Tensor, ...], shape: tuple[int, int, int, int]) -> Tensor | None:
    """Where a query may see a key: inside the mask's blocks and where its mask_mod says so."""
    if block_mask is None:
        return None
    batch, heads, t_q, t_k = shape
    q_block, kv_block = block_mask.BLOCK_SIZE
    blocks = block_mask.to_dense().to(torch.bool)
    visible = blocks.repeat_interleave(q_block, dim=2).repeat_interleave(kv_block, dim=3)[..., :t_q, :t_k]
    mask_mod = getattr(block_mask, "mask_mod", None)
    if mask_mod is not None:
        visible = visible & mask_mod(*idx).to(torch.bool)
    return visible.expand(batch, heads, t_q, t_k)
