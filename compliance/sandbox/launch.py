"""How a submission's processes are started, for the pipeline's stages and the dynamic checks alike.

One interpreter, or torchrun (--standalone) for several processes. CONTRACT_MARKER, what a
script that speaks pgolf's stage contract reads, is defined with that contract
(compliance/stage_contract.py) and kept importable from here.
"""

from __future__ import annotations

import sys

from ..stage_contract import CONTRACT_MARKER

__all__ = ["CONTRACT_MARKER", "launcher"]


def launcher(entry: list[str], nproc: int, python: str = sys.executable) -> list[str]:
    """argv running `entry` (a script and its arguments) in `nproc` processes."""
    if nproc <= 1:
        return [python, *entry]
    return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *entry]
