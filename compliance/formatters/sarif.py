"""SARIF 2.1.0, so code hosts can show findings inline on the PR's files."""
from __future__ import annotations

import json

from ..report import Report

LEVEL = {"fail": "error", "review": "warning", "warn": "warning", "info": "note"}


def render(report: Report) -> str:
    rules: dict[str, dict] = {}
    results = []
    for record in report.records:
        for f in record.findings:
            rules.setdefault(f.rule, {"id": f.rule, "shortDescription": {"text": f.title or f.rule},
                                      "properties": {"source": f.source}})
            results.append(_result(record.path, f))
    run = {"tool": {"driver": {"name": "pgolf-check", "version": report.pgolf_version or "0",
                               "rules": list(rules.values())}},
           "results": results}
    doc = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2) + "\n"


def _result(record_path: str, f) -> dict:
    uri = f"{record_path.rstrip('/')}/{f.file}" if f.file else record_path
    location = {"physicalLocation": {"artifactLocation": {"uri": uri}}}
    if f.line:
        location["physicalLocation"]["region"] = {"startLine": f.line}
    return {"ruleId": f.rule, "level": LEVEL[f.severity], "message": {"text": f.message},
            "locations": [location], "properties": {"active": f.active, "severity": f.severity}}
