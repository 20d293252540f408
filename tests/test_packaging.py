"""A package missing from pyproject's list is absent from a non-editable install (the image)."""
from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")

REPO = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"pgolf." + ".".join(init.parent.relative_to(REPO).parts)
             for half in ("compliance", "pipeline") for init in (REPO / half).rglob("__init__.py")
             if "shim" not in init.relative_to(REPO).parts}  # child-side files, shipped as package data
    assert found == listed
