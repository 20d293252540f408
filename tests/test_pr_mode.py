"""pgolf-check on a single script and on the record folders a git range adds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .factory import make_record

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]
FIXTURES = Path(__file__).parent / "fixtures" / "static"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True
    )


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


def test_pr_with_several_folders_and_outside_changes_warns_and_judges_each(tmp_path):
    # accepted every time it happened (PR #39, #65, #77, #542, #1868): a warning, and every folder is audited
    repo = pr_repo(tmp_path, folders=2, touch_outside=True)
    code, report = run_json("--git", str(repo), "--range", "HEAD~1..HEAD")
    assert code == 0 and len(report["records"]) == 2
    layout = [f for r in report["records"] for f in r["findings"] if f["rule"] == "R-RECORD-FILES"]
    assert any("adds 2 record folders" in f["message"] for f in layout)
    assert any("outside its record folder: README.md" in f["message"] for f in layout)
    assert {f["severity"] for f in layout} == {"warn"}


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


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_pr_that_changes_an_existing_record_folder_audits_it(tmp_path):
    repo = pr_repo(tmp_path)
    script = repo / "records" / "track_10min_16mb" / "2026-05-01_Test0" / "train_gpt.py"
    script.write_text(script.read_text() + "# fix the final partial window\n")
    commit(repo, "fix")
    code, report = run_json("--git", str(repo), "--range", "HEAD~1..HEAD")
    assert code == 0, report
    record = report["records"][0]
    assert record["path"] == "records/track_10min_16mb/2026-05-01_Test0"
    assert any("changes this existing record folder" in f["message"] for f in record["findings"])


def test_pr_that_deletes_another_record_folder_is_told(tmp_path):
    repo = pr_repo(tmp_path)
    shutil.rmtree(repo / "records" / "track_10min_16mb" / "2026-05-01_Test0")
    make_record(repo / "records" / "track_10min_16mb", name="2026-05-02_Next")
    commit(repo, "replace")
    code, report = run_json("--git", str(repo), "--range", "HEAD~1..HEAD")
    assert [r["path"] for r in report["records"]] == ["records/track_10min_16mb/2026-05-02_Next"]
    other = [f for f in report["records"][0]["findings"] if "other record folders" in f["message"]]
    assert other and "2026-05-01_Test0 (deleted)" in other[0]["message"] and other[0]["severity"] == "warn"


def test_a_range_that_only_deletes_records_says_which(tmp_path):
    repo = pr_repo(tmp_path, folders=2)
    for name in ("2026-05-01_Test0", "2026-05-02_Test1"):
        shutil.rmtree(repo / "records" / "track_10min_16mb" / name)
    commit(repo, "remove")
    proc = subprocess.run(CHECK + ["--git", str(repo), "--range", "HEAD~1..HEAD"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "deletes 2 existing one(s): records/track_10min_16mb/2026-05-01_Test0" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def frontier_repo(tmp_path: Path, mine: tuple[float, ...], readme: str = "# Test record\n") -> tuple[Path, str]:
    repo = tmp_path / "pg"
    track = repo / "records" / "track_10min_16mb"
    track.mkdir(parents=True)
    (repo / "README.md").write_text("challenge\n")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    make_record(track, name="2026-04-01_Old", bpbs=(1.2101, 1.2103, 1.2105))
    commit(repo, "Merge pull request #10 from a/old")
    make_record(track, name="2026-04-20_LaterBetter", bpbs=(1.1001, 1.1003, 1.1005))
    commit(repo, "Merge pull request #12 from a/later")
    git(repo, "checkout", "-q", "-b", "pr", "HEAD~2")  # branched before both landed
    folder = make_record(track, name="2026-04-10_Mine", bpbs=mine)
    (folder / "README.md").write_text(readme)
    head = commit(repo, "mine")
    git(repo, "checkout", "-q", "main")
    return repo, head


@pytest.mark.slow
def test_against_auto_takes_the_best_record_opened_earlier(tmp_path):
    repo, head = frontier_repo(tmp_path, mine=(1.2001, 1.2003, 1.2005))
    meta = tmp_path / "prs.json"
    meta.write_text(
        json.dumps(
            [
                {"number": 10, "createdAt": "2026-04-01T08:00:00Z"},
                {"number": 11, "createdAt": "2026-04-10T08:00:00Z", "headRefOid": head},
                {"number": 12, "createdAt": "2026-04-09T08:00:00Z"},
            ]
        )
    )  # #12 opened before #11 despite its folder date
    code, report = run_json("--git", str(repo), "--range", f"main..{head}", "--against", "auto", "--pr-meta", str(meta))
    record = report["records"][0]
    sig = record["significance"]
    assert record["summary"]["judged_by"].startswith("PR #11 createdAt")
    assert "2026-04-20_LaterBetter" in sig["against"] and "PR #12 createdAt" in sig["against"]
    assert code == 1 and not sig["passed"]  # 1.2003 does not beat 1.1003
    # without the metadata the folder dates order them: the later folder is not the frontier
    code, report = run_json("--git", str(repo), "--range", f"main..{head}", "--against", "auto")
    sig = report["records"][0]["significance"]
    assert code == 0 and "2026-04-01_Old" in sig["against"] and sig["passed"]
    assert round(sig["enforced"]["p"], 3) < 0.25


@pytest.mark.slow
def test_a_systems_only_waiver_claim_asks_for_review_naming_the_waiver(tmp_path):
    readme = "# Faster kernels\nA systems optimization without changing the ML: same model, faster steps.\n"
    repo, head = frontier_repo(tmp_path, mine=(1.2102, 1.2104, 1.2106), readme=readme)
    code, report = run_json("--git", str(repo), "--range", f"main..{head}", "--against", "auto")
    sig = [f for f in report["records"][0]["findings"] if f["rule"] == "R-SIGNIFICANCE"]
    assert code == 3 and sig[0]["severity"] == "review"
    assert "systems-only waiver" in sig[0]["message"] and "this requirement is waived" in sig[0]["message"]
