"""A record folder: which file is which, and what each says.

Files are recognised by content as well as by name, because the official
records use train.log, train_seed42.log, logs/*.txt, ternary_log_7.txt,
submission_binary.json and so on. Loading never raises for a bad file inside
the folder: it records a Problem that the R-RECORD-FILES rule reports. Which runs
and which final line of each the submission's score rests on is settled at load
time too (compliance.scoring), so every check reads the same answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import logparse, safeio, scoring, unpack
from .errors import InputError
from .report import Severity
from .submission import TRACK_ALIASES, Submission, load_submission

LOG_MARKERS = re.compile(rb"val_bpb|val_loss|train_time|step:\d")
SEED_IN_NAME = re.compile(r"seed[_\-]?(\d+)|_(\d+)\.(?:log|txt)$", re.IGNORECASE)
LOG_NAME_WORD = re.compile(r"[A-Za-z0-9_\-]{12,}")  # a file-name stem (or its prefix) quoted in the JSON
FOLDER_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})_")
SCRIPT_NAMES = ("train_gpt.py",)


@dataclass
class Problem:
    file: str | None
    message: str
    severity: Severity = "fail"
    kind: str = "unreadable"  # R-RECORD-FILES maps kinds to severities (param `problems`)


@dataclass
class LogRecord:
    rel: str
    facts: logparse.LogFacts
    seed: int | None
    duplicate_of: str | None = None  # set when another log carries the same seed and score
    excluded: str | None = None  # why the log is in the folder but not part of the submission
    score: logparse.MetricLine | None = None  # the final line the claim rests on (compliance.scoring)
    score_basis: str = ""  # why that line, in words


@dataclass
class Script:
    rel: str
    raw_bytes: int
    text: str  # decoded when the file is a self-extracting wrapper
    layers: list[str]
    sha256: str  # of the decoded text, comparable with a log's embedded source
    origin: str | None = None  # the folder file `text` came from, when the script execs a sibling file

    @property
    def source_rel(self) -> str:
        """The file whose lines the decoded text's line numbers refer to."""
        return self.origin or self.rel


@dataclass
class Record:
    root: Path
    entries: list[safeio.FolderEntry]
    kinds: dict[str, str] = field(default_factory=dict)
    submission: Submission | None = None
    submission_file: str | None = None
    logs: list[LogRecord] = field(default_factory=list)
    script: Script | None = None
    readme: str | None = None
    requirements: str | None = None
    problems: list[Problem] = field(default_factory=list)
    submission_text: str | None = None  # for the line of a key in findings
    sources: dict[str, str] = field(default_factory=dict)  # every Python file's text (the entry decoded)
    claim: scoring.Claim | None = None  # what submission.json's score rests on

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def track(self) -> str | None:
        if self.submission and self.submission.track:
            return self.submission.track
        return TRACK_ALIASES.get(self.root.parent.name)

    @property
    def folder_date(self) -> str | None:
        match = FOLDER_DATE.match(self.root.name)
        return match.group(1) if match else None

    @property
    def date(self) -> str | None:
        if self.folder_date:
            return self.folder_date
        if self.submission and self.submission.date:
            return self.submission.date[:10]
        return None

    def scored_logs(self) -> list[LogRecord]:
        return [log for log in self.logs if log.duplicate_of is None and log.excluded is None]

    @property
    def stray(self) -> bool:
        """Files that make no claim at all: no submission JSON, no README, no Python source."""
        if {"submission", "readme", "script", "module"} & set(self.kinds.values()):
            return False
        names = [Path(entry.rel).name.lower() for entry in self.entries]
        return not any(
            n == "readme.md" or n.endswith(".py") or (n.startswith("submission") and n.endswith(".json")) for n in names
        )

    def json_line(self, path: str) -> int | None:
        """The line of a key path like `seed_results.42.val_bpb` in the submission JSON, if found."""
        if not self.submission_text or not path:
            return None
        pos, line = 0, None
        for part in re.split(r"\.|\[\d+\]", path):
            if not part:
                continue
            found = self.submission_text.find(f'"{part}"', pos)
            if found < 0:
                break
            pos = found
            line = self.submission_text.count("\n", 0, found) + 1
        return line


def load_record(root: str | Path) -> Record:
    root = Path(root)
    record = Record(root=root, entries=safeio.list_folder(root))
    for entry in record.entries:
        if entry.problem:
            record.problems.append(Problem(entry.rel, entry.problem))
            continue
        try:
            _classify(record, entry)
        except InputError as exc:
            record.problems.append(Problem(entry.rel, exc.message))
    _mark_duplicate_logs(record)
    _mark_unsubmitted_logs(record)
    scoring.resolve(record)
    _report_seed_conflicts(record)
    return record


def _mark_unsubmitted_logs(record: Record) -> None:
    """Folders that keep experiment logs beside the submitted runs name the latter in submission.json."""
    if record.submission is None:
        return
    text = json.dumps(record.submission.raw)
    words = [w for w in LOG_NAME_WORD.findall(text) if "_" in w]
    scored = record.scored_logs()
    named = [log for log in scored if _named_in(Path(log.rel), text, words)]
    if 0 < len(named) < len(scored):
        for log in scored:
            if log not in named:
                log.excluded = "not among the logs submission.json names"


def _named_in(path: Path, text: str, words: list[str]) -> bool:
    """The file's name, or a stem specific enough to be one (`train` or `log` alone is prose)."""
    if re.search(rf"(?<![\w.\-]){re.escape(path.name)}(?![\w\-])", text):
        return True
    stem = path.stem
    specific = len(stem) >= 8 and bool(re.search(r"[_\-\d]", stem))
    if specific and re.search(rf"(?<![\w\-]){re.escape(stem)}(?![\w\-])", text):
        return True
    return specific and any(stem.startswith(w) for w in words)


def _report_seed_conflicts(record: Record) -> None:
    """Two runs of one seed with different scores, when the claim does not single one out."""
    by_seed: dict[int, list[LogRecord]] = {}
    for log in record.scored_logs():
        if log.seed is not None:
            by_seed.setdefault(log.seed, []).append(log)
    for seed, logs in by_seed.items():
        for log in logs[1:]:
            record.problems.append(
                Problem(
                    log.rel,
                    f"seed {seed} also logged in {logs[0].rel} with another score",
                    "review",
                    kind="seed_conflict",
                )
            )


def _classify(record: Record, entry: safeio.FolderEntry) -> None:
    name = Path(entry.rel).name.lower()
    suffix = Path(name).suffix
    if suffix == ".json":
        _load_json(record, entry)
    elif suffix == ".py":
        _consider_script(record, entry)
    elif name == "readme.md":
        record.readme = _read_text(entry)
        record.kinds[entry.rel] = "readme"
    elif name == "requirements.txt":
        record.requirements = _read_text(entry)
        record.kinds[entry.rel] = "requirements"
    elif suffix in (".log", ".txt") or entry.rel.startswith("logs/"):
        _consider_log(record, entry)
    else:
        record.kinds[entry.rel] = "other"


def _read_text(entry: safeio.FolderEntry) -> str:
    data = safeio.read_bytes(entry)
    if safeio.looks_binary(data):
        raise InputError(entry.rel, "binary content where text was expected")
    return safeio.decode_text(data)


def _load_json(record: Record, entry: safeio.FolderEntry) -> None:
    is_named = Path(entry.rel).name.lower().startswith("submission")
    data = safeio.read_bytes(entry, limit=16 * 1024 * 1024)
    if not is_named and b"val_bpb" not in data:
        record.kinds[entry.rel] = "other"
        return
    submission = load_submission(data, entry.rel)  # InputError -> Problem
    if record.submission is None or Path(entry.rel).name == "submission.json":
        if record.submission is not None:
            record.problems.append(
                Problem(
                    record.submission_file,
                    "a second submission JSON exists; submission.json wins",
                    "warn",
                    kind="second_json",
                )
            )
        record.submission, record.submission_file = submission, entry.rel
        record.submission_text = data.decode("utf-8", "replace")
    else:
        record.problems.append(
            Problem(
                entry.rel,
                f"second submission JSON beside {record.submission_file}; ignored",
                "warn",
                kind="second_json",
            )
        )
    record.kinds[entry.rel] = "submission"


def _consider_log(record: Record, entry: safeio.FolderEntry) -> None:
    data = safeio.read_bytes(entry)
    if safeio.looks_binary(data):
        if entry.rel.endswith(".log"):
            record.problems.append(Problem(entry.rel, "binary content in a log file"))
        record.kinds[entry.rel] = "other"
        return
    if not entry.rel.endswith(".log") and not LOG_MARKERS.search(data[: 4 * 1024 * 1024]):
        record.kinds[entry.rel] = "other"  # notes, not a train log
        return
    facts = logparse.parse_log_bytes(data)
    record.logs.append(LogRecord(entry.rel, facts, facts.seed if facts.seed is not None else seed_from_name(entry.rel)))
    record.kinds[entry.rel] = "log"


def seed_from_name(rel: str) -> int | None:
    match = SEED_IN_NAME.search(Path(rel).name)
    if not match:
        return None
    return int(match.group(1) or match.group(2))


def _consider_script(record: Record, entry: safeio.FolderEntry) -> None:
    raw = _read_text(entry)
    name = Path(entry.rel).name
    current = record.script
    is_entry = name in SCRIPT_NAMES or (current is None and ("__main__" in raw or unpack.is_wrapper(raw)))
    record.sources[entry.rel] = raw
    if not is_entry:
        record.kinds[entry.rel] = "module"
        return
    if current is not None:
        record.kinds[current.rel] = "module"
    record.script = _decode_script(entry, raw, _sibling_reader(record, entry))
    record.sources[entry.rel] = record.script.text
    record.kinds[entry.rel] = "script"


def _sibling_reader(record: Record, entry: safeio.FolderEntry) -> Callable[[str], str | None]:
    """Reads a file beside the script (inside the folder), for a script that execs it."""
    folder = str(Path(entry.rel).parent)

    def read(name: str) -> str | None:
        rel = name if folder == "." else f"{folder}/{name}"
        sibling = next((e for e in record.entries if e.rel == rel), None)
        return None if sibling is None else _read_text(sibling)

    return read


def _decode_script(entry: safeio.FolderEntry, raw: str, sibling: Callable[[str], str | None] | None = None) -> Script:
    try:
        decoded = unpack.decode_script(raw, sibling=sibling)
        text, layers = decoded.text, decoded.layers
    except unpack.UnpackError as exc:
        raise InputError(entry.rel, f"self-extracting script could not be decoded: {exc}") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    origin = None
    if decoded.origin is not None:
        folder = str(Path(entry.rel).parent)
        origin = decoded.origin if folder == "." else f"{folder}/{decoded.origin}"
    return Script(entry.rel, entry.size, text, layers, digest, origin)


def _mark_duplicate_logs(record: Record) -> None:
    """train.log is often a copy of one seed's log; count each run once."""
    by_seed: dict[int, LogRecord] = {}
    for log in sorted(record.logs, key=lambda lg: (seed_from_name(lg.rel) is None, lg.rel)):
        if log.seed is None:
            continue
        first = by_seed.get(log.seed)
        if first is None:
            by_seed[log.seed] = log
        elif _same_score(first, log):
            log.duplicate_of = first.rel
    record.logs.sort(key=lambda lg: lg.rel)


def _same_score(a: LogRecord, b: LogRecord) -> bool:
    sa, sb = a.facts.score, b.facts.score
    if sa is None or sb is None:
        return sa is sb
    return sa.val_bpb == sb.val_bpb and sa.val_loss == sb.val_loss
