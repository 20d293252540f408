"""The preset for evaluation-time work: caps on the knobs that multiply what a script does at
evaluation, found in its decoded source by data flow (knobs.py), set by eval_preset.yaml.

The tiny preset shrinks training. Illegal scripts spend their time elsewhere: TTT epochs over
the whole validation set, SLOT steps per window, rescoring passes, n-gram orders and tables. Each
cap keeps the technique running (counts stay >= 1); a loop bounded by a literal cannot be capped
from outside and is reported, so the harness bounds the run another way (the canary's size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml

from .canary import DEFAULT_MEAN_DOC_LEN
from .knobs import Knob, KnobMap, as_number

RULES_FILE = Path(__file__).with_name("eval_preset.yaml")


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    return cast("dict[str, Any]", yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Capped:
    knob: str
    before: str
    after: str
    role: str  # what the data flow showed the knob drives
    line: int  # where (decoded source)

    def text(self) -> str:
        return f"{self.knob} {self.before}->{self.after} ({self.role}, line {self.line})"


@dataclass
class EvalPreset:
    env: dict[str, str] = field(default_factory=dict)  # the knobs it sets
    capped: list[Capped] = field(default_factory=list)
    unsettable: list[str] = field(default_factory=list)  # eval work no knob bounds

    def as_dict(self) -> dict[str, Any]:
        return {"capped": [c.__dict__ for c in self.capped], "unsettable": self.unsettable}


def eval_preset(kmap: KnobMap, resolved: dict[str, str], fixed: set[str], scored_tokens: int) -> EvalPreset:
    """Caps for every knob of `kmap` whose role multiplies evaluation work. `resolved`: the values the
    run would get (run configuration, tiny preset, --set); `fixed`: knobs set on purpose (the tiny
    preset, --set), never capped; `scored_tokens`: the canary's size, which sizes chunks."""
    r = rules()
    out = EvalPreset()
    for knob in kmap.knobs.values():
        if knob.name in fixed or knob.name in r["launcher"]:
            continue
        if not knob.roles and not _named(knob.name.upper(), r["document_names"]):
            continue
        raw = resolved.get(knob.name, knob.default)
        value = as_number(raw)
        if value is None or not math.isfinite(value):
            continue
        capped = _cap(knob, value, r, scored_tokens)
        if capped is not None:
            after, role = capped
            text = _format(after, raw)
            out.env[knob.name] = text
            out.capped.append(Capped(knob.name, str(raw), text, role, knob.roles.get(role, knob.line)))
    for loop in kmap.literal_update_loops:
        out.unsettable.append(f"an update loop bounded by the literal {loop.count} (line {loop.line})")
    if not kmap.parsed:
        out.unsettable.append("the decoded source did not parse: no knob of its evaluation could be found")
    return out


def _cap(knob: Knob, value: float, r: dict[str, Any], scored_tokens: int) -> tuple[float, str] | None:
    """(new value, role) when the knob's value is beyond its role's cap; None otherwise."""
    roles, name = set(knob.roles), knob.name.upper()
    if _named(name, r["protected_names"]):
        return None
    if not _integral(knob.default, value):
        return _size_cap(roles, name, value, r, scored_tokens)
    if value >= 1 and _named(name, r["document_names"]):
        most = max(1, int(scored_tokens / DEFAULT_MEAN_DOC_LEN * r["documents"]))
        return (most, "documents") if value > most else None
    if value >= 1 and _named(name, r["order_names"]) and roles & {"loop", "update_loop"}:
        return (r["order"], "loop") if value > r["order"] else None
    if roles == {"update_loop"} or roles == {"update_loop", "loop"}:
        return (r["update_steps"], "update_loop") if value > r["update_steps"] else None
    if roles == {"loop"}:
        return (r["loop_count"], "loop") if value > r["loop_count"] else None
    return _size_cap(roles, name, value, r, scored_tokens)


def _size_cap(
    roles: set[str], name: str, value: float, r: dict[str, Any], scored_tokens: int
) -> tuple[float, str] | None:
    """Tables, strides and chunk sizes (a float-written size still sizes)."""
    if "table_bits" in roles and value > r["table_bits"]:
        return r["table_bits"], "table_bits"
    if "table" in roles and not roles & {"update_loop", "loop"} and value > r["table_entries"]:
        return r["table_entries"], "table"
    windows = roles & {"chunk", "update_chunk"}
    if windows and _named(name, r["stride_names"]):
        return (r["stride_floor"], sorted(windows)[0]) if 1 <= value < r["stride_floor"] else None
    if windows:
        most = max(r["chunk_floor"], scored_tokens // r["chunks"])
        return (most, sorted(windows)[-1]) if value > most else None
    return None


def _integral(default: object, value: float) -> bool:
    """A count: the script's default is an int (or absent) and the value is whole."""
    if isinstance(default, float) or (
        isinstance(default, str)
        and as_number(default) is not None
        and not default.strip().lstrip("-").replace("_", "").isdigit()
    ):
        return False
    return float(value).is_integer()


def _named(name: str, words: list[str]) -> bool:
    return any(word in name for word in words)


def _format(value: float, like: object) -> str:
    """The capped value, written as the original was (an int stays an int)."""
    text = str(like)
    if isinstance(like, float) or ("." in text or "e" in text.lower()) and not isinstance(like, int):
        return repr(float(value))
    return str(int(value))
