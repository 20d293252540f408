"""SARIF 2.1.0, so code hosts show findings inline on the PR's files.

Every result points at a file relative to the repository root (a finding about a
whole folder is anchored at a file of it), carries a partial fingerprint that
survives line moves and reruns, and its rule has the documentation's description
and page (`fullDescription`, `help`, `helpUri`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

from .. import ruledocs
from ..report import Finding, RecordReport, Report, message_shape
from ..textsafe import printable
from .common import RenderOptions, finding_path, fingerprint, own_findings, repo_relative, shared_findings

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"fail": "error", "review": "warning", "warn": "warning", "info": "note"}
FINGERPRINT = "pgolfFinding/v1"
Json = dict[str, Any]  # a SARIF object


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    rules: dict[str, Json] = {}
    results: list[Json] = []
    seen: Counter[tuple[str, str, str]] = Counter()
    shared = shared_findings(report)
    for index, record in enumerate(report.records):
        findings = own_findings(record, shared) + (shared if index == 0 else [])
        for f in findings:
            if f.rule not in rules:
                rules[f.rule] = _rule(f, options.docs_url)
            results.append(_result(record, f, list(rules).index(f.rule), options, seen))
    driver: Json = {
        "name": "pgolf-check",
        "version": report.pgolf_version or "0",
        "semanticVersion": _semver(report.pgolf_version),
        "rules": list(rules.values()),
    }
    if options.docs_url:
        driver["informationUri"] = options.docs_url.rstrip("/") + "/README.md"
    run: Json = {
        "tool": {"driver": driver},
        "results": results,
        "invocations": [{"executionSuccessful": report.error is None and all(r.error is None for r in report.records)}],
        "properties": {"verdict": report.verdict, "policy": report.policy},
    }
    if report.error:
        run["invocations"][0]["toolExecutionNotifications"] = [
            {"message": {"text": printable(report.error)}, "level": "error"}
        ]
    if options.root is not None:
        run["originalUriBaseIds"] = {"%SRCROOT%": {"uri": options.root.resolve().as_uri() + "/"}}
    doc = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def _semver(version: str | None) -> str:
    return version if version and version[0].isdigit() and "+" not in version else "0.0.0"


def _rule(f: Finding, docs_url: str | None) -> Json:
    rule: Json = {
        "id": f.rule,
        "shortDescription": {"text": printable(f.title or f.rule)},
        "defaultConfiguration": {"level": LEVEL[f.severity]},
        "properties": {"source": printable(f.source or ""), "tags": ["pgolf"]},
    }
    doc = ruledocs.get(f.rule)
    if doc is not None:
        rule["name"] = "".join(part.capitalize() for part in f.rule.split("-")[1:])
        rule["fullDescription"] = {"text": doc.summary}
        rule["help"] = {"text": doc.body, "markdown": doc.body}
        rule["properties"]["tags"] += [doc.kind, *doc.conditions]
    url = ruledocs.doc_url(f.rule, docs_url)
    if url:
        rule["helpUri"] = url
    return rule


def _result(
    record: RecordReport, f: Finding, rule_index: int, options: RenderOptions, seen: Counter[tuple[str, str, str]]
) -> Json:
    path = repo_relative(finding_path(record, f), options.root)
    location: Json = {"physicalLocation": {"artifactLocation": {"uri": quote(path, safe="/")}}}
    if options.root is not None:
        location["physicalLocation"]["artifactLocation"]["uriBaseId"] = "%SRCROOT%"
    if f.line and f.file:
        location["physicalLocation"]["region"] = {"startLine": f.line}
    shape = message_shape(f)
    seen[(f.rule, path, shape)] += 1
    message = printable(f.message) + ("" if f.active else " (switched off by the run's configuration)")
    if f.file is None and not path.endswith(".py"):
        message += f" [about the folder {printable(record.path)}]"
    return {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": LEVEL[f.severity] if f.active else "note",
        "message": {"text": message},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT: fingerprint(f.rule, path, shape, seen[(f.rule, path, shape)])},
        "properties": {"active": f.active, "severity": f.severity, "record": printable(record.path)},
    }
