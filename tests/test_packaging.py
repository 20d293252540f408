"""What a non-editable install (the image, a wheel) gets: a real wheel, built from the checkout's files.

An editable install reads the source tree, so a folder missing from pyproject's package list
goes unnoticed there; the wheel leaves it out, with a setuptools warning nobody reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("compliance", "pipeline")  # installed as pgolf.compliance and pgolf.pipeline
BUILD = "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))"


def _source_files() -> list[str]:
    """The files a fresh clone has: git's list when this is a checkout, else what is on disk."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "pyproject.toml", "README.md", *SHIPPED], cwd=REPO, capture_output=True
    )
    if listed.returncode == 0 and listed.stdout:
        return [name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]
    files = ["pyproject.toml", "README.md"]
    for half in SHIPPED:
        files += [
            str(p.relative_to(REPO))
            for p in (REPO / half).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        ]
    return files


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[str], str]:
    """Build outside the checkout (setuptools writes build/ and *.egg-info beside the sources)."""
    pytest.importorskip("setuptools", reason="building a wheel needs setuptools (the test extra)")
    work = tmp_path_factory.mktemp("wheel")
    src, out = work / "src", work / "dist"
    files = _source_files()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # its notices are no warnings
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)], cwd=src, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = out / result.stdout.strip().splitlines()[-1]
    return wheel, files, result.stdout + result.stderr


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package_folders(built):
    wheel, files, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"pgolf/{name}" for name in files if name.split("/")[0] in SHIPPED}
    assert expected, "no source files found"
    assert sorted(expected - names) == []


def test_the_build_warns_about_nothing(built):
    _, _, output = built
    warnings = [line for line in output.splitlines() if "warn" in line.lower()]
    assert warnings == []


def test_the_entry_points_name_modules_the_wheel_holds(built):
    wheel, _, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        points = archive.read(info).decode()
    targets = [line.split("=", 1)[1].strip().split(":")[0] for line in points.splitlines() if "=" in line]
    assert targets and all(f"{t.replace('.', '/')}.py" in names for t in targets)


def test_the_wheel_carries_the_version_the_code_reports(built):
    from pgolf.compliance import __version__

    wheel, _, _ = built
    assert wheel.name.startswith(f"pgolf-{__version__}-")
