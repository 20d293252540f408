"""The rule documentation shipped in the package: compliance/rules/docs/<ID>.md.

Each page starts with a small YAML front matter (id, kind, conditions), then a
`# ID: title` heading and the sections every page has. The first paragraph of
"What it checks" is the rule's one-paragraph description (SARIF
`fullDescription`); the whole page is its help (`--explain`, SARIF `help`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

DOCS_DIR = Path(__file__).parent / "rules" / "docs"
SECTIONS = ("What it checks", "Why", "Legal", "Illegal", "How pgolf judges it", "Source")
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_RULE_ID = re.compile(r"^R-[A-Z0-9]+(?:-[A-Z0-9]+)*$")


class DocError(Exception):
    pass


@dataclass(frozen=True)
class RuleDoc:
    id: str
    kind: str
    conditions: tuple[str, ...]
    title: str
    body: str  # the page without its front matter
    path: Path

    @property
    def summary(self) -> str:
        """The first paragraph of "What it checks", on one line."""
        section = self.section("What it checks")
        return " ".join(section.split("\n\n", 1)[0].split())

    def section(self, name: str) -> str:
        match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", self.body, re.MULTILINE | re.DOTALL)
        return match.group(1).strip() if match else ""


def _parse(path: Path) -> RuleDoc:
    text = path.read_text(encoding="utf-8")
    front = _FRONT.match(text)
    if not front:
        raise DocError(f"{path.name}: no front matter")
    meta = yaml.safe_load(front.group(1)) or {}
    body = text[front.end() :].lstrip("\n")
    heading = re.match(r"# (\S+): (.+)\n", body)
    if not heading or heading.group(1) != meta.get("id") or path.stem != meta.get("id"):
        raise DocError(f"{path.name}: the file name, `id:` and the `# ID: title` heading must agree")
    return RuleDoc(
        id=meta["id"],
        kind=str(meta.get("kind", "")),
        conditions=tuple(meta.get("conditions") or ()),
        title=heading.group(2).strip(),
        body=body,
        path=path,
    )


@lru_cache(maxsize=1)
def all_docs() -> dict[str, RuleDoc]:
    return {doc.id: doc for doc in map(_parse, sorted(DOCS_DIR.glob("R-*.md")))}


def get(rule_id: str) -> RuleDoc | None:
    return all_docs().get(rule_id)


def is_rule_id(text: str) -> bool:
    return bool(_RULE_ID.match(text))


def doc_url(rule_id: str, base: str | None) -> str | None:
    """Where the rendered page lives, for links and SARIF helpUri; None without a base."""
    if not base or get(rule_id) is None:
        return None
    return f"{base.rstrip('/')}/{rule_id}.md"


def index_text() -> str:
    return (DOCS_DIR / "README.md").read_text(encoding="utf-8")
