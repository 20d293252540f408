"""Measure how far arithmetic alone moves a reported loss: the canary check's numeric margin.

A legal scorer is judged by the loss it reports, computed in the script's precision. The
distribution its bf16 logits define is proper, so the only shift that is not prediction is
the arithmetic of the loss: log-softmax in fp32 (or bf16) and the sums. This compares, for
near-uniform logits (a legal model close to the bound, where a shift matters most), the mean
loss as scripts compute it against the exact float64 loss of the same bf16 logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def measure(
    tokens: int = 16384, vocab: int = 1024, batch: int = 2048, trials: int = 5, scale: float = 0.5, seed: int = 0
) -> dict[str, float]:
    """Largest |mean shift| per token over `trials` canaries, for fp32 and bf16 loss arithmetic."""
    gen = torch.Generator().manual_seed(seed)
    worst = {"fp32_loss": 0.0, "bf16_loss": 0.0}
    for _ in range(trials):
        logits = (torch.randn(tokens, vocab, generator=gen) * scale).bfloat16()
        targets = torch.randint(4, vocab, (tokens,), generator=gen)
        exact = F.cross_entropy(logits.double(), targets, reduction="sum").item()
        for name, dtype in (("fp32_loss", torch.float32), ("bf16_loss", torch.bfloat16)):
            total = torch.zeros((), dtype=torch.float32)
            for start in range(0, tokens, batch):  # per-batch means summed in fp32, as scripts do
                part = F.cross_entropy(logits[start : start + batch].to(dtype), targets[start : start + batch])
                total += part.float() * min(batch, tokens - start)
            worst[name] = max(worst[name], abs(total.item() - exact) / tokens)
    return worst
