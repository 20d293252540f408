"""The marks conftest.py applies by name still name tests, and a fast run leaves the right ones out."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from . import conftest

TESTS = Path(__file__).resolve().parent


def _functions(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_module_and_test_named_for_a_mark_exists() -> None:
    assert [m for m in conftest._BY_MODULE if not (TESTS / m).is_file()] == []
    missing = [key for key in conftest._BY_TEST if key.split("::")[1] not in _functions(key.split("::")[0])]
    assert missing == []


def test_the_fast_selection_leaves_out_torch_docker_and_slow_tests() -> None:
    """Collected, not run: what `make test-fast` would run, with the marks the conftest adds."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--collect-only",
        "-m",
        "not slow and not docker and not torch",
        "tests/test_dynamic_units.py",
        "tests/test_docker.py",
        "tests/test_bad_input.py",
    ]
    out = subprocess.run(argv, cwd=TESTS.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    selected = {line.split("[")[0] for line in out.stdout.splitlines() if "::" in line}
    assert selected, out.stdout
    assert not any(line.startswith("tests/test_docker.py") for line in selected)
    for key, marks in conftest._BY_TEST.items():
        if {"slow", "torch"} & set(marks):
            assert f"tests/{key}" not in selected
    assert "tests/test_bad_input.py::test_valid_record_passes" in selected
