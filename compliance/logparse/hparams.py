"""The configuration a run prints: the "hparams" dump (`  key: value`), the "kv_hparams" dump
(`key=value ...`) and the "stdout" layout's `key:value` lines before training."""

from __future__ import annotations

from .grammar import CONFIG_LINE, COUNTER, HPARAM, KV_LINE
from .state import ParserState


class HyperparamDumps(ParserState):
    def _hparam_line(self, i: int, line: str) -> bool:
        m = HPARAM.match(line)
        if not m:
            return False
        self._hparam(m.group(1), (m.group(2) or "").strip(), i + 1)
        return True

    def _kv_line(self, i: int, line: str) -> bool:
        if not KV_LINE.match(line):
            return False
        for token in line.split():
            key, _, value = token.partition("=")
            self._hparam(key, value, i + 1)
        return True

    def _on_hparams(self, n: int, line: str) -> None:
        self._maybe_new_run(n - 1)
        kv = line.startswith("-")
        self.mode = "kv" if kv else "hparams"
        self.layout.add("kv_hparams" if kv else "hparams")
        self.run.lines["hyperparams"] = n

    def _maybe_config(self, n: int, line: str) -> None:
        if not self.run.training_started and CONFIG_LINE.match(line):
            self._on_config(n, line)

    def _on_config(self, n: int, line: str) -> None:
        if COUNTER.search(line):
            return
        for token in line.split():
            key, _, value = token.partition(":")
            self._hparam(key, value, n)
        self.run.output_seen = True

    def _fill_from_hyperparams(self) -> None:
        for name, key in (("seed", "seed"), ("world_size", "world_size"), ("planned_steps", "iterations")):
            raw = self.run.hyperparams.get(key, "")
            if not raw.isdigit():
                continue
            old, where = self.run.values.get(name), self.run.lines[f"hyperparams.{key}"]
            if old is None:
                self.run.values[name], self.run.lines[name] = int(raw), where
            elif old != int(raw):
                msg = f"hyperparameter {key}={raw} but {name} reads {old} at line {self.run.lines[name]}"
                self.notes.append((where, msg))
