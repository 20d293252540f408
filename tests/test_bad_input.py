"""Bad input gets exit 2 or a finding, one line, no traceback, and the folder stays as it was."""

from __future__ import annotations

import base64
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .factory import log_text, make_record, snapshot

CHECK = [sys.executable, "-c", "from pgolf.compliance.cli import run; run()"]


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CHECK + list(args), capture_output=True, text=True, timeout=120)


def audit_json(folder: Path) -> tuple[int, dict]:
    before = snapshot(folder)
    proc = check(str(folder), "--format", "json")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert snapshot(folder) == before, "the audited folder was modified"
    return proc.returncode, json.loads(proc.stdout)


def findings(report: dict, rule: str) -> list[dict]:
    return [f for f in report["records"][0]["findings"] if f["rule"] == rule]


def test_valid_record_passes(tmp_path):
    code, report = audit_json(make_record(tmp_path))
    assert code == 0, report
    assert report["verdict"] == "pass" and report["schema"] == "pgolf-report/1"
    assert report["records"][0]["summary"]["n_seeds"] == 3


def test_broken_submission_json(tmp_path):
    folder = make_record(tmp_path)
    (folder / "submission.json").write_text('{"val_bpb": 1.2, "seeds": [')
    code, report = audit_json(folder)
    assert code == 1
    messages = [f["message"] for f in findings(report, "R-RECORD-FILES")]
    assert any("invalid JSON" in m for m in messages) and all("\n" not in m for m in messages)


def test_truncated_log(tmp_path):
    folder = make_record(tmp_path)
    log = folder / "train_seed314.log"
    log.write_text(log.read_text()[:400])
    code, report = audit_json(folder)
    assert code in (1, 3)
    parse = findings(report, "R-LOG-PARSE")
    assert any(f["file"] == "train_seed314.log" and "no final score" in f["message"] for f in parse)


def test_binary_log(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed999.log").write_bytes(os.urandom(4096) + b"\x00" * 64)
    code, report = audit_json(folder)
    assert code == 1
    assert any("binary" in f["message"] for f in findings(report, "R-RECORD-FILES"))


def test_symlink_out_of_folder(tmp_path):
    folder = make_record(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("val_bpb:0.1\n")
    (folder / "logs").mkdir()
    (folder / "logs" / "extra.txt").symlink_to(secret)
    code, report = audit_json(folder)
    assert code == 1
    hits = [f for f in findings(report, "R-RECORD-FILES") if "outside the folder" in f["message"]]
    assert hits and hits[0]["file"] == "logs/extra.txt"


def test_decompression_bomb_script(tmp_path):
    folder = make_record(tmp_path)
    bomb = lzma.compress(b"\0" * (200 * 1024 * 1024), preset=1)
    payload = base64.b85encode(bomb).decode()
    (folder / "train_gpt.py").write_text(
        f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{payload}")))\n'
    )
    code, report = audit_json(folder)
    assert code == 1
    assert any("could not be decoded" in f["message"] for f in findings(report, "R-RECORD-FILES"))


def test_fifty_megabyte_log(tmp_path):
    folder = make_record(tmp_path)
    log = folder / "train_seed42.log"
    body = log.read_text()
    filler = "step:500/20000 train_loss:2.5000 train_time:300000ms step_avg:600.00ms\n" * 720_000
    log.write_text(filler + body)
    assert log.stat().st_size > 50_000_000
    code, report = audit_json(folder)
    assert code == 0, report
    row = next(r for r in report["records"][0]["seeds"] if r["seed"] == 42)
    assert row["val_bpb"] == pytest.approx(1.2001)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["/nonexistent/record"], "no such file or directory"),
        (["--against", "abc"], "--against takes"),
        (["--ruleset", "nope"], "unknown ruleset"),
    ],
)
def test_unreadable_targets_exit_2(tmp_path, args, fragment):
    if args[0].startswith("--"):
        args = [str(make_record(tmp_path))] + args
    proc = check(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_file_instead_of_folder(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("{}")
    proc = check(str(target))
    assert proc.returncode == 2 and "not a record folder" in proc.stderr


def test_empty_folder(tmp_path):
    proc = check(str(tmp_path))
    assert proc.returncode == 2 and "no record folder found" in proc.stderr


def test_over_cap_seed_fails_with_location(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed42.log").write_text(log_text(42, 1.2001, 2.03, total=16_024_793))
    code, report = audit_json(folder)
    assert code == 1
    size = findings(report, "R-SIZE")
    assert size[0]["file"] == "train_seed42.log" and size[0]["line"] == 10
    assert "24,793 over" in size[0]["message"]


def test_over_cap_only_with_readable_code_asks_for_review(tmp_path):
    folder = make_record(tmp_path)
    big = "\n".join(f"weights_{i} = [0] * 8  # commentary that packs well" for i in range(4000)) + "\n"
    (folder / "train_gpt.py").write_text(big)
    model = 16_000_000 - len(big.encode()) + 1000  # 1,000 bytes over with the code as it is
    for seed, bpb in ((42, 1.2001), (314, 1.2003), (999, 1.2005)):
        (folder / f"train_seed{seed}.log").write_text(
            log_text(seed, bpb, bpb * 1.69, total=model + len(big.encode()), code=len(big.encode()))
        )
    code, report = audit_json(folder)
    size = findings(report, "R-SIZE")
    assert code == 3 and size and all(f["severity"] == "review" for f in size)
    assert size[0]["evidence"]["bytes_total_packed"] < 16_000_000 < size[0]["evidence"]["bytes_total"]


def test_one_slow_step_past_the_cap_is_tolerated_but_not_a_second(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_seed42.log").write_text(log_text(42, 1.2001, 2.03, train_ms=600_900))  # ~600 ms steps
    code, report = audit_json(folder)
    assert code == 0 and any(f["severity"] == "info" for f in findings(report, "R-TRAIN-TIME"))
    (folder / "train_seed42.log").write_text(log_text(42, 1.2001, 2.03, train_ms=602_000))
    code, report = audit_json(folder)
    assert code == 1 and "602.000 s" in findings(report, "R-TRAIN-TIME")[0]["message"]


def _zip_bomb(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.bin", "w", force_zip64=True) as member:
            block = b"\0" * (1 << 20)
            for _ in range(1024):  # 1 GiB that deflates to about 1 MB
                member.write(block)


def test_zip_bomb_in_the_folder_is_never_opened(tmp_path):
    folder = make_record(tmp_path)
    _zip_bomb(folder / "weights.zip")
    assert (folder / "weights.zip").stat().st_size < 5_000_000
    code, report = audit_json(folder)
    assert code == 0, report


def test_zip_bomb_as_the_target_is_refused(tmp_path):
    bomb = tmp_path / "submission.zip"
    _zip_bomb(bomb)
    proc = check(str(bomb))
    assert proc.returncode == 2 and "not a record folder or a .py script" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# --- the bad-input suite (issue #12): >= 60 impossible inputs, 0 crashes, 0 passes -----------------
#
# Each case breaks one fresh record folder. All folders are audited by one tree run of the real
# CLI (one broken folder must not take the others down), and each case then asserts on its own
# record: not a pass, an error is one line naming the file, and the folder is unchanged.


def _json(text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    return lambda f: (f / "submission.json").write_bytes(data)


def _field(key: str, raw: str):
    """submission.json with one value replaced by raw JSON text (which json.dumps could not write)."""

    def mutate(f: Path) -> None:
        sub = json.loads((f / "submission.json").read_text())
        sub[key] = "@@"
        (f / "submission.json").write_text(json.dumps(sub).replace('"@@"', raw))

    return mutate


def _logs(content: str | bytes):
    data = content.encode() if isinstance(content, str) else content

    def mutate(f: Path) -> None:
        for log in f.glob("train_seed*.log"):
            log.write_bytes(data)

    return mutate


def _score_line(line: str):
    """Every log's final score line replaced by `line`."""

    def mutate(f: Path) -> None:
        for log in f.glob("train_seed*.log"):
            kept = [ln for ln in log.read_text().splitlines() if not ln.startswith("final_int8_zlib_roundtrip")]
            log.write_text("\n".join(kept + [line]) + "\n")

    return mutate


def _link(name: str, target: str):
    def mutate(f: Path) -> None:
        path = f / name
        if path.exists() or path.is_symlink():
            path.unlink()
        path.symlink_to(target)

    return mutate


def _logs_as(kind: str):
    def mutate(f: Path) -> None:
        for log in f.glob("train_seed*.log"):
            log.unlink()
            if kind == "fifo":
                os.mkfifo(log)
            elif kind == "dir":
                log.mkdir()
            elif kind == "loop":
                log.symlink_to(log.name)
            elif kind == "shadow":
                log.symlink_to("/etc/shadow")
            elif kind == "sparse":
                with open(log, "wb") as fh:
                    fh.truncate(300 * 1024 * 1024)

    return mutate


def _script(data: str | bytes):
    raw = data.encode() if isinstance(data, str) else data
    return lambda f: (f / "train_gpt.py").write_bytes(raw)


def _many_files(f: Path) -> None:
    extra = f / "extra"
    extra.mkdir()
    for i in range(10_001):
        (extra / f"{i}.txt").write_bytes(b"")


def _submission_dir(f: Path) -> None:
    (f / "submission.json").unlink()
    (f / "submission.json").mkdir()


def _loop_pair(f: Path) -> None:
    (f / "l1").symlink_to("l2")
    (f / "l2").symlink_to("l1")


DEEP = 100_000
BAD_WRAPPER = 'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("~~not base85~~")))\n'
NESTED_WRAPPER = "import lzma as L,base64 as B\n"
CASES = {
    # submission.json that no reader can take
    "json_deep_array": _json("[" * DEEP + "]" * DEEP),
    "json_deep_object": _json('{"a":' * DEEP + "1" + "}" * DEEP),
    "json_deep_field": _field("seed_results", "[" * DEEP + "]" * DEEP),
    "json_int_5000_digits": _field("val_bpb", "9" * 5000),
    "json_int_4000_digits": _field("val_bpb", "9" * 4000),
    "json_float_overflow": _field("val_bpb", "1e999"),
    "json_nan": _field("val_bpb", "NaN"),
    "json_minus_infinity": _field("val_bpb", "-Infinity"),
    "json_score_text": _field("val_bpb", '"abc"'),
    "json_score_list": _field("val_bpb", "[1.2]"),
    "json_score_object": _field("val_bpb", '{"mean": 1.2}'),
    "json_score_bool": _field("val_bpb", "true"),
    "json_score_null": _field("val_bpb", "null"),
    "json_top_array": _json("[1, 2, 3]"),
    "json_top_string": _json('"submission"'),
    "json_top_number": _json("1.2"),
    "json_top_null": _json("null"),
    "json_empty": _json(""),
    "json_whitespace": _json("   \n\t "),
    "json_bom_only": _json(b"\xef\xbb\xbf"),
    "json_invalid_utf8": _json(b'{"val_bpb": 1.2, "name": "\xff\xfe"}'),
    "json_utf16": _json('{"val_bpb": 1.2}'.encode("utf-16")),
    "json_truncated": _json('{"val_bpb": 1.2003, "seeds": [42, 3'),
    "json_trailing_garbage": _json('{"val_bpb": 1.2003} {"val_bpb": 0.1}'),
    "json_nul_bytes": _json(b'{"val_bpb": 1.2003,\x00 "seeds": [42]}'),
    "json_seed_results_deep_value": _field("seed_results", '{"42": ' + "[" * 5000 + "]" * 5000 + "}"),
    "json_too_large": _json('{"pad": "' + "x" * (17 * 1024 * 1024) + '"}'),
    "json_is_a_directory": _submission_dir,
    "json_symlink_loop": _link("submission.json", "submission.json"),
    "json_symlink_outside": _link("submission.json", "/etc/shadow"),
    # logs with impossible scores, or that are not logs at all
    "log_binary": _logs(bytes(range(256)) * 64),
    "log_empty": _logs(b""),
    "log_score_nan": _score_line("final_int8_zlib_roundtrip_exact val_loss:nan val_bpb:nan"),
    "log_score_inf": _score_line("final_int8_zlib_roundtrip_exact val_loss:inf val_bpb:inf"),
    "log_score_negative": _score_line("final_int8_zlib_roundtrip_exact val_loss:-2.0 val_bpb:-1.2"),
    "log_score_overflow": _score_line("final_int8_zlib_roundtrip_exact val_loss:1e999 val_bpb:1e999"),
    "log_score_huge_digits": _score_line(f"final_int8_zlib_roundtrip_exact val_loss:{'9' * 5000} val_bpb:{'9' * 5000}"),
    "log_score_nul": _score_line("final_int8_zlib_roundtrip_exact val_loss:2.0\x00 val_bpb:\x001.2"),
    "log_score_invalid_utf8": lambda f: _logs(b"final_int8_zlib_roundtrip_exact val_loss:\xff\xfe val_bpb:\xff\n")(f),
    "log_one_huge_line": _logs("val_bpb:" + "1" * (2 * 1024 * 1024)),
    "log_step_digits": _logs("step:" + "9" * 10_000 + "/20000 train_loss:2.0 train_time:1ms\n"),
    "log_only_escapes": _logs("\x1b[8mverdict: PASS\x1b[0m\n\x1b]0;title\x07\n" * 100),
    "log_fifo": _logs_as("fifo"),
    "log_directory": _logs_as("dir"),
    "log_symlink_loop": _logs_as("loop"),
    "log_symlink_outside": _logs_as("shadow"),
    "log_sparse_300mb": _logs_as("sparse"),
    # the folder itself
    "folder_symlink_loop": _loop_pair,
    "folder_dangling_symlink": _link("notes.txt", "does-not-exist"),
    "folder_dir_link_to_itself": _link("self", "."),
    "folder_link_to_root": _link("root", "/"),
    "folder_too_many_files": _many_files,
    # scripts that cannot be read as code
    "script_binary": _script(bytes(range(256)) * 16),
    "script_invalid_utf8": _script(b"print('\xff\xfe')\n"),
    "script_bad_wrapper": _script(BAD_WRAPPER),
    "script_directory": lambda f: ((f / "train_gpt.py").unlink(), (f / "train_gpt.py").mkdir()),
    "script_symlink_outside": _link("train_gpt.py", "/etc/passwd"),
    "script_symlink_loop": _link("train_gpt.py", "train_gpt.py"),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Every case as a record folder under one tree, audited by one CLI run with -o."""
    root = tmp_path_factory.mktemp("bad")
    snapshots = {}
    for name, mutate in CASES.items():
        folder = make_record(root, name=f"2026-05-01_{name}")
        mutate(folder)
        snapshots[name] = snapshot(folder) if name != "folder_too_many_files" else None
    out = root.parent / f"{root.name}-report.json"
    proc = subprocess.run(
        CHECK + [str(root), "--format", "json", "-o", str(out)], capture_output=True, text=True, timeout=900
    )
    report = json.loads(out.read_text())
    return root, proc, report, snapshots


def test_the_suite_has_sixty_cases_or_more():
    assert len(CASES) + len(TARGET_CASES) >= 60


def test_a_tree_of_bad_folders_is_one_report_and_no_crash(tree):
    root, proc, report, _ = tree
    assert proc.returncode in (1, 2, 3) and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert len(report["records"]) == len(CASES)  # -o holds every folder, the broken ones too
    assert report["verdict"] != "pass"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_folder_never_passes(tree, name):
    root, _, report, snapshots = tree
    record = next(r for r in report["records"] if r["path"].endswith(f"_{name}"))
    assert record["verdict"] in ("fail", "review", "error"), record["findings"]
    if record["verdict"] == "error":
        assert "\n" not in record["error"] and name in record["error"], record["error"]
        assert "could not be checked" not in record["error"], record["error"]  # the guard caught a crash
    assert not any("check could not run" in f["message"] for f in record["findings"])
    if snapshots[name] is not None:
        assert snapshot(root / f"2026-05-01_{name}") == snapshots[name]


# targets the CLI is handed directly: exit 2 with one line naming the target, or a verdict
def _fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "pipe")
    return [str(tmp / "pipe")]


def _loop_target(tmp: Path) -> list[str]:
    (tmp / "loop").symlink_to("loop")
    return [str(tmp / "loop")]


def _report_nowhere(tmp: Path) -> list[str]:
    return [str(make_record(tmp)), "-o", str(tmp / "missing" / "dir" / "report.json")]


def _against_deep_json(tmp: Path) -> list[str]:
    base = make_record(tmp / "base")
    (base / "submission.json").write_text("[" * DEEP + "]" * DEEP)
    return [str(make_record(tmp / "new")), "--against", str(base)]


def _against_huge_number(tmp: Path) -> list[str]:
    return [str(make_record(tmp)), "--against", ",".join(["9" * 5000] * 3)]


def _script_target_binary(tmp: Path) -> list[str]:
    (tmp / "x.py").write_bytes(b"\x00\xff" * 100)
    return [str(tmp / "x.py")]


def _script_target_bad_wrapper(tmp: Path) -> list[str]:
    (tmp / "x.py").write_text(BAD_WRAPPER)
    return [str(tmp / "x.py")]


TARGET_CASES = {
    "target_fifo": (_fifo, 2),
    "target_symlink_loop": (_loop_target, 2),
    "report_path_missing": (_report_nowhere, 2),
    "against_deep_json": (_against_deep_json, None),
    "against_huge_number": (_against_huge_number, None),
    "script_target_binary": (_script_target_binary, None),
    "script_target_bad_wrapper": (_script_target_bad_wrapper, None),
}


@pytest.mark.parametrize("name", sorted(TARGET_CASES))
def test_bad_target_ends_in_one_line_or_a_verdict(tmp_path, name):
    build, expected = TARGET_CASES[name]
    args = build(tmp_path)
    proc = check(*args)
    assert proc.returncode in (1, 2, 3) and "Traceback" not in proc.stderr + proc.stdout
    assert "internal error" not in proc.stderr
    if expected is not None:
        assert proc.returncode == expected
    if proc.returncode == 2:  # one line naming the file: on stderr, or as the record's error in the report
        said = proc.stderr or "\n".join(line for line in proc.stdout.splitlines() if line.strip().startswith("error: "))
        assert said.strip().count("\n") == 0 and said.strip(), proc.stderr + proc.stdout
        named = [a for a in args if a.startswith("/")]
        assert any(Path(a).name[:60] in said for a in named) or args[-1][:60] in said, said


def _as_nobody() -> list[str]:
    """The CLI run as an unprivileged user: root reads every folder, so unreadable needs someone else."""
    if os.getuid() != 0:
        return []
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.mark.parametrize("what", ["folder", "file"])
def test_an_unreadable_part_of_the_folder_fails_the_audit(what):
    import shutil
    import tempfile

    prefix = _as_nobody()
    root = Path(tempfile.mkdtemp(prefix="pgolf-unreadable-"))
    try:
        root.chmod(0o755)
        folder = make_record(root)
        if what == "folder":
            (folder / "logs").mkdir()
            (folder / "logs" / "train_seed7.log").write_text(log_text(7, 1.0, 1.69))
            (folder / "logs").chmod(0o000)
        else:
            (folder / "train_seed42.log").chmod(0o000)
        for path in [root, *root.rglob("*")]:
            if path.is_dir() and path.name != "logs":
                path.chmod(0o755)
        proc = subprocess.run(
            prefix + CHECK + [str(folder), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": str(root)},
        )
        assert "Traceback" not in proc.stderr and proc.returncode in (1, 2, 3), proc.stderr
        record = json.loads(proc.stdout)["records"][0]
        assert record["verdict"] != "pass"
        messages = [f["message"] for f in record["findings"] if f["rule"] == "R-RECORD-FILES"]
        assert any(("cannot be read" if what == "folder" else "cannot read") in m for m in messages), messages
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


# the static analysis' own limits (#10): its guarded parse gives review, and a tree's report is still written
NESTED = "x = " + "(" * 2000 + "1" + ")" * 2000 + '\nif __name__ == "__main__":\n    print(x)\n'


def test_two_thousand_nested_brackets_ask_for_review(tmp_path):
    folder = make_record(tmp_path)
    (folder / "train_gpt.py").write_text(NESTED)
    proc = check(str(folder), "--format", "json")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_tree_with_a_segfaulting_script_still_writes_its_report(tmp_path):
    for name in ("2026-05-01_a", "2026-05-01_b", "2026-05-01_c"):
        make_record(tmp_path / "tree", name=name)
    (tmp_path / "tree" / "2026-05-01_b" / "train_gpt.py").write_text(NESTED)
    out = tmp_path / "report.json"
    proc = check(str(tmp_path / "tree"), "--format", "json", "-o", str(out))
    assert proc.returncode in (1, 2, 3) and out.is_file()
    assert len(json.loads(out.read_text())["records"]) == 3


# --- generated input: submission.json values and log lines (hypothesis) ------------------------------
#
# Run in-process (audit(), as the CLI does): a crash would be an exception, or one caught by the
# per-folder guard or a check's own guard, and each of those is asserted away.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pgolf.compliance.audit import audit  # noqa: E402
from pgolf.compliance.context import AuditOptions  # noqa: E402

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1.2003", "nan", "inf", "-1", "9" * 400, "10min_16mb", "", "\x1b[8m"]),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=6), kids, max_size=4)),
    max_leaves=16,
)
FIELDS = [
    "val_bpb",
    "val_loss",
    "val_bpb_std",
    "seeds",
    "seed",
    "seed_results",
    "seed_scores",
    "bytes_total",
    "artifact_size_bytes",
    "bytes_code",
    "bytes_model_int8",
    "track",
    "date",
    "name",
    "author",
    "pytorch_version",
]
SUBMISSIONS = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), JSON_VALUE, max_size=10)

LOG_KEYS = [
    "val_bpb",
    "val_loss",
    "train_time",
    "step",
    "eval_time",
    "seed",
    "train_loss",
    "world_size",
    "Total submission size int8+zlib",
    "Serialized model int8+zlib",
    "Code size",
    "final_int8_zlib_roundtrip_exact val_loss",
    "final_int8_zlib_roundtrip val_loss",
    "stopping_early: wallclock_cap train_time",
    "train_shards",
    "val_tokens",
    "total_eval_time",
]
LOG_NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789.e+-", max_size=24),
    st.just("9" * 400),
    st.just("1e999"),
)
LOG_LINE = st.one_of(
    st.builds(
        lambda key, sep, value, tail: f"{key}{sep}{value}{tail}",
        st.sampled_from(LOG_KEYS),
        st.sampled_from([":", ": ", " ", "="]),
        LOG_NUMBERS,
        st.sampled_from(["", "ms", " bytes", "ms step_avg:1.00ms", "/20000", " val_bpb:1.2", " val_bpb:nan"]),
    ),
    st.text(max_size=60),
)
EXPECTED_VERDICTS = {"pass", "fail", "review", "error"}


def _audit_in_process(folder: Path):
    before = snapshot(folder)
    report = audit([str(folder)], AuditOptions())
    assert report.error is None, report.error
    record = report.records[0]
    assert record.verdict in EXPECTED_VERDICTS
    assert record.error is None or "could not be checked" not in record.error, record.error
    assert not [f.message for f in record.findings if "check could not run" in f.message]
    assert snapshot(folder) == before
    return record


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sub=SUBMISSIONS)
def test_generated_submission_json_never_crashes(sub):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_record(Path(tmp))
        (folder / "submission.json").write_text(json.dumps(sub, allow_nan=True))
        _audit_in_process(folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(LOG_LINE, max_size=20), where=st.sampled_from(["append", "prepend", "replace"]))
def test_generated_log_lines_never_crash(lines, where):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_record(Path(tmp))
        for log in folder.glob("train_seed*.log"):
            body, extra = log.read_text(), "\n".join(lines) + "\n"
            log.write_text({"append": body + extra, "prepend": extra + body, "replace": extra}[where])
        record = _audit_in_process(folder)
        if where == "replace" and not any("val_bpb" in line or "val_loss" in line for line in lines):
            assert record.verdict != "pass"  # no score line left: nothing to pass on
