"""Static legality on fixtures in the shape of real submissions (issue #10, patterns).

Each fixture is a small script written in the shape of a labeled case of
../shared/corpus-dev (never its code), judged in the three forms of test_static
(plain, lzma+b85 wrapper, every identifier renamed). Fixtures with a sibling file
(a C kernel called through ctypes) are folders, audited as a record. Where the
analyzer is known to get a true case wrong, the case stays and is marked xfail
(strict): it turns into a failure the day the analyzer gets it right, so the mark
has to go. Record-level data setup (R-TRAIN-VAL-OVERLAP), the analysis limits and
the labeled corpus itself are checked here too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pgolf.compliance.audit import audit as audit_folders
from pgolf.compliance.audit import run_check
from pgolf.compliance.context import AuditOptions, RecordContext, judging_date, seed_rows
from pgolf.compliance.prmeta import PullRequest
from pgolf.compliance.record import load_record
from pgolf.compliance.report import verdict_of
from pgolf.compliance.rules import load_ruleset
from pgolf.compliance.rules.registry import get_check
from pgolf.compliance.static import build_script_context
from pgolf.compliance.static import events as ev

from .factory import make_record
from .test_static import FIXTURES, SHARED, audit, variant

FORMS = ("plain", "wrapped", "renamed")
OVERLAP = Path(__file__).resolve().parent / "fixtures" / "records" / "overlap"
CORPUS = SHARED / "corpus-dev"

# Why a true case is judged wrong today; the report to the lead carries the smallest snippet for each.


def _xfail(reason: str):
    return pytest.mark.xfail(strict=True, reason=reason)


# fixture -> (expected verdict, rule ids expected among the active non-info findings, {form: known miss})
PATTERNS: dict[str, tuple[str, set[str], dict[str, str]]] = {
    # legal: no active fail, no active non-info finding
    "legal_startup_glob": ("pass", set(), {}),
    "legal_train_hash_table": ("pass", set(), {}),
    "legal_position_table": ("pass", set(), {}),
    "legal_per_position_nll": ("pass", set(), {}),
    "legal_adapter_ttt": ("pass", set(), {}),
    "legal_slot_off_getattr": ("pass", set(), {}),
    "legal_slot_off_ifexp": ("pass", set(), {}),
    "legal_logspace_mixture": ("pass", set(), {}),
    "legal_native_causal": ("pass", set(), {}),
    "legal_ttt_or_sliding_by_config": ("pass", set(), {}),
    "legal_stride_written_twice": ("pass", set(), {}),
    "legal_count_the_better": ("pass", set(), {}),
    # legal, but a label trace cannot tell the records an online table keeps per position from
    # the finished table: review, never fail
    "legal_online_word_hints": ("review", {"R-SINGLE-PASS"}, {}),
    # illegal: fail, with the rule of the violation
    "illegal_ngram_key_helper": ("fail", {"R-NO-NGRAM-LEAK"}, {}),
    "illegal_full_rescore": ("fail", {"R-SINGLE-PASS"}, {}),
    "illegal_two_pass_shared_helper": ("fail", {"R-SINGLE-PASS"}, {}),
    "illegal_keep_the_better": ("fail", {"R-SINGLE-PASS"}, {}),
    "illegal_epoch_reset_score": ("fail", {"R-TTT-SCORE-FIRST"}, {}),
    "illegal_val_table_artifact": ("fail", {"R-NO-VAL-IN-TRAIN"}, {}),
    "illegal_gptq_train_after_budget": ("fail", {"R-GPTQ-CALIB"}, {}),
    "illegal_native_target_gate": ("fail", {"R-NO-TARGET-GATE"}, {}),
    "illegal_byte_ppm_mixture": ("fail", {"R-NORMALIZED"}, {}),
    "illegal_gptq_patched_forward_val": ("fail", {"R-GPTQ-CALIB"}, {}),
}


def _is_folder(name: str) -> bool:
    return (FIXTURES / name).is_dir()


def audit_folder_fixture(name: str, kind: str, root: Path):
    """A folder fixture as a record: its entry script in the given form, its siblings as they are."""
    folder = root / name
    shutil.copytree(FIXTURES / name, folder)
    (folder / "train_gpt.py").write_text(variant(f"{name}/train_gpt", kind), encoding="utf-8")
    ctx = build_script_context(load_record(folder))
    assert ctx is not None, f"no entry script found in {folder}"
    findings = []
    for rule in load_ruleset("legality").rules:
        if rule.kind == "script":
            findings.extend(get_check(rule.check)(ctx, rule))
    return ctx, findings


def judged(name: str, kind: str, root: Path):
    return audit_folder_fixture(name, kind, root) if _is_folder(name) else audit(variant(name, kind))


def raised_rules(findings) -> set[str]:
    return {f.rule for f in findings if f.active and f.severity != "info"}


def _cases():
    for name in sorted(PATTERNS):
        misses = PATTERNS[name][2]
        for kind in FORMS:
            marks = [_xfail(misses[kind])] if kind in misses else []
            yield pytest.param(name, kind, marks=marks, id=f"{name}-{kind}")


@pytest.mark.parametrize("name,kind", list(_cases()))
def test_pattern_verdicts(name: str, kind: str, tmp_path: Path) -> None:
    expected_verdict, expected_rules, _ = PATTERNS[name]
    ctx, findings = judged(name, kind, tmp_path)
    assert ctx.parse_error is None
    raised = raised_rules(findings)
    assert verdict_of(findings) == expected_verdict, [(f.rule, f.severity, f.line, f.message) for f in findings]
    assert expected_rules <= raised, raised
    if expected_verdict == "pass":
        assert not raised, raised


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_forms_agree(name: str, tmp_path: Path) -> None:
    """Renaming or packing a script changes neither its verdict nor the rules it breaks."""
    outcomes = {}
    for kind in FORMS:
        _, findings = judged(name, kind, tmp_path / kind)
        outcomes[kind] = (verdict_of(findings), sorted(raised_rules(findings)))
    assert len(set(map(str, outcomes.values()))) == 1, outcomes


@pytest.mark.parametrize(
    "name,key",
    [
        ("legal_slot_off_getattr", "SLOT_ENABLED"),  # getattr(args, "slot_enabled", False), no such field
        pytest.param(
            "legal_slot_off_ifexp",
            "SLOT",
            marks=_xfail(
                "the switched-off SLOT branch is reported as R-NO-ETLB against the other branch's score: its own score "
                "is off, so verdicts.val_scores drops it and the per-window test in checks/legality.py finds no window"
            ),
        ),
    ],
)
def test_switched_off_slot_is_reported_inactive(name: str, key: str) -> None:
    source = variant(name, "plain")
    _, off = audit(source)
    slot = [f for f in off if f.rule == "R-NO-SLOT"]
    assert verdict_of(off) == "pass"
    assert slot and all(not f.active and f.severity == "info" for f in slot), [(f.rule, f.message) for f in off]
    _, on = audit(source, {key: "1"})
    assert any(f.rule == "R-NO-SLOT" and f.active and f.severity == "fail" for f in on)


@pytest.mark.parametrize("name,key", [("legal_slot_off_getattr", "SLOT_ENABLED"), ("legal_slot_off_ifexp", "SLOT")])
def test_switched_on_slot_fails_in_every_form(name: str, key: str) -> None:
    for kind in FORMS:
        _, on = audit(variant(name, kind), {key: "1"})
        assert verdict_of(on) == "fail" and "R-NO-SLOT" in raised_rules(on), (kind, [(f.rule, f.message) for f in on])


def test_a_literal_another_print_writes_with_the_runs_value_shows_nothing(tmp_path: Path) -> None:
    """`stride:{STRIDE}` with the run's 64 writes what the comparison branch writes literally
    (`stride:64`): that text in the log is no sign that the branch ran."""
    ctx, _ = audit_folder_fixture("legal_stride_written_twice", "plain", tmp_path)
    states = {(gate.line, gate.branch): ctx.gate_states[gid].state for gid, gate in ctx.gates.items()}
    comparison = next(key for key in states if key[1] == "if")
    assert states[comparison] == "off", ctx.gate_states


def test_late_calibration_inside_a_reserved_budget_is_noted_not_failed() -> None:
    """PR #593 failed for calibrating after the 600 s; the accepted records stop training early to make room."""
    source = variant("illegal_gptq_train_after_budget", "plain")
    _, reserved = audit(source, {"MAX_WALLCLOCK_SECONDS": "585"})
    calib = [f for f in reserved if f.rule == "R-GPTQ-CALIB"]
    assert calib and all(f.severity == "info" for f in calib)
    assert verdict_of(reserved) == "pass"


def test_native_gate_points_at_the_kernel_write_and_the_token_read(tmp_path: Path) -> None:
    ctx, findings = audit_folder_fixture("illegal_native_target_gate", "plain", tmp_path)
    assert any(f.rule == "R-NO-TARGET-GATE" and f.severity == "fail" and "ngram_hint.c:" in f.message for f in findings)
    kernel = (FIXTURES / "illegal_native_target_gate" / "ngram_hint.c").read_text().splitlines()
    gates = ctx.of_kind(ev.NATIVE_GATE)
    assert gates, "the ctypes call into the gated kernel was not traced"
    detail = gates[0].detail
    assert detail["call"] == "ngram_hint_chunk" and detail["output"] == "hint_tok"
    assert "hint_tok[i]" in kernel[detail["kernel_line"] - 1]
    assert "= tokens[i]" in kernel[detail["seed_line"] - 1]  # the token being scored


def test_native_kernels_differ_only_in_the_gate() -> None:
    """The pair is commit-sensitive like the real one (PR #1437): the same script, one line of C apart."""
    legal, illegal = (FIXTURES / n / "ngram_hint.c" for n in ("legal_native_causal", "illegal_native_target_gate"))
    assert (FIXTURES / "legal_native_causal" / "train_gpt.py").read_text() == (
        FIXTURES / "illegal_native_target_gate" / "train_gpt.py"
    ).read_text()
    changed = set(legal.read_text().splitlines()) ^ set(illegal.read_text().splitlines())
    assert len(changed) <= 8 and any("is_boundary[cur]" in line for line in changed)


# --------------------------------------------------------------------------- record level: R-TRAIN-VAL-OVERLAP


def overlap_findings(folder: Path, pr: PullRequest | None = None):
    record = load_record(folder)
    rule = next(r for r in load_ruleset(record.track or "track_10min_16mb").rules if r.id == "R-TRAIN-VAL-OVERLAP")
    context = RecordContext(record, seed_rows(record), AuditOptions(pr=pr), judged=judging_date(record, pr))
    return list(run_check(rule, context))


def overlap_record(tmp_path: Path, date: str, *files: str, readme: str | None = None) -> Path:
    folder = make_record(tmp_path, name=f"{date}_CustomData")
    for name in files:
        shutil.copy(OVERLAP / name, folder / name)
    if readme is not None:
        (folder / "README.md").write_text(readme)
    return folder


@pytest.mark.parametrize(
    "script",
    [
        "setup_data.sh",
        "prepare_links.py",
    ],
)
@pytest.mark.parametrize("date", ["2026-04-20", "2026-05-01"])
def test_val_shards_linked_as_training_shards_fail(tmp_path: Path, script: str, date: str) -> None:
    """Training on the validation shard was never allowed (PR #44): no date makes it a warning."""
    found = overlap_findings(overlap_record(tmp_path, date, script))
    assert any(f.severity == "fail" and f.file == script for f in found), [(f.severity, f.message) for f in found]


@pytest.mark.parametrize("date,severity", [("2026-05-01", "fail"), ("2026-04-29", "review"), ("2026-04-20", "warn")])
def test_short_validation_split_is_judged_at_the_record_date(tmp_path: Path, date: str, severity: str) -> None:
    """--val-docs 10000 while the full 50,000-document split is scored (issue #2127): failed by the final
    audit (PRs #1944-#2140, the first opened on 2026-04-29), practice before it (RULES.md §3). On the audit's
    first day the date alone cannot place a record, so without the PR number a person decides."""
    folder = overlap_record(tmp_path, date, "prepare_data.py")
    found = overlap_findings(folder)
    assert [f.severity for f in found] == [severity], [(f.severity, f.message) for f in found]
    assert found[0].file == "prepare_data.py" and "10,000" in found[0].message
    report = audit_folders([str(folder)], AuditOptions())
    record_findings = [f for f in report.records[0].findings if f.rule == "R-TRAIN-VAL-OVERLAP"]
    assert [f.severity for f in record_findings] == [severity]
    if severity != "warn":
        assert report.records[0].verdict == severity


@pytest.mark.parametrize("number,severity", [(1944, "fail"), (1990, "fail"), (1943, "warn"), (1901, "warn")])
def test_short_validation_split_on_the_audits_first_day_goes_by_pr_number(
    tmp_path: Path, number: int, severity: str
) -> None:
    """A record opened on 2026-04-29 was audited when its PR is #1944 or later, accepted as practice before."""
    folder = overlap_record(tmp_path, "2026-04-29", "prepare_data.py")
    pr = PullRequest(number=number, created_at="2026-04-29T18:00:00+00:00")
    found = overlap_findings(folder, pr)
    assert [f.severity for f in found] == [severity], [(f.severity, f.message) for f in found]


def test_full_validation_split_from_the_run_command_is_clean(tmp_path: Path) -> None:
    readme = (
        "# Custom data\n\n```\npython prepare_data.py --docs docs_selected.jsonl --out ./data "
        "--sp tokenizer.model --val-docs 50000\n```\n"
    )
    found = overlap_findings(overlap_record(tmp_path, "2026-05-01", "prepare_data.py", readme=readme))
    assert found == []


# --------------------------------------------------------------------------- analysis limits: never pass

LIMITS = {
    "sum_600_terms": "\nX_TOTAL = " + " + ".join(["1"] * 600) + "\n",
    "brackets_2000_deep": "\nX_NESTED = " + "(" * 2000 + "1" + ")" * 2000 + "\n",
    "binops_100k": "\nX_WIDE = " + " + ".join(["x"] * 100_000) + "\n",
}


def with_tail(name: str, kind: str, tail: str) -> str:
    """The fixture in a form with the pathological line appended (renamed first: libcst cannot take the tail)."""
    return variant(name, kind) + tail if kind == "renamed" else _packed(variant(name, "plain") + tail, kind)


def _packed(source: str, kind: str) -> str:
    if kind == "plain":
        return source
    from pgolf.compliance.unpack import build_wrapper, decode_script

    decoded = decode_script(build_wrapper(source))
    assert decoded.wrapped
    return decoded.text


@pytest.mark.parametrize("kind", FORMS)
@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_analysis_limit_turns_a_pass_into_review(limit: str, kind: str) -> None:
    _, findings = audit(with_tail("legal_startup_glob", kind, LIMITS[limit]))
    assert verdict_of(findings) == "review", [(f.rule, f.message) for f in findings]
    assert any(f.rule == "R-ANALYSIS-LIMIT" and f.active for f in findings)


@pytest.mark.parametrize("kind", FORMS)
@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_analysis_limit_never_passes_an_illegal_script(limit: str, kind: str) -> None:
    """The issue's fail-open: appending a 600-term sum to an illegal fixture turned FAIL into PASS."""
    _, findings = audit(with_tail("illegal_ngram_key_helper", kind, LIMITS[limit]))
    assert verdict_of(findings) in ("fail", "review")
    assert any(f.rule == "R-ANALYSIS-LIMIT" and f.active for f in findings)


# --------------------------------------------------------------------------- the labeled corpus


def _corpus_entries() -> list:
    labels = CORPUS / "LABELS.yaml"
    if not labels.is_file():
        absent = pytest.mark.skip(reason=f"labeled corpus not found at {labels} (CI provides ../shared)")
        return [pytest.param(None, id="corpus-absent", marks=absent)]
    import yaml

    entries = yaml.safe_load(labels.read_text(encoding="utf-8"))["entries"]
    return [pytest.param(e, id=e["id"]) for e in entries]


@pytest.mark.slow
@pytest.mark.parametrize("entry", _corpus_entries())
def test_corpus_case(entry: dict) -> None:
    """Every legal case gets no fail, every illegal one a fail of the right family, every disputed one review
    (the verdicts of `make accuracy`, plain form; its own code judges, so the two cannot drift apart)."""
    from .bench import accuracy

    findings, _ = accuracy.legality_findings(CORPUS / entry["folder"])
    families = {
        r.id: r.family for name in ("track_10min_16mb", "track_non_record_16mb") for r in load_ruleset(name).rules
    }
    outcome = accuracy.judge(entry, "plain", findings, 0.0, families)
    shown = [(f.rule, f.severity, f.file, f.line) for f in outcome.decisive()]
    if entry["label"] == "legal":
        assert outcome.verdict != "fail", shown
    elif entry["label"] == "illegal":
        assert outcome.verdict == "fail" and outcome.right, (outcome.verdict, outcome.expected, shown)
    else:
        assert outcome.verdict == "review", (outcome.verdict, shown)
