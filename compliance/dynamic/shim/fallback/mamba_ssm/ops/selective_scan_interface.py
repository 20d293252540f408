"""Mamba's selective scan (S6) as a loop over time in float32 torch, with autograd.

For every batch b, channel d and time t, with state h of size n (zero at t = 0):
    delta = softplus(delta + delta_bias) when delta_softplus, else delta + delta_bias
    h_t   = exp(delta_t * A[d]) * h_{t-1} + delta_t * B_t * u_t
    y_t   = <h_t, C_t> + D[d] * u_t,  then y_t * silu(z_t) when z is given
B and C are either fixed per channel (dim, n) or vary with time (batch, n, seqlen), or per group
(batch, groups, n, seqlen) shared by dim / groups channels. Real A only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _over_time(M: torch.Tensor, dim: int) -> torch.Tensor:
    """B or C as (batch, dim, n, seqlen), or (dim, n) when fixed."""
    if M.dim() == 2:
        return M.float()
    if M.dim() == 3:
        return M.float().unsqueeze(1)
    groups = M.shape[1]
    return M.float().repeat_interleave(dim // groups, dim=1)


def selective_scan_fn(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
):
    """u, delta, z: (batch, dim, seqlen); A: (dim, n); D, delta_bias: (dim,)."""
    if A.is_complex():
        raise NotImplementedError("selective_scan stand-in: complex A is not supported")
    dtype = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    dim = u.shape[1]
    Bt, Ct = _over_time(B, dim), _over_time(C, dim)
    decay = torch.exp(delta.unsqueeze(2) * A.float()[None, :, :, None])  # (batch, dim, n, seqlen)
    drive = delta.unsqueeze(2) * u.unsqueeze(2)
    drive = drive * (Bt if Bt.dim() == 4 else Bt[None, :, :, None])
    state = u.new_zeros(u.shape[0], dim, A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        state = decay[..., t] * state + drive[..., t]
        c = Ct[..., t] if Ct.dim() == 4 else Ct
        ys.append((state * c).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    out = y.to(dtype)
    return (out, state) if return_last_state else out


def selective_scan_ref(*args, **kwargs):
    """The package's reference name for the same computation."""
    return selective_scan_fn(*args, **kwargs)
