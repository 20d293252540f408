"""The reviewer's options of pgolf-check: selection, [tool.pgolf], exit policy, --explain, the
rule pages, --help, and the papercuts (a missing path among many, an empty range)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgolf.compliance import ruledocs
from pgolf.compliance.rules import load_ruleset, ruleset_names
from pgolf.compliance.selection import Selection

from .factory import log_text, make_record

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]
NEW_RULES = {"R-NO-TARGET-GATE", "R-NORMALIZED", "R-TRAIN-VAL-OVERLAP", "R-ANALYSIS-LIMIT"}
SUMMARY = re.compile(r"^\d+ fail · \d+ review · \d+ warn · \d+ records? (· \d+ errors? )?· \d+\.\d s$")


def check(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(CHECK + list(args), capture_output=True, text=True, timeout=180, cwd=cwd, env=env)


def verdict(proc: subprocess.CompletedProcess) -> str:
    return json.loads(proc.stdout)["verdict"]


@pytest.fixture
def oversized(tmp_path) -> Path:
    """A record whose seed 42 is over the size cap (R-SIZE fails) in a repository of its own."""
    (tmp_path / ".git").mkdir()
    folder = make_record(tmp_path / "records" / "track_10min_16mb")
    (folder / "train_seed42.log").write_text(log_text(42, 1.2001, 2.03, total=16_024_793))
    return folder


# --- rule selection and config change the verdict as documented


@pytest.mark.slow
def test_select_and_ignore_change_the_verdict(oversized):
    assert check(str(oversized), "--format", "json").returncode == 1
    ignored = check(str(oversized), "--format", "json", "--ignore", "R-SIZE")
    assert ignored.returncode == 0 and verdict(ignored) == "pass"
    assert all(f["rule"] != "R-SIZE" for r in json.loads(ignored.stdout)["records"] for f in r["findings"])
    assert json.loads(ignored.stdout)["settings"]["ignore"] == ["R-SIZE"]
    only_seeds = check(str(oversized), "--format", "json", "--select", "R-SEEDS,R-FULL-VAL")
    assert only_seeds.returncode == 0
    assert {f["rule"] for f in json.loads(only_seeds.stdout)["records"][0]["findings"]} <= {"R-SEEDS", "R-FULL-VAL"}
    by_kind = check(str(oversized), "--format", "json", "--select", "record", "--ignore", "R-SIZE")
    assert by_kind.returncode == 0
    assert check(str(oversized), "--select", "ALL", "--ignore", "R-NO").returncode == 1  # R-NO-*, not R-SIZE
    assert check(str(oversized), "--ignore", "R-S").returncode == 2  # a prefix ends at a dash: no such rule


def test_selectors_by_prefix_kind_and_condition():
    assert Selection.of(("R-DYN",)).wants("R-DYN-CANARY") and not Selection.of(("R-DYN",)).wants("R-SIZE")
    c3 = Selection.of(("C3",))
    assert c3.wants("R-TTT-SCORE-FIRST") and c3.wants("R-DYN-SCORE-FIRST") and not c3.wants("R-SIZE")
    assert Selection.of(("legality",)).wants("R-NO-SLOT") and not Selection.of(("legality",)).wants("R-SEEDS")
    assert not Selection.of((), ("dynamic",)).wants("R-DYN-RUN") and Selection.of((), ("dynamic",)).wants("R-SIZE")
    assert Selection.of(("R-NORMALIZED",)).wants("R-NORMALIZED")  # documented before a catalog has it
    ruleset = Selection.of((), ("script",)).apply_to(load_ruleset("track_10min_16mb"))
    assert ruleset.of_kind("script") == [] and ruleset.of_kind("record")


@pytest.mark.slow
def test_tool_pgolf_in_pyproject_changes_the_verdict(oversized, tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.pgolf]\nignore = ["R-SIZE"]\n')
    proc = check(str(oversized), "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["settings"]["config"] == str(pyproject)
    assert check(str(oversized), "--isolated").returncode == 1
    assert check(str(oversized), "--select", "R-SIZE").returncode == 0  # --ignore from the file still applies
    pyproject.write_text('[tool.pgolf]\nselect = ["R-SIZE"]\nfail-on = "fail"\n')
    assert check(str(oversized), "--ignore", "R-SIZE").returncode == 0
    assert check(str(oversized)).returncode == 1


@pytest.mark.parametrize(
    "table, fragment",
    [
        ('[tool.pgolf]\nselect = "R-SIZE"\n', "select must be a list of strings"),
        ("[tool.pgolf]\nfail_on_everything = true\n", "has no key 'fail_on_everything'"),
        ('[tool.pgolf]\nfail-on = "warn"\n', "fail-on must be fail or review"),
        ('[tool.pgolf]\nignore = ["R-NOPE"]\n', "--ignore R-NOPE: no rule"),
        ("[tool.pgolf\n", "not valid TOML"),
    ],
)
def test_a_bad_tool_pgolf_table_is_one_line_naming_the_file(oversized, tmp_path, table, fragment):
    (tmp_path / "pyproject.toml").write_text(table)
    proc = check(str(oversized))
    assert proc.returncode == 2 and fragment in proc.stderr and proc.stderr.count("\n") == 1
    if "no rule" not in fragment:
        assert str(tmp_path / "pyproject.toml") in proc.stderr


@pytest.mark.slow
def test_fail_on_and_exit_zero(tmp_path):
    folder = make_record(tmp_path)
    claims = json.loads((folder / "submission.json").read_text())
    claims.pop("seed_results")  # no per-seed claim picks one of the two runs of seed 42
    (folder / "submission.json").write_text(json.dumps(claims))
    (folder / "train_seed42_rerun.log").write_text(log_text(42, 1.1990, 2.02))  # one seed, two scores: review
    review = check(str(folder), "--format", "json", "--select", "R-RECORD-FILES")
    assert review.returncode == 3 and verdict(review) == "review"
    assert check(str(folder), "--select", "R-RECORD-FILES", "--fail-on", "fail").returncode == 0
    assert check(str(folder), "--select", "R-RECORD-FILES", "--fail-on", "review").returncode == 3
    (folder / "README.md").unlink()
    assert check(str(folder), "--fail-on", "fail").returncode == 1
    assert check(str(folder), "--exit-zero").returncode == 0
    assert check(str(folder), str(tmp_path / "gone"), "--exit-zero").returncode == 2  # bad input is never zero


# --- rule documentation lives in the project


def test_every_rule_of_every_ruleset_has_a_page_with_every_section():
    ids = {rule.id: rule for name in ruleset_names() for rule in load_ruleset(name).rules}
    docs = ruledocs.all_docs()
    assert set(ids) | NEW_RULES <= set(docs), sorted(set(ids) | NEW_RULES - set(docs))
    for rule_id, doc in docs.items():
        for section in ruledocs.SECTIONS:
            assert doc.section(section), f"{rule_id}: empty or missing '## {section}'"
        assert doc.summary and "\n" not in doc.summary
        assert set(doc.conditions) <= {"C1", "C2", "C3", "C4"}
        if rule_id in ids:
            assert doc.kind == ids[rule_id].kind, rule_id
    index = ruledocs.index_text()
    linked = set(re.findall(r"\]\((R-[A-Z0-9-]+)\.md\)", index))
    assert linked == set(docs), set(docs) ^ linked


def test_the_rule_pages_and_the_schema_are_package_resources():
    """Read through importlib.resources as installed; tests/test_packaging.py builds a real wheel
    and fails on any file of the package it leaves out."""
    from importlib.resources import files

    assert files("pgolf.compliance.rules").joinpath("docs", "R-SIZE.md").is_file()
    assert files("pgolf.compliance").joinpath("report-schema.json").is_file()


@pytest.mark.slow
def test_explain_prints_a_page_and_a_typo_is_one_line():
    proc = check("--explain", "r-size")
    assert proc.returncode == 0 and proc.stdout.startswith("# R-SIZE: ") and "## Illegal" in proc.stdout
    assert "\x1b" not in proc.stdout
    typo = check("--explain", "R-SIZ")
    assert typo.returncode == 2 and "did you mean R-SIZE" in typo.stderr and typo.stderr.count("\n") == 1


def test_help_lists_the_exit_codes():
    text = check("--help").stdout
    block = text[text.index("Exit status:") :]
    for code in ("0  pass", "1  fail", "2  could not check", "3  review"):
        assert code in block


# --- papercuts


@pytest.mark.slow
def test_a_missing_path_among_many_is_reported_and_the_rest_checked(tmp_path):
    good = make_record(tmp_path)
    proc = check(str(tmp_path / "nope"), str(good), "--format", "json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 2 and report["verdict"] == "error"
    missing, checked = report["records"]
    assert missing["error"].endswith("no such file or directory") and checked["verdict"] == "pass"
    assert proc.stderr.count("\n") == 1 and "nope" in proc.stderr
    human = check(str(tmp_path / "nope"), str(good))
    assert "[PASS]" in human.stdout and "[ERROR]" in human.stdout
    assert SUMMARY.match(human.stdout.rstrip().splitlines()[-1]) and "1 error" in human.stdout


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.mark.slow
def test_pr_mode_ends_with_the_summary_line_and_an_empty_range_suggests_the_first_parent(tmp_path):
    repo = tmp_path / "pg"
    (repo / "records" / "track_10min_16mb").mkdir(parents=True)
    (repo / "README.md").write_text("x\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "checkout", "-q", "-b", "pr")
    make_record(repo / "records" / "track_10min_16mb")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "record")
    proc = check("--git", str(repo), "--range", "main..pr")
    last = proc.stdout.rstrip().splitlines()[-1]
    assert proc.returncode == 0 and SUMMARY.match(last) and last.startswith("0 fail · 0 review · 0 warn · 1 record")
    head = _git(repo, "rev-parse", "pr")
    assert f"head {head[:12]}" in proc.stdout
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--no-ff", "-m", "merge", "pr")
    merge = _git(repo, "rev-parse", "HEAD")[:12]
    empty = check("--git", str(repo), "--range", "main..pr")
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1 and "changes nothing" in empty.stderr
    merged = check("--git", str(repo), "--range", "HEAD..HEAD")
    assert f"--range {merge}^1..{merge}" in merged.stderr
    again = check("--git", str(repo), "--range", f"{merge}^1..{merge}")
    assert again.returncode == 0 and SUMMARY.match(again.stdout.rstrip().splitlines()[-1])


@pytest.mark.slow
def test_from_files_audits_the_record_folders_that_hold_them(tmp_path):
    folder = make_record(tmp_path / "records" / "track_10min_16mb")
    files = [str(folder / "train_seed42.log"), str(folder / "README.md"), "docs/notes.md"]
    proc = check("--from-files", *files, "--format", "json")
    assert proc.returncode == 0 and [r["path"] for r in json.loads(proc.stdout)["records"]] == [str(folder)]
    nothing = check("--from-files", "docs/notes.md")
    assert nothing.returncode == 0 and "nothing to check" in nothing.stderr


def test_pgolf_init_takes_plain_names_only(tmp_path):
    from pgolf.pipeline.cli import main

    runner = CliRunner()
    for bad in ("../../x", "a/b", "..", ".hidden", "a b", ""):
        result = runner.invoke(main, ["init", bad, "--dir", str(tmp_path / "subs")])
        assert result.exit_code == 2 and "plain name" in result.output, bad
    assert not (tmp_path / "x").exists() and not (tmp_path / "subs").exists()
    ok = runner.invoke(main, ["init", "my_idea-2", "--dir", str(tmp_path / "subs")])
    assert ok.exit_code == 0 and (tmp_path / "subs" / "my_idea-2" / "train_gpt.py").is_file()


def test_the_recorded_command_keeps_its_quotes(tmp_path, monkeypatch):
    from pgolf.pipeline import cli as pipeline_cli

    seen = {}

    def fake_submit(request, progress):
        seen["commands"] = request.meta.commands
        return 0

    monkeypatch.setattr(pipeline_cli, "submit", fake_submit)
    monkeypatch.setattr(pipeline_cli, "_data_paths", lambda *a: None)
    argv = ["submit", "--blurb", "two words; and $(a shell)", "--seeds", "1 2", "--name", "x"]
    monkeypatch.setattr(sys, "argv", ["pgolf", *argv])
    result = CliRunner().invoke(pipeline_cli.main, argv)
    assert result.exit_code == 0, result.output
    assert shlex.split(seen["commands"][0]) == ["pgolf", *argv]


@pytest.mark.slow
def test_submit_ends_with_the_verdict_and_the_next_step_in_words(tmp_path, capsys):
    import io
    from dataclasses import replace

    import numpy as np

    from pgolf.compliance.progress import Progress
    from pgolf.compliance.sandbox import LocalRuntime
    from pgolf.compliance.shards import write_shard
    from pgolf.pipeline.profiles import get_profile
    from pgolf.pipeline.record_writer import RecordMeta
    from pgolf.pipeline.stages import DataPaths
    from pgolf.pipeline.submit import SubmitRequest, submit

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "val"):
        write_shard(data / f"fineweb_{split}_000000.bin", np.ones(64, dtype=np.uint16))
    (data / "tok.model").write_bytes(b"model")
    profile = replace(get_profile("cpu-smoke"), grace_s=1)
    meta = RecordMeta(
        name="words", author="t", github_id="t", blurb="b", profile=profile, commands=["x"], day="2026-05-01"
    )
    script = Path(__file__).parent / "fixtures" / "pipeline" / "contract_script.py"
    request = SubmitRequest(
        script=script,
        seeds=[1, 2, 3],
        profile=profile,
        data=DataPaths(train=data, val=data, tokenizer=data / "tok.model"),
        runtime=LocalRuntime(),
        work_dir=tmp_path / "runs",
        records_dir=tmp_path / "records",
        meta=meta,
        dynamic=False,
    )
    said = io.StringIO()
    assert submit(request, Progress(said)) == 0
    last = said.getvalue().rstrip().splitlines()[-1]
    folder = tmp_path / "records" / "track_cpu_smoke" / "2026-05-01_words"
    assert last == (
        f"pgolf: verdict PASS: the record is ready: open a pull request that adds only the folder "
        f"{folder} (exit status 0)"
    )
    report = capsys.readouterr().out
    assert SUMMARY.match(report.rstrip().splitlines()[-1]) and "\x1b" not in report
    assert "seed 3/3 (seed=3) eval ok in" in said.getvalue()
