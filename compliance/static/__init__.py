"""Static legality analysis of a submission's entry script (RULES.md §3, §4, §7).

The script is parsed (never imported or run), its configuration resolved
against the run's environment, and its top level executed abstractly into an
ordered trace of operations (scores, updates, reads, ...) that the legality
checks in pgolf.compliance.checks.legality judge.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import activity, limits, logsignals, native, sources
from .config import ConfigResolver
from .events import Event
from .parse import StaticParseError, parse_source
from .runconfig import config_from_record
from .trace import Gate, Tracer

if TYPE_CHECKING:
    from ..record import Record

__all__ = ["ScriptContext", "StaticParseError", "build_script_context", "script_context_from_source", "bench_static"]


@dataclass
class ScriptContext:
    path: str
    source: str
    config: dict[str, str]
    record: Record | None = None
    _module: ast.Module | None = field(default=None, repr=False)
    _parse_error: str | None = field(default=None, repr=False)
    _events: list[Event] | None = field(default=None, repr=False)
    _resolver: ConfigResolver | None = field(default=None, repr=False)
    limits: list[str] = field(default_factory=list)  # analysis limits hit (R-ANALYSIS-LIMIT)
    gates: dict[int, Gate] = field(default_factory=dict)
    gate_states: dict[int, activity.GateState] = field(default_factory=dict)
    tracer: Tracer | None = field(default=None, repr=False)
    _reported: list[Event] | None = field(default=None, repr=False)
    native_leaks: list[native.Leak] = field(default_factory=list)

    @property
    def module(self) -> ast.Module | None:
        """The parsed tree, None when the source cannot be parsed (see parse_error)."""
        if self._module is None and self._parse_error is None:
            try:
                self._module = parse_source(self.source)
            except StaticParseError as exc:
                self._parse_error = str(exc)
                if exc.limit:
                    self.limits.append(str(exc))
                return None
            cuts = limits.cut_deep_subtrees(self._module)
            if cuts:
                self.limits.append(
                    f"{cuts} expression(s) nested deeper than {limits.MAX_TREE_DEPTH} levels were not analysed"
                )
        return self._module

    @property
    def parse_error(self) -> str | None:
        _ = self.module
        return self._parse_error

    @property
    def resolver(self) -> ConfigResolver | None:
        if self._resolver is None and self.module is not None:
            self._resolver = ConfigResolver.build(self.module, self.config, _import_aliases(self.module))
        return self._resolver

    @property
    def events(self) -> list[Event]:
        """The ordered trace, each event's activity judged; empty when the source cannot be parsed."""
        if self._events is None:
            module, resolver = self.module, self.resolver
            self._events = [] if module is None or resolver is None else self._trace(module, resolver)
        return self._events

    def _trace(self, module: ast.Module, resolver: ConfigResolver) -> list[Event]:
        code = sources.collect(self.record, module, self.path)
        self.limits.extend(f"helper not analysed: {problem}" for problem in code.problems)
        natives: dict[str, list[native.Leak]] = {}
        for rel, text in code.native.items():
            for leak in native.find_leaks(text, rel):
                natives.setdefault(leak.function, []).append(leak)
        self.native_leaks = [leak for leaks in natives.values() for leak in leaks]
        tracer = Tracer(module, resolver, helpers=code.helpers, natives=natives, path=self.path)
        try:
            events = limits.run_deep(tracer.run)
        except (RecursionError, MemoryError) as exc:
            self.limits.append(f"the trace stopped: {type(exc).__name__}")
            events = sorted(tracer.events, key=lambda e: e.seq)
        self.limits.extend(tracer.limits)
        self.gates = tracer.gates
        self.tracer = tracer
        self.gate_states = activity.resolve(events, tracer.gates, logsignals.from_record(self.record))
        return events

    @property
    def reported(self) -> list[Event]:
        """The scores behind the metric the logs report (all scores when that cannot be told)."""
        if self._reported is None:
            from .verdicts import reported_scores

            self._reported = reported_scores(self)
        return self._reported

    def chain(self, event: Event) -> str:
        return self.tracer.chain(event) if self.tracer else f"line {event.line}"

    def why(self, event: Event) -> str:
        """Why an event counts as on, off or unknown (the gates and log lines behind it)."""
        _ = self.events
        return activity.why(event, self.gate_states)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]


def _import_aliases(module: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def script_context_from_source(path: str, source: str, config: dict[str, str] | None = None) -> ScriptContext:
    return ScriptContext(path=path, source=source, config=dict(config or {}), record=None)


def build_script_context(record: Record) -> ScriptContext | None:
    script = getattr(record, "script", None)
    if script is None:
        return None
    return ScriptContext(path=script.source_rel, source=script.text, config=config_from_record(record), record=record)


def bench_static(path: str | Path) -> dict[str, Any]:
    """Parse + configuration + trace of one script, timed; for `make bench`."""
    source = Path(path).read_text(encoding="utf-8", errors="replace")
    start = time.perf_counter()
    ctx = script_context_from_source(Path(path).name, source)
    parsed = ctx.module is not None
    n_events = len(ctx.events)
    return {
        "path": str(path),
        "bytes": len(source.encode()),
        "parsed": parsed,
        "events": n_events,
        "seconds": round(time.perf_counter() - start, 4),
    }
