"""make bench: speed targets live here, never in timed unit tests.

- audit: pgolf-check over every record folder in ../shared (target < 5 s in total)
- static: legality analysis of a 150 KB script (target < 1 s)
- pipeline: `pgolf submit` of the reference submission on cpu-smoke against running
  the same three stages by hand (target: overhead < 2% of wall time)
- dynamic: the reference's eval stage on a canary, plain and traced (target: tracer
  overhead < 25%), and the whole dynamic check against that plain eval pass
- margin: what loss arithmetic alone moves a mean, against the catalog's margins
Run one with `python tests/bench/run.py audit|static|pipeline|dynamic|margin`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO.parent / "shared" / "records-data" / "records"
REFERENCE = REPO / "pipeline" / "reference" / "train_gpt.py"


def bench_audit() -> bool:
    if not RECORDS.is_dir():
        print(f"audit: skipped, {RECORDS} not found")
        return True
    from pgolf.compliance.audit import audit
    from pgolf.compliance.context import AuditOptions
    start = time.perf_counter()
    report = audit([str(RECORDS)], AuditOptions())
    seconds = time.perf_counter() - start
    ok = seconds < 5.0
    print(f"audit: {len(report.records)} record folders in {seconds:.2f} s (target < 5 s) {'OK' if ok else 'SLOW'}")
    return ok


def bench_static() -> bool:
    """A 150 KB script made of the reference submission's own code, renamed per copy."""
    from pgolf.compliance.static import bench_static as analyse
    source = REFERENCE.read_text(encoding="utf-8")
    copies, i = [], 0
    while sum(map(len, copies)) < 150_000:
        copies.append(source.replace("def ", f"def v{i}_").replace("class ", f"class V{i}"))
        i += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train_gpt.py"
        path.write_text("\n".join(copies), encoding="utf-8")
        result = analyse(path)
    ok = result["seconds"] < 1.0 and result["parsed"]
    print(f"static: {result['bytes'] / 1000:.0f} KB script, {result['events']} events in {result['seconds']:.2f} s "
          f"(target < 1 s) {'OK' if ok else 'SLOW'}")
    return ok


def _by_hand(work: Path, data, profile) -> float:
    """The three stages as a competitor would launch them, with the same environment."""
    from pgolf.pipeline.stages import SeedPaths, base_env
    paths = SeedPaths(work / "hand")
    env = base_env(profile, 1, {})
    env.update({"PGOLF_TRAIN_DATA": str(data.train), "PGOLF_VAL_DATA": str(data.val),
                "PGOLF_TOKENIZER": str(data.tokenizer), "PGOLF_CHECKPOINT": str(paths.checkpoint),
                "PGOLF_ARTIFACT": str(paths.artifact), "PGOLF_RESULT": str(paths.result),
                "PGOLF_TRAIN_BUDGET_S": str(profile.train_cap_s - profile.quantize_reserve_s)})
    start = time.perf_counter()
    for stage in ("train", "quantize", "eval"):
        subprocess.run([sys.executable, str(REFERENCE)], env={**env, "PGOLF_STAGE": stage}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _by_pgolf(work: Path, data) -> float:
    argv = [sys.executable, "-c", "from pgolf.pipeline.cli import main; main()", "submit", "--seeds", "1",
            "--train-data", str(data.train), "--val-data", str(data.val), "--tokenizer", str(data.tokenizer),
            "--records-dir", str(work / "records"), "--work-dir", str(work / "runs"), "--name", "bench",
            "--no-dynamic"]  # the dynamic check has its own bench
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # 1 seed: the check fails R-SEEDS
    total = time.perf_counter() - start
    outcome = json.loads((work / "runs" / "seed_1" / "outcome.json").read_text())
    stages = sum(s["wall_s"] for s in outcome["stages"])
    print(f"pipeline: pgolf stages {stages:.1f} s, whole submit {total:.1f} s "
          f"(record, provenance and check {total - stages:.1f} s)")
    return total


def bench_pipeline() -> bool:
    from pgolf.pipeline.cli import _default_data
    from pgolf.pipeline.profiles import get_profile
    data = _default_data(REPO / "data" / "synth")
    profile = get_profile("cpu-smoke")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # alternate, so that load from elsewhere on the machine falls on both sides alike
        pgolf_first = _by_pgolf(work / "a", data)
        hand = _by_hand(work, data, profile)
        pgolf = min(pgolf_first, _by_pgolf(work / "b", data))
    overhead = (pgolf - hand) / hand
    ok = overhead < 0.02
    print(f"pipeline: by hand {hand:.1f} s, pgolf {pgolf:.1f} s, overhead {overhead:+.1%} (target < 2%) "
          f"{'OK' if ok else 'SLOW'}")
    return ok


def _stage_env(profile, data, paths, val_dir: Path) -> dict:
    from pgolf.pipeline.stages import base_env
    env = base_env(profile, 1, {})
    env.update({"PGOLF_TRAIN_DATA": str(data.train), "PGOLF_VAL_DATA": str(val_dir),
                "PGOLF_TOKENIZER": str(data.tokenizer), "PGOLF_CHECKPOINT": str(paths.checkpoint),
                "PGOLF_ARTIFACT": str(paths.artifact), "PGOLF_RESULT": str(paths.result),
                "PGOLF_TRAIN_BUDGET_S": str(profile.train_cap_s - profile.quantize_reserve_s)})
    return env


def _timed(env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REFERENCE)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_dynamic() -> bool:
    from pgolf.compliance.audit import audit
    from pgolf.compliance.context import AuditOptions
    from pgolf.compliance.dynamic import canary as canary_mod
    from pgolf.compliance.dynamic.harness import SHIM_DIR, DynamicOptions
    from pgolf.pipeline.cli import _default_data
    from pgolf.pipeline.profiles import get_profile
    from pgolf.pipeline.stages import SeedPaths
    data = _default_data(REPO / "data" / "synth")
    profile = get_profile("cpu-smoke")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        canary = canary_mod.generate(canary_mod.content_ids(data.tokenizer))
        canary_file = canary_mod.write(canary, work / "canary")
        env = _stage_env(profile, data, SeedPaths(work / "seed"), work / "canary")
        for stage in ("train", "quantize"):
            _timed({**env, "PGOLF_STAGE": stage})
        plain = min(_timed({**env, "PGOLF_STAGE": "eval"}) for _ in range(2))
        traced_env = {**env, "PGOLF_STAGE": "eval", "PYTHONPATH": str(SHIM_DIR), "PGOLF_CANARY": str(canary_file),
                      "PGOLF_LEDGER_DIR": str(work / "ledger")}  # no device shim: a contract script, as the check runs it
        traced = min(_timed(traced_env) for _ in range(2))
        options = DynamicOptions(data=data.train, tokenizer=data.tokenizer, env=dict(profile.env), preset=False)
        start = time.perf_counter()
        report = audit([str(REFERENCE)], AuditOptions(dynamic=options))
        whole = time.perf_counter() - start
    overhead = traced / plain - 1
    ok = overhead < 0.25 and report.verdict == "pass"
    print(f"dynamic: reference eval pass on a {len(canary.tokens) - 1}-token canary: plain {plain:.1f} s, traced "
          f"{traced:.1f} s, tracer overhead {overhead:+.0%} (target < 25%) {'OK' if ok else 'SLOW'}")
    print(f"dynamic: whole check (train, quantize, eval traced; verdict {report.verdict}) {whole:.1f} s = "
          f"{whole / plain:.1f}x a plain eval pass")
    return ok


def bench_margin() -> bool:
    import yaml
    from pgolf.compliance.dynamic.margin import measure
    from pgolf.compliance.rules.registry import CATALOG_DIR
    rules = {r["id"]: r for r in yaml.safe_load((CATALOG_DIR / "dynamic.yaml").read_text())["rules"]}
    params = rules["R-DYN-CANARY"]["params"]
    worst = {}
    for scale in (0.1, 0.5, 3.0):  # near-uniform to confident logits
        for name, value in measure(scale=scale, trials=3).items():
            worst[name] = max(worst.get(name, 0.0), value)
    ok = params["margin_nats_per_token"] > worst["fp32_loss"] and params["lowp_margin_nats_per_token"] > worst["bf16_loss"]
    print(f"margin: worst mean shift per token: fp32 loss {worst['fp32_loss']:.2e} (catalog "
          f"{params['margin_nats_per_token']:.0e}), bf16 loss {worst['bf16_loss']:.4f} (catalog "
          f"{params['lowp_margin_nats_per_token']}) {'OK' if ok else 'TOO SMALL'}")
    return ok


BENCHES = {"audit": bench_audit, "static": bench_static, "pipeline": bench_pipeline, "dynamic": bench_dynamic,
           "margin": bench_margin}

if __name__ == "__main__":
    os.chdir(REPO)
    chosen = sys.argv[1:] or list(BENCHES)
    results = [BENCHES[name]() for name in chosen]
    sys.exit(0 if all(results) else 1)
