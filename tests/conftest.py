"""Shared fixtures: the real record data in ../shared, skipped with a reason where absent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RECORDS = SHARED / "records-data" / "records"


def shared_record_dirs() -> list[Path]:
    if not RECORDS.is_dir():
        return []
    return sorted(p for p in RECORDS.glob("*/*") if p.is_dir())


@pytest.fixture
def records_root() -> Path:
    if not RECORDS.is_dir():
        pytest.skip(f"real record data not found at {RECORDS} (CI provides ../shared)")
    return RECORDS


def record_dir(name: str) -> Path:
    matches = [p for p in shared_record_dirs() if p.name == name]
    if not matches:
        pytest.skip(f"record folder {name} not in {RECORDS}")
    return matches[0]


# ---------------------------------------------------------------- markers
# What a test needs or costs (registered in pyproject.toml), so that a run can leave it out:
# `make test-fast` is `-m "not slow and not docker and not torch"`. A test whose module is not
# listed here carries its marks as decorators.
_BY_FIXTURE = {"records_root": "shared", "official_data": "shared"}  # fixtures that read ../shared
_BY_MODULE: dict[str, tuple[str, ...]] = {
    "test_docker.py": ("docker", "slow"),
    "test_dynamic.py": ("torch", "slow"),
    "test_reference_submission.py": ("torch", "shared", "slow"),
    "test_shim_device.py": ("torch",),
    "test_pipeline.py": ("slow",),
}
# Single tests of modules that other branches are rewriting (i12, i16): marked from here so that
# their merge does not conflict; tests/test_markers.py fails when a name here names no test.
_BY_TEST: dict[str, tuple[str, ...]] = {
    "test_bad_input.py::test_zip_bomb_in_the_folder_is_never_opened": ("slow",),
    "test_bad_input.py::test_zip_bomb_as_the_target_is_refused": ("slow",),
    "test_bad_input.py::test_fifty_megabyte_log": ("slow",),
    "test_bad_input.py::test_over_cap_only_with_readable_code_asks_for_review": ("slow",),
    "test_bad_input.py::test_decompression_bomb_script": ("slow",),
    "test_bad_input.py::test_one_slow_step_past_the_cap_is_tolerated_but_not_a_second": ("slow",),
    "test_dynamic_units.py::test_catalog_margins_cover_the_measured_arithmetic": ("torch", "slow"),
    "test_dynamic_units.py::test_a_fused_kernel_loss_reported_by_the_device_shim_is_traced_with_its_backward": (
        "torch",
        "slow",
    ),
    "test_dynamic_units.py::test_an_update_thrown_away_before_anything_reads_it_is_no_update": ("torch", "slow"),
    "test_dynamic_units.py::test_byte_recount_catches_byte_fallback_counted_as_three_bytes": ("shared",),
    "test_dynamic_units.py::test_content_ids_of_the_official_tokenizer_are_the_1020_non_control_ids": ("shared",),
    "test_dynamic_units.py::test_true_bytes_of_real_text_equal_its_utf8_length": ("shared",),
    "test_pipeline.py::test_the_traced_run_is_kept_in_the_run_folder_even_when_it_fails": ("shared",),
    "test_dynamic.py::test_in_the_container_without_network_the_call_site_is_still_named": ("docker",),
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects: it must see these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.name
        names = set(_BY_MODULE.get(module, ()))
        names.update(_BY_TEST.get(f"{module}::{getattr(item, 'originalname', item.name)}", ()))
        names.update(mark for fixture, mark in _BY_FIXTURE.items() if fixture in getattr(item, "fixturenames", ()))
        for name in sorted(names):
            item.add_marker(name)


# ---------------------------------------------------------------- the checkout stays as it was
# Tests write under tmp_path only. A file or folder that appears in the checkout during the run
# (data/synth, runs/, records/ from a default path) fails the session, named. Caches of the tools
# themselves are not the tests' writing.
_TOOL_CACHES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _new_paths_listing() -> set[str] | None:
    """Untracked and ignored paths (a wholly new folder as one entry); None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "-z"], cwd=REPO, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    entries = [e[3:] for e in out.stdout.split("\0") if e[:2] in ("??", "!!")]
    return {e for e in entries if not _TOOL_CACHES & set(Path(e).parts)}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = _new_paths_listing()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    after = _new_paths_listing() if before is not None else None
    written = sorted(after - before) if before is not None and after is not None else []
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"pgolf tests wrote into the checkout {REPO}: {', '.join(written)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


try:  # hypothesis keeps its example database and caches in ./.hypothesis: the checkout is not for writing
    import atexit as _atexit
    import shutil as _shutil
    import tempfile as _tempfile

    from hypothesis import settings as _hypothesis_settings
    from hypothesis.configuration import set_hypothesis_home_dir

    _hypothesis_home = _tempfile.mkdtemp(prefix="pgolf-hypothesis-")
    _atexit.register(_shutil.rmtree, _hypothesis_home, True)  # one per session, or /tmp fills with them
    set_hypothesis_home_dir(_hypothesis_home)
    _hypothesis_settings.register_profile("pgolf", database=None)
    _hypothesis_settings.load_profile("pgolf")
except ImportError:  # the test extra brings it; without it the generated-input tests do not import
    pass


_BEFORE = pytest.StashKey[set[str] | None]()
