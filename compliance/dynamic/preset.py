"""The tiny preset, and the vocabulary a script expects.

Scripts are driven only through environment knobs; names differ between them, so the preset
sets every spelling (preset.yaml) and the report lists those a script ignores. Which knobs a
script reads, and what they drive, is knobs.py's to find.
"""

from __future__ import annotations

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


def vocab_size(reads: dict[str, object]) -> int:
    """The vocabulary the script expects: VOCAB_SIZE's default, else its tokenizer file's name."""
    value = reads.get("VOCAB_SIZE")
    try:
        # any default may come (a YAML or AST value); int() refuses the wrong ones with TypeError/ValueError
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        pass
    for default in reads.values():
        m = _TOKENIZER_VOCAB.search(str(default))
        if m:
            return int(m.group(1))
    return 1024
