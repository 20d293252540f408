"""JUnit XML for CI dashboards: a test suite per record, a test case per rule that reported.

A rule whose findings reach the failing severity (fail, and review with
--fail-on review) is a failure; a record that could not be read is an error; a
rule with only warnings passes and carries them in system-out. A record with no
findings still has one passing case, so every record shows up.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..report import Finding, RecordReport, Report
from ..textsafe import xml_text
from .common import RenderOptions, ordered, own_findings, shared_findings, where


def render(report: Report, options: RenderOptions = RenderOptions()) -> str:
    failing = {"fail"} | ({"review"} if options.fail_on == "review" else set())
    root = ET.Element("testsuites", name="pgolf-check")
    shared = shared_findings(report)
    for index, record in enumerate(report.records):
        findings = own_findings(record, shared) + (shared if index == 0 else [])
        root.append(_suite(record, findings, failing, options.verbose))
    if report.error:
        suite = ET.SubElement(root, "testsuite", name="pgolf-check", tests="1", failures="0", errors="1")
        case = ET.SubElement(suite, "testcase", classname="pgolf-check", name="input")
        ET.SubElement(case, "error", message=xml_text(report.error))
    _count(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(record: RecordReport, findings: list[Finding], failing: set[str], verbose: bool) -> ET.Element:
    name = xml_text(record.path)
    suite = ET.Element("testsuite", name=name)
    if record.error:
        case = ET.SubElement(suite, "testcase", classname=name, name="record")
        ET.SubElement(case, "error", message=xml_text(record.error))
    by_rule: dict[str, list[Finding]] = {}
    for f in ordered(findings, include_info=verbose):
        by_rule.setdefault(f.rule, []).append(f)
    for rule, members in sorted(by_rule.items()):
        suite.append(_case(name, rule, members, failing))
    if len(suite) == 0:
        ET.SubElement(suite, "testcase", classname=name, name="all rules")
    _count(suite)
    return suite


def _case(classname: str, rule: str, members: list[Finding], failing: set[str]) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=rule)
    text = "\n".join(
        f"{f.severity.upper()} {xml_text(where(f))}: {xml_text(f.message)}" + ("" if f.active else " (switched off)")
        for f in members
    )
    bad = [f for f in members if f.active and f.severity in failing]
    if bad:
        failure = ET.SubElement(case, "failure", type=bad[0].severity, message=xml_text(bad[0].message))
        failure.text = text
    else:
        ET.SubElement(case, "system-out").text = text
    return case


def _count(node: ET.Element) -> None:
    cases = list(node.iter("testcase"))
    node.set("tests", str(len(cases)))
    node.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    node.set("errors", str(sum(c.find("error") is not None for c in cases)))
