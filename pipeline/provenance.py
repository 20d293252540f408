"""Where a record came from: versions, hardware, and hashes of everything that went in or out."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from pgolf.compliance import __version__
from pgolf.compliance.fsutil import sha256_file


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def torch_info() -> dict:
    """Asked of a child interpreter on GPU machines, so the pipeline itself never imports torch.

    Without nvidia-smi there is nothing CUDA could report, and the package metadata
    names the torch build without the seconds an import costs.
    """
    if shutil.which("nvidia-smi") is None:
        try:
            version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {"torch": version, "cuda": None, "cudnn": None, "gpus": []}
    code = (
        "import json,torch;c=torch.cuda.is_available();"
        "print(json.dumps({'torch':torch.__version__,'cuda':torch.version.cuda,"
        "'cudnn':torch.backends.cudnn.version() if c else None,"
        "'gpus':[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if c else []}))"
    )
    out = _run([sys.executable, "-c", code])
    if out is None:
        return {"torch": None, "cuda": None, "cudnn": None, "gpus": []}
    return json.loads(out.splitlines()[-1])


def collect(script: Path, tokenizer: Path, shards: list[Path], artifacts: dict[str, Path], runtime: dict) -> dict:
    info = torch_info()
    return {
        "pgolf_version": __version__,
        "pgolf_git_commit": _run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "runtime": runtime,
        "image_digest": os.environ.get("PGOLF_IMAGE_DIGEST"),
        "torch": info["torch"],
        "cuda": info["cuda"],
        "cudnn": info["cudnn"],
        "flash_attn_3": importlib.util.find_spec("flash_attn_interface") is not None,
        "gpus": info["gpus"],
        "nvidia_smi": _run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"])
        if shutil.which("nvidia-smi")
        else None,
        "sha256": {
            "code": sha256_file(script),
            "tokenizer": sha256_file(tokenizer),
            "shards": {p.name: sha256_file(p) for p in shards},
            "artifacts": {name: sha256_file(p) for name, p in artifacts.items() if p.is_file()},
        },
    }
