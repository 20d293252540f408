"""The tiny preset, and what a script reads from its environment.

Scripts are driven only through environment knobs; names differ between them, so the
preset sets every spelling and the report lists those a script ignores (read from its
decoded source: os.environ.get / os.getenv / os.environ[...] names).
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import yaml

PRESET_FILE = Path(__file__).with_name("preset.yaml")
_TOKENIZER_VOCAB = re.compile(r"_(\d{3,6})_bpe\.model")


@lru_cache(maxsize=1)
def tiny_preset() -> dict[str, str]:
    groups = yaml.safe_load(PRESET_FILE.read_text(encoding="utf-8"))
    return {k: str(v) for group in groups.values() for k, v in group.items()}


def env_reads(source: str) -> dict[str, object]:
    """Environment names the script reads, with their literal defaults (None when none)."""
    from ..static.parse import StaticParseError, parse_source
    try:
        module = parse_source(source)
    except StaticParseError:
        return {}
    reads: dict[str, object] = {}
    for node in ast.walk(module):
        name, default = _env_read(node)
        if name is not None:
            reads.setdefault(name, default)
    return reads


def _env_read(node: ast.AST) -> tuple[str | None, object]:
    if isinstance(node, ast.Call) and node.args and _is_const_str(node.args[0]):
        func = ast.unparse(node.func)
        if func.endswith(("environ.get", "getenv")):
            default = node.args[1] if len(node.args) > 1 else None
            return node.args[0].value, default.value if isinstance(default, ast.Constant) else None
    if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ") \
            and _is_const_str(node.slice):
        return node.slice.value, None
    return None, None


def _is_const_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def vocab_size(reads: dict[str, object]) -> int:
    """The vocabulary the script expects: VOCAB_SIZE's default, else its tokenizer file's name."""
    value = reads.get("VOCAB_SIZE")
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    for default in reads.values():
        m = _TOKENIZER_VOCAB.search(str(default))
        if m:
            return int(m.group(1))
    return 1024


def ignored(preset: dict[str, str], reads: dict[str, object]) -> list[str]:
    return sorted(k for k in preset if k not in reads)
