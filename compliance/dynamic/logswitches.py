"""Switches a record's own logs show were on, when neither its README nor its dumps say so.

A script prints some lines only inside a branch a knob turns on (`if args.ngram_eval:` then
`log0(f"Starting N-gram eval: ...")`). When a submitted log carries such a line, the run that made
the record took that branch, and the traced run must take it too: otherwise the check judges a
configuration nobody submitted (an evaluation path that is off by default and on in the run
command, which the folder does not keep).

Conservative by design: a line counts only when its literal text is printed from one place in the
source, only knobs whose default is an off flag (0, "0", False) are turned on, and a value the
README or the logs give explicitly is never overridden.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from ..static.parse import StaticParseError, parse_source
from .knobs import Knob, KnobMap

MIN_PREFIX = 12  # shorter literal heads ("loss: ", "step:") are printed from many places
_RANK = re.compile(r"^\[(?:rank|default)\d+\]:\s?")  # torchrun's per-rank prefix
_OFF = (0, "0", False, "False", "false")


def switches_from_logs(texts: Iterable[str], kmap: KnobMap, logs: Iterable[str]) -> dict[str, str]:
    """{knob: "1"} for each off-by-default switch whose branch printed a line the logs carry."""
    heads: Counter[str] = Counter()
    gated: dict[str, frozenset[str]] = {}
    for text in texts:
        try:
            module = parse_source(text)
        except StaticParseError:
            continue  # knobs of an unparsable text are unknown anyway: nothing to switch on
        for head, switches in _printed(module, frozenset(), kmap):
            heads[head] += 1
            if switches:
                gated[head] = switches
    printed = _printed_lines(logs)
    on: dict[str, str] = {}
    for head, switches in gated.items():
        if heads[head] == 1 and any(line.startswith(head) for line in printed.get(head[:MIN_PREFIX], ())):
            on.update(dict.fromkeys(sorted(switches), "1"))
    return on


def _printed_lines(logs: Iterable[str]) -> dict[str, list[str]]:
    """Log lines by their first characters. A line must start with the head: a log that embeds the
    script's source carries every literal of it, but as `log0(f"...` lines, never at a line's start."""
    index: dict[str, list[str]] = {}
    for log in logs:
        for raw in log.splitlines():
            line = _RANK.sub("", raw.strip(), count=1).strip()
            if len(line) >= MIN_PREFIX:
                index.setdefault(line[:MIN_PREFIX], []).append(line)
    return index


def _printed(node: ast.AST, switches: frozenset[str], kmap: KnobMap) -> Iterator[tuple[str, frozenset[str]]]:
    """(literal head of a printed line, the switches that must be on for it to print), in source order."""
    if isinstance(node, ast.If):
        yield from _printed(node.test, switches, kmap)
        inside = switches | _switches_of(node.test, kmap)
        for stmt in node.body:
            yield from _printed(stmt, inside, kmap)
        for stmt in node.orelse:
            yield from _printed(stmt, switches, kmap)
        return
    if isinstance(node, ast.Call):
        head = _head(node.args[0]) if node.args else None
        if head is not None:
            yield head, switches
    for child in ast.iter_child_nodes(node):
        yield from _printed(child, switches, kmap)


def _head(arg: ast.expr) -> str | None:
    """The literal text a call's first argument starts with, long enough to tell its line apart."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        text = arg.value
    elif isinstance(arg, ast.JoinedStr):
        text = ""
        for part in arg.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            text += part.value
    else:
        return None
    text = text.strip()
    # a bare name ("NGRAM_EVAL_ORDER") is an environment key or a dict key, not a printed line
    printed = len(text) >= MIN_PREFIX and not text.isidentifier() and any(c.isalpha() for c in text)
    return text if printed and "\n" not in text else None


def _switches_of(test: ast.expr, kmap: KnobMap) -> frozenset[str]:
    """Knobs a branch's test requires to be truthy: `x`, `args.x`, and the operands of `and`."""
    operands = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    found = set()
    for operand in operands:
        name = (
            operand.id
            if isinstance(operand, ast.Name)
            else operand.attr
            if isinstance(operand, ast.Attribute)
            else None
        )
        knob = _knob(name, kmap) if name else None
        if knob is not None and knob.default in _OFF:
            found.add(knob.name)
    return frozenset(found)


def _knob(name: str, kmap: KnobMap) -> Knob | None:
    if name in kmap.knobs:
        return kmap.knobs[name]
    bound = kmap.by_binding(name)
    return bound[0] if len(bound) == 1 else None
