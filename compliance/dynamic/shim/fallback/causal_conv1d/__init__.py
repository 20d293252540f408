"""`causal_conv1d` (a CUDA-only package) in plain torch, for CPU dynamic checks.

A depthwise causal 1-D convolution: out[b, d, t] = bias[d] + sum_k weight[d, k] * x[b, d, t - (W-1) + k],
inputs before the sequence start read as zero (or as `initial_states`), then the activation.
Found only where the real package is not installed (pgolf_shim_device puts this folder last).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__version__ = "1.5.0+pgolf.stand-in"
_ACTIVATIONS = (None, "silu", "swish")


def causal_conv1d_fn(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    seq_idx: torch.Tensor | None = None,
    initial_states: torch.Tensor | None = None,
    return_final_states: bool = False,
    final_states_out: torch.Tensor | None = None,
    activation: str | None = None,
):
    """x (batch, dim, seqlen), weight (dim, width), bias (dim,); initial_states (batch, dim, width-1)."""
    if activation not in _ACTIVATIONS:
        raise NotImplementedError(f"causal_conv1d stand-in: activation {activation!r}")
    if seq_idx is not None:
        raise NotImplementedError("causal_conv1d stand-in: seq_idx (packed sequences) is not supported")
    width = weight.shape[-1]
    if initial_states is None:
        padded = F.pad(x, (width - 1, 0))
    else:
        padded = torch.cat([initial_states.to(x.dtype), x], dim=-1)
    out = F.conv1d(
        padded, weight.unsqueeze(1).to(x.dtype), None if bias is None else bias.to(x.dtype), groups=x.shape[1]
    )
    if activation is not None:
        out = F.silu(out)
    if not return_final_states:
        return out
    final = padded[..., padded.shape[-1] - (width - 1) :]
    if final_states_out is not None:
        final_states_out.copy_(final)
        final = final_states_out
    return out, final


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None, cache_seqlens=None):
    """One decoding step: x (batch, dim) or (batch, dim, n); conv_state (batch, dim, width-1) rolls in place."""
    if activation not in _ACTIVATIONS:
        raise NotImplementedError(f"causal_conv1d stand-in: activation {activation!r}")
    if cache_seqlens is not None:
        raise NotImplementedError("causal_conv1d stand-in: cache_seqlens is not supported")
    single = x.dim() == 2
    steps = x.unsqueeze(-1) if single else x
    out, final = causal_conv1d_fn(steps, weight, bias, None, conv_state, True, None, activation)
    conv_state.copy_(final)
    return out.squeeze(-1) if single else out
