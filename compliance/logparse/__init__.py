"""Read one Parameter Golf train log into LogFacts: the score, times, sizes and run facts.

Layouts seen in the official record folders, and the short names `LogFacts.layout` joins
with "+" (e.g. "source+hparams", "timestamped+torchrun+hparams"):
- "source": the script logs its own text first (a module docstring or imports), then a line
  of 40+ "=" or "-". Newer scripts print the hyperparameter dump before the text, some with a
  "Source code:" header. Shared copies replace the text by a placeholder comment
  `# [embedded source removed: N lines, sha256/16=...]`.
- "hparams": `Hyperparameters:` then `  key: value` lines; "kv_hparams":
  `--- Hyperparameters ---` then `key=value key=value ...` lines.
- "stdout": neither dump; `key:value` config lines before training, `step:N/M ...` lines.
- "timestamped": every line starts with a Unix time (`1776142360.538 `).
- "torchrun": torchrun banner or `[rankN]:` prefixes (only rank 0 lines are read).
A file that holds several runs one after another is read as its last run.

The score is the last final scoring pass of that run, its `_exact` twin preferred; never a
DIAGNOSTIC, pre-quantization, post-EMA or in-training validation line (RULES.md §2, §5).
(Which final line a record's claim rests on is decided per record, in compliance.scoring.)

Numbers no physical run can produce (NaN, infinities, negative times, sizes or scores, and
magnitudes beyond `PHYSICAL_LIMITS`) are never passed on as facts: the fact is left unknown
and `LogFacts.invalid` names the line, so the audit fails it with file:line.

One module per job: grammar.py (the line patterns), lines.py (timestamps, rank prefixes,
binary input), source.py, hparams.py and scores.py (a layout family each), state.py (runs and
bookkeeping), parser.py (the pass over the lines), facts.py (what comes out).
"""

from __future__ import annotations

from .facts import PHYSICAL_LIMITS, LogFacts, MetricLine, impossible
from .parser import parse_log, parse_log_bytes

__all__ = ["PHYSICAL_LIMITS", "LogFacts", "MetricLine", "impossible", "parse_log", "parse_log_bytes"]
