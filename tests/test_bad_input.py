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
        f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{payload}")))\n')
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


@pytest.mark.parametrize("args, fragment", [
    (["/nonexistent/record"], "no such file or directory"),
    (["--against", "abc"], "--against takes"),
    (["--ruleset", "nope"], "unknown ruleset"),
])
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
            log_text(seed, bpb, bpb * 1.69, total=model + len(big.encode()), code=len(big.encode())))
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
