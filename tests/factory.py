"""Builds small, valid record folders in the official layout for tests to break."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# A small entry script with a plain, legal evaluation: the legality rules find its scoring pass.
SCRIPT = """import glob

import numpy as np
import torch
import torch.nn.functional as F


def load_val():
    path = sorted(glob.glob("data/fineweb_val_*.bin"))[0]
    return torch.from_numpy(np.fromfile(path, dtype=np.uint16, offset=1024).astype(np.int64))


def evaluate(model, tokens, seq_len=1024):
    loss_sum, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, tokens.numel() - 1 - seq_len, seq_len):
            x = tokens[start:start + seq_len]
            y = tokens[start + 1:start + seq_len + 1]
            loss_sum += F.cross_entropy(model(x), y, reduction="sum").item()
            count += seq_len
    return loss_sum / count


if __name__ == "__main__":
    print("val_loss", evaluate(torch.nn.Identity(), load_val()))
"""


def log_text(
    seed: int, bpb: float, loss: float, total: int = 15_863_489, train_ms: int = 598_000, code: int | None = None
) -> str:
    code_bytes = len(SCRIPT.encode()) if code is None else code
    model = total - code_bytes
    return "\n".join(
        [
            "train_loader:dataset:fineweb10B_sp1024 train_shards:25",
            "val_loader:shards pattern=./data/fineweb_val_*.bin tokens:62021632",
            "world_size:8 grad_accum_steps:1",
            f"seed:{seed}",
            f"step:1000/20000 train_loss:2.0234 train_time:{train_ms - 1000}ms "
            f"step_avg:{(train_ms - 1000) / 1000:.2f}ms",
            f"step:1001/20000 val_loss:{loss + 0.01:.4f} val_bpb:{bpb + 0.01:.4f} train_time:{train_ms}ms "
            f"step_avg:{train_ms / 1001:.2f}ms",
            f"stopping_early: wallclock_cap train_time:{train_ms}ms step:1001/20000",
            f"Code size: {code_bytes} bytes",
            f"Serialized model int8+zlib: {model} bytes (payload:1 raw_torch:1 payload_ratio:3.91x)",
            f"Total submission size int8+zlib: {total} bytes",
            f"final_int8_zlib_roundtrip val_loss:{loss:.4f} val_bpb:{bpb:.4f} eval_time:1401ms",
            f"final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}",
            "",
        ]
    )


def make_record(root: Path, seeds=(42, 314, 999), bpbs=(1.2001, 1.2003, 1.2005), name="2026-05-01_Test") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# Test record\n")
    (folder / "train_gpt.py").write_text(SCRIPT)
    for seed, bpb in zip(seeds, bpbs, strict=True):
        (folder / f"train_seed{seed}.log").write_text(log_text(seed, bpb, bpb * 1.69))
    mean = sum(bpbs) / len(bpbs)
    (folder / "submission.json").write_text(
        json.dumps(
            {
                "author": "t",
                "github_id": "t",
                "name": "test",
                "date": "2026-05-01",
                "track": "10min_16mb",
                "val_bpb": round(mean, 8),
                "seeds": list(seeds),
                "bytes_total": 15_863_489,
                "seed_results": {str(s): {"val_bpb": b} for s, b in zip(seeds, bpbs, strict=True)},
            }
        )
    )
    return folder


def snapshot(folder: Path) -> dict[str, tuple]:
    """Everything that would show a modification: names, link targets, sizes, mtimes, contents."""
    state = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            state[rel] = ("link", str(path.readlink()))
        elif path.is_file():
            stat = path.stat()
            state[rel] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            state[rel] = ("dir",)
    return state
