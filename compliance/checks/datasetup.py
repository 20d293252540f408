"""R-TRAIN-VAL-OVERLAP: training data that holds validation documents, seen from the data setup.

Training on validation documents is invisible in the training script: it happens when
the data is prepared. A record shows it three ways, and this check reads all three:
- a setup command that gives a validation shard a training shard's name
  (`ln -s .../fineweb_val_000000.bin .../fineweb_train_000000.bin`) in the README or a
  shell script of the folder;
- a data-preparation script shipped with the record that splits fewer documents into
  validation than the canonical validation set holds (RULES.md §3: the first 50,000), so
  the training shards it writes start inside the documents the run is scored on
  (issue #2127), while the logs show the full validation set was scored;
- a log fingerprint the final audit used to exclude rows (`train_shards: 1499`, PR #2146):
  that asks for review, since the data may have come from elsewhere.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from .. import safeio
from ..context import RecordContext
from ..record import Record
from ..report import Finding
from ..rules import Rule, check
from ..static.config import UNKNOWN, ConfigResolver
from ..static.parse import StaticParseError, parse_source

_LINK = re.compile(r"\b(?:ln|cp|mv|rsync)\b[^\n;&|]*?(\S*fineweb_val_\S*)\s+(\S*fineweb_train_\S*)")
_PY_LINK = re.compile(
    r"\b(?:symlink|link|copy|copyfile|copy2|move|rename)\s*\(\s*[^,()]*fineweb_val[^,()]*,"
    r"[^()]*fineweb_train"
)
_LINK_CALL = re.compile(r"\b(?:symlink|link|copy|copyfile|copy2|move|rename|symlink_to|hardlink_to)\($")
_MAX_BYTES = 4 * 1024 * 1024
_DOUBLED = "datasets/datasets/"


@check(
    "record.train_val_overlap",
    kind="record",
    params={
        "validation_docs": 50000,
        "suspect_train_shards": [1499],
        "overlap_audit_since": "2026-04-29",
        "overlap_audit_from_pr": 1944,
    },
)
def train_val_overlap(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    record = ctx.record
    texts = dict(_setup_texts(record))
    yield from _linked_shards(rule, texts)
    scope = _audit_scope(rule, ctx)
    prints = list(_log_fingerprints(rule, record))
    for finding in _short_val_split(rule, ctx, texts, locally_prepared=bool(prints)):
        yield _scoped(finding, rule, scope)
    for finding in prints:
        yield _scoped(finding, rule, scope)


def _log_fingerprints(rule: Rule, record: Record) -> Iterator[Finding]:
    """What the final audit excluded rows on (PR #2146): `train_shards: 1499`, or data read from a
    doubled `datasets/datasets` path, the layout the CaseOps prep script leaves. The data may
    still have come from elsewhere, so a person decides."""
    suspect = {int(v) for v in rule.params.get("suspect_train_shards", [])}
    for log in record.scored_logs():
        shards = log.facts.train_shards
        if shards is not None and shards in suspect:
            yield rule.finding(
                f"the log reports train_shards: {shards}, the fingerprint of locally prepared data "
                "that overlaps the validation documents (issue #2127, excluded in PR #2146); "
                "the data's origin needs a person",
                file=log.rel,
                line=log.facts.lines.get("train_shards"),
                severity="review",
            )
        doubled = next(((k, v) for k, v in log.facts.hyperparams.items() if _DOUBLED in v.replace("\\", "/")), None)
        if doubled:
            yield rule.finding(
                f"the log's {doubled[0]} reads data from a doubled `{_DOUBLED}` path, the fingerprint of "
                "the CaseOps prep script's local output (issue #2127, excluded in PR #2146); the "
                "data's origin needs a person",
                file=log.rel,
                severity="review",
            )


def _audit_scope(rule: Rule, ctx: RecordContext) -> str:
    """Whether the final audit (PR #2146), which checked overlap fingerprints from its first PR on,
    covered this record: "audited", "before" (earlier rows stood) or "boundary" (its first day,
    with no PR number to tell)."""
    pr = ctx.options.pr
    first_pr = rule.params.get("overlap_audit_from_pr")
    if pr is not None and first_pr:
        return "audited" if pr.number >= int(first_pr) else "before"
    since = rule.params.get("overlap_audit_since")
    date = ctx.judged.date if ctx.judged else ctx.record.date
    if since is None or date is None or str(date) > str(since):
        return "audited"
    return "before" if str(date) < str(since) else "boundary"


def _scoped(finding: Finding, rule: Rule, scope: str) -> Finding:
    since, first_pr = rule.params.get("overlap_audit_since"), rule.params.get("overlap_audit_from_pr")
    if scope == "before":
        finding.severity = "warn"
        finding.message += (
            f" [records before the final audit (PR #{first_pr} on, from {since}) were accepted without this check]"
        )
    elif scope == "boundary" and finding.severity == "fail":
        finding.severity = "review"
        finding.message += (
            f" [the final audit covered PRs from #{first_pr}, opened on {since}, the day this "
            "record is dated: whether it applies depends on the PR (pass --pr-meta)]"
        )
    return finding


def _setup_texts(record: Record) -> Iterator[tuple[str, str]]:
    """The README, shell scripts and Python files of the folder (the entry script aside)."""
    entry = record.script.rel if record.script else None
    for item in record.entries:
        name = PurePosixPath(item.rel).name.lower()
        if item.problem or item.size > _MAX_BYTES or item.rel == entry:
            continue
        if name == "readme.md" or name.endswith((".sh", ".py", ".md", ".txt")) and not name.endswith(".log"):
            try:
                data = safeio.read_bytes(item, limit=_MAX_BYTES)
            except Exception:  # noqa: BLE001 - an unreadable file is R-RECORD-FILES' finding
                continue
            if not safeio.looks_binary(data):
                yield item.rel, safeio.decode_text(data)


def _linked_shards(rule: Rule, texts: dict[str, str]) -> Iterator[Finding]:
    for rel, text in texts.items():
        found = [
            (text.count("\n", 0, m.start()) + 1, m.group(0))
            for pattern in (_LINK, _PY_LINK)
            for m in pattern.finditer(text)
        ]
        if rel.endswith(".py"):
            found += _computed_links(text)
        for line, code in found:
            yield rule.finding(
                "a training shard is the validation shard: the data setup gives "
                f"`{_short(code)}` (training on validation data)",
                file=rel,
                line=line,
            )


def _computed_links(text: str) -> list[tuple[int, str]]:
    """`dst = src.replace("fineweb_val_", "fineweb_train_")` then `os.symlink(src, dst)`: a training
    shard's name made from a validation shard's, and the validation file linked or copied there."""
    tree = _module(text)
    if tree is None:
        return []
    renamed = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _val_to_train(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _LINK_CALL.search(ast.unparse(node.func) + "(") and len(node.args) >= 2:
            dest = node.args[1]
            if _val_to_train(dest) or any(isinstance(n, ast.Name) and n.id in renamed for n in ast.walk(dest)):
                out.append((node.lineno, ast.unparse(node)))
    return out


@functools.lru_cache(maxsize=16)
def _module(text: str) -> ast.Module | None:
    """A setup script parsed once (the link and the split checks both read it), None where it cannot be."""
    try:
        return parse_source(text)
    except StaticParseError:
        return None


def _val_to_train(node: ast.expr) -> bool:
    """`x.replace("..val..", "..train..")` or `re.sub("val", "train", x)`."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return node.func.attr in ("replace", "sub") and len(strings) >= 2 and "val" in strings[0] and "train" in strings[1]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


def _short_val_split(
    rule: Rule, ctx: RecordContext, texts: dict[str, str], locally_prepared: bool
) -> Iterator[Finding]:
    """`locally_prepared`: the logs carry the prep script's fingerprint, so a download step in
    the README does not stand for the data the run used."""
    canonical = int(rule.params.get("validation_docs", 50000))
    full = _scored_full_validation(ctx)
    for rel, text in texts.items():
        if not rel.endswith(".py") or "fineweb_train" not in text or "fineweb_val" not in text:
            continue
        split = _validation_split(text, _invocation_args(texts, PurePosixPath(rel).name))
        if split is None:
            continue
        docs, line = split
        if docs >= canonical:
            continue
        message = (
            f"{rel} puts only the first {docs:,} documents in validation and writes the rest as training "
            f"shards, so documents {docs:,}-{canonical - 1:,} of the {canonical:,}-document validation set "
            "are also training data (issue #2127)"
        )
        download = None if locally_prepared else _download_step(texts)
        if full and download:
            yield rule.finding(
                f"{message}; the logs score the full validation set ({full}), but the setup "
                f"downloads prepared data (`{download}`): whether the run used this script's "
                "output is not shown",
                file=rel,
                line=line,
                severity="review",
            )
        elif full:
            yield rule.finding(f"{message}; the logs score the full validation set ({full})", file=rel, line=line)
        else:
            yield rule.finding(
                f"{message}; whether the run trained on these shards is not shown",
                file=rel,
                line=line,
                severity="review",
            )


_DOWNLOAD = re.compile(
    r"\b(?:snapshot_download|hf_hub_download|huggingface-cli\s+download|hf\s+download|"
    r"cached_challenge_fineweb\.py)\b[^\n]{0,80}"
)


def _download_step(texts: dict[str, str]) -> str | None:
    """A setup step that fetches prepared shards rather than building them here."""
    for text in texts.values():
        m = _DOWNLOAD.search(text)
        if m:
            return _short(m.group(0))
    return None


def _scored_full_validation(ctx: RecordContext) -> str | None:
    """A log line showing the canonical validation token count (the full 50,000 documents)."""
    counts = [int(v) for v in _canonical_counts()]
    for log in ctx.record.scored_logs():
        value = log.facts.val_tokens
        if value is not None and any(abs(value - c) <= 65536 for c in counts):
            return f"val_tokens: {value} in {log.rel}"
    return None


def _canonical_counts() -> list[int]:
    from ..rules import load_ruleset

    rule = next((r for r in load_ruleset("base").rules if r.id == "R-FULL-VAL"), None)
    return list((rule.params.get("canonical_tokens") or {}).values()) if rule else []


def _invocation_args(texts: dict[str, str], script: str) -> dict[str, str]:
    """`python prepare.py --val-docs 50000` in the README or a shell script: options as run."""
    args: dict[str, str] = {}
    for text in texts.values():
        for line in re.sub(r"\\\n\s*", " ", text).splitlines():
            if script in line:
                for key, value in re.findall(r"--([\w-]+)[ =]([^\s\\]+)", line):
                    args[key.replace("-", "_").upper()] = value
    return args


def _validation_split(text: str, run_args: dict[str, str]) -> tuple[int, int] | None:
    """The document count at which a prep script switches from validation to training shards."""
    module = _module(text)
    if module is None:
        return None
    resolver = ConfigResolver.build(module, run_args, {})
    for node in ast.walk(module):
        if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
            continue
        val_side, train_side = _writes(node.body), _writes(node.orelse)
        if not (val_side == "val" and train_side == "train"):
            continue
        for bound in node.test.comparators:
            value = resolver.fold(bound)
            if value is UNKNOWN and isinstance(bound, ast.Attribute):
                value = resolver.attrs.get(bound.attr, UNKNOWN)
            if isinstance(value, int) and not isinstance(value, bool):
                return value, node.lineno
    return None


def _writes(stmts: list[ast.stmt]) -> str | None:
    """Which split a branch writes: the shard names its string literals carry."""
    texts = [n.value for s in stmts for n in ast.walk(s) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    joined = " ".join(texts)
    if "fineweb_val" in joined and "fineweb_train" not in joined:
        return "val"
    if "fineweb_train" in joined and "fineweb_val" not in joined:
        return "train"
    if any("val" in t for t in texts) and not any("train" in t for t in texts):
        return "val"
    if any("train" in t for t in texts) and not any("val" in t for t in texts):
        return "train"
    return None


_LOSSY = re.compile(r"""unicodedata\.normalize\(\s*["']NFK[CD]["']|\.casefold\(\)|\.lower\(\)""")
_TOKENIZER_WORK = re.compile(r"SentencePieceTrainer|spm_train|fineweb_val_")
_SIDECAR = "fineweb_val_bytes"


@check("record.tokenizer_change", kind="record")
def tokenizer_change(ctx: RecordContext, rule: Rule) -> Iterator[Finding]:
    """A tokenizer built on lossily normalized text scores fewer, different bytes (RULES.md §3, §6b).

    Lossless transforms that charge the original bytes through a per-token byte sidecar
    (CaseOps) were accepted; a casefold/NFKC tokenizer without one was never ruled on (PR #1604).
    """
    texts = dict(_setup_texts(ctx.record))  # data and tokenizer scripts, not the entry script
    script = ctx.record.script
    if any(_SIDECAR in text for text in [*texts.values(), script.text if script else ""]):
        return
    for rel, text in texts.items():
        if not rel.endswith(".py") or not _TOKENIZER_WORK.search(text):
            continue
        m = _LOSSY.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            yield rule.finding(
                f"the record's tokenizer pipeline normalizes text lossily (`{m.group(0)}`) and "
                "charges no original-byte sidecar: val_bpb counts the normalized bytes; a lossy "
                "tokenizer was never ruled on (PR #1604)",
                file=rel,
                line=line,
            )
            return
