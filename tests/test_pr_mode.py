"""pgolf-check on a single script and on the record folders a git range adds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .factory import make_record

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]
FIXTURES = Path(__file__).parent / "fixtures" / "static"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def pr_repo(tmp_path: Path, folders: int = 1, touch_outside: bool = False) -> Path:
    repo = tmp_path / "pg"
    (repo / "records" / "track_10min_16mb").mkdir(parents=True)
    (repo / "README.md").write_text("challenge\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    for i in range(folders):
        make_record(repo / "records" / "track_10min_16mb", name=f"2026-05-0{i + 1}_Test{i}")
    if touch_outside:
        (repo / "README.md").write_text("changed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pr")
    return repo


def run_json(*args: str) -> tuple[int, dict]:
    proc = subprocess.run(CHECK + list(args) + ["--format", "json"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_pr_adding_one_clean_folder_passes(tmp_path):
    repo = pr_repo(tmp_path)
    code, report = run_json("--git", str(repo), "--range", "HEAD~1..HEAD")
    assert code == 0, report
    assert [r["path"] for r in report["records"]] == ["records/track_10min_16mb/2026-05-01_Test0"]


def test_pr_with_several_folders_and_outside_changes_fails(tmp_path):
    repo = pr_repo(tmp_path, folders=2, touch_outside=True)
    code, report = run_json("--git", str(repo), "--range", "HEAD~1..HEAD")
    assert code == 1 and len(report["records"]) == 2
    messages = [f["message"] for r in report["records"] for f in r["findings"] if f["rule"] == "R-RECORD-FILES"]
    assert any("adds 2 record folders" in m for m in messages)
    assert any("outside its record folder: README.md" in m for m in messages)


def test_pr_audits_the_committed_tree_not_the_checkout(tmp_path):
    repo = pr_repo(tmp_path)
    (repo / "records" / "track_10min_16mb" / "2026-05-01_Test0" / "submission.json").write_text("{broken")
    code, _ = run_json("--git", str(repo), "--range", "HEAD~1..HEAD")
    assert code == 0


def test_bad_range_is_an_input_error(tmp_path):
    repo = pr_repo(tmp_path)
    proc = subprocess.run(CHECK + ["--git", str(repo), "--range", "nope..HEAD"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "git diff" in proc.stderr


def test_single_scripts_get_the_legality_rules():
    code, report = run_json(str(FIXTURES / "legal_score_first_ttt.py"), str(FIXTURES / "illegal_prequant_ttt.py"))
    assert code == 1
    legal, illegal = report["records"]
    assert legal["verdict"] == "pass" and illegal["verdict"] == "fail"
    assert any(f["rule"] == "R-NO-PREQUANT-TTT" and f["line"] for f in illegal["findings"])
