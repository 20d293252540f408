"""The README and the docstrings say what the code has: every rule, and only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pgolf.compliance.cli import main as check_main
from pgolf.compliance.rules import ruleset_names

REPO = Path(__file__).resolve().parents[1]
RULE_ID = re.compile(r"\bR-[A-Z0-9]+(?:-[A-Z0-9]+)*\b")
# a path into the repository, as the prose cites one: compliance/report-schema.md, docker/build-cpu.sh
CITED = re.compile(r"\b(?:compliance|pipeline|docs|docker|tests)/[A-Za-z0-9_./*-]+\.(?:md|json|yaml|py|sh)\b")


def _listed(ruleset: str) -> set[str]:
    result = CliRunner().invoke(check_main, ["--list-rules", "--ruleset", ruleset])
    assert result.exit_code == 0, result.output
    return set(re.findall(r"^(R-[A-Z0-9-]+)\s", result.output, re.M))


@pytest.fixture(scope="module")
def all_rules() -> set[str]:
    rules = set().union(*(_listed(name) for name in ruleset_names()))
    assert len(rules) > 30  # the catalogs were read, not an empty listing
    return rules


def test_the_readme_names_every_rule_pgolf_check_lists(all_rules: set[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert sorted(all_rules - set(RULE_ID.findall(readme))) == []


def test_every_rule_id_the_readme_names_exists(all_rules: set[str]) -> None:
    """Ids that are no rule must be the prefixes --select takes (`R-DYN` for every R-DYN-* rule)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    unknown = {
        name
        for name in RULE_ID.findall(readme)
        if name not in all_rules and not any(rule.startswith(name + "-") for rule in all_rules)
    }
    assert sorted(unknown) == []


def _prose_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "docker" / "README.md"]
    for folder in ("compliance", "pipeline"):
        files += sorted((REPO / folder).rglob("*.py")) + sorted((REPO / folder).rglob("*.md"))
    return [f for f in files if f.is_file()]


def test_every_file_the_docs_and_docstrings_cite_exists() -> None:
    missing = []
    for source in _prose_files():
        for cited in set(CITED.findall(source.read_text(encoding="utf-8"))):
            if not any(REPO.glob(cited)):
                missing.append(f"{source.relative_to(REPO)}: {cited}")
    assert missing == []
