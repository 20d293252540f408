"""make bench: speed targets live here, never in timed unit tests.

- help: `pgolf-check --help`, start-up alone (target < 0.3 s)
- audit-one: `pgolf-check FOLDER` on one record folder (target < 0.6 s)
- audit: pgolf-check over every record folder in ../shared (target < 5 s in total)
- static: legality analysis of a 150 KB script (target < 1 s)
- pipeline: `pgolf submit` of the reference submission on cpu-smoke, three seeds without the
  dynamic check, against running the same stages by hand (target: overhead < 2% of wall time)
- dynamic: the reference's eval stage on a canary, plain and traced (target: tracer
  overhead < 25%), and the whole dynamic check against that plain eval pass
- margin: what loss arithmetic alone moves a mean, against the catalog's margins
- fresh: `git clone` and `make submit SEEDS="1 2 3"` in the clone, install included, ends PASS
  with exit 0 and seeds of equal steps (target < 6 minutes on an idle 2-core machine)
- fresh-loaded: the same with a concurrent CPU-bound process running throughout
Every line names the load average it ran under: on a shared machine the figures move with it.
Run some with `python tests/bench/run.py help audit-one ...`.
"""

from __future__ import annotations

import json
import os
import re
import resource
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
    print(
        f"static: {result['bytes'] / 1000:.0f} KB script, {result['events']} events in {result['seconds']:.2f} s "
        f"(target < 1 s) {'OK' if ok else 'SLOW'}"
    )
    return ok


class _Clock:
    """Wall and CPU seconds (user + system, of the child processes) of what runs inside it."""

    def __enter__(self) -> _Clock:
        self._usage, self._start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.perf_counter() - self._start
        self.cpu = (usage.ru_utime - self._usage.ru_utime) + (usage.ru_stime - self._usage.ru_stime)


def _by_hand(work: Path, data, profile, seeds) -> _Clock:
    """The stages as a competitor would launch them: the same processes and environment, nothing else."""
    from pgolf.compliance.stage_contract import STAGES
    from pgolf.pipeline.stages import SeedPaths, contract_spec

    with _Clock() as clock:
        for seed in seeds:
            paths = SeedPaths(work / "hand" / f"seed_{seed}")
            paths.root.mkdir(parents=True)
            for stage in STAGES:
                spec = contract_spec(stage, REFERENCE, seed, profile, data, paths, {})
                subprocess.run(
                    spec.argv,
                    env=spec.env,
                    cwd=spec.cwd,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
    return clock


def _by_pgolf(work: Path, data, seeds) -> tuple[_Clock, dict]:
    argv = [
        sys.executable,
        "-c",
        "from pgolf.pipeline.cli import main; main()",
        "submit",
        "--seeds",
        " ".join(map(str, seeds)),
        "--train-data",
        str(data.train),
        "--val-data",
        str(data.val),
        "--tokenizer",
        str(data.tokenizer),
        "--records-dir",
        str(work / "records"),
        "--work-dir",
        str(work / "runs"),
        "--name",
        "bench",
        "--no-dynamic",
    ]  # the dynamic check has its own bench
    with _Clock() as clock:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stages = sum(
        s["wall_s"]
        for seed in seeds
        for s in json.loads((work / "runs" / f"seed_{seed}" / "outcome.json").read_text())["stages"]
    )
    calibration = json.loads((work / "runs" / "calibration.json").read_text())
    print(
        f"pipeline: pgolf exit {done.returncode}, stages {stages:.1f} s with {calibration['threads']} thread(s), "
        f"whole submit {clock.wall:.1f} s (calibration, record, provenance and check {clock.wall - stages:.1f} s)"
    )
    return clock, calibration


def bench_pipeline() -> bool:
    """The main job without its dynamic check (three seeds), against the same stages by hand.

    The wall clock decides; the CPU time both sides used is printed beside it, because a machine
    whose load moves between the two runs moves their wall times far more than 2%.
    """
    from pgolf.pipeline.cli import _default_data
    from pgolf.pipeline.profiles import get_profile

    data = _default_data(REPO / "data" / "synth")
    seeds = (1, 2, 3)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pgolf, measured = _by_pgolf(work / "a", data, seeds)
        # by hand with the threads and budget pgolf's calibration chose, so both run the same processes
        profile = get_profile("cpu-smoke").scaled(measured["scale"]).with_threads(measured["threads"])
        hand = _by_hand(work, data, profile, seeds)
    overhead = (pgolf.wall - hand.wall) / hand.wall
    ok = overhead < 0.02
    print(
        f"pipeline: by hand {hand.wall:.1f} s (cpu {hand.cpu:.1f} s), pgolf {pgolf.wall:.1f} s, overhead "
        f"{overhead:+.1%} wall (target < 2%) {'OK' if ok else 'SLOW'}; {_cpu_note(pgolf, hand)}; {_load()}"
    )
    return ok


def _cpu_note(pgolf: _Clock, hand: _Clock) -> str:
    """pgolf's CPU beside the stages' own. pgolf starts its stages under bubblewrap's PID namespace,
    whose CPU time never reaches this process's child rusage (bwrap's init reaps them): then only
    pgolf's own shows, and a CPU ratio would be meaningless."""
    if pgolf.cpu < 0.5 * hand.cpu:
        return f"pgolf's own cpu {pgolf.cpu:.1f} s (its stages' cpu is counted inside their PID namespace)"
    return f"cpu {pgolf.cpu:.1f} s, {(pgolf.cpu - hand.cpu) / hand.cpu:+.1%} against by hand"


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def _median_run(argv: list[str], runs: int = 7) -> tuple[float, float]:
    """Median wall time, and the median CPU time the command used (user + system), which a busy
    machine inflates far less than the wall clock: a guide to what an idle one would show."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return sorted(walls)[runs // 2], sorted(cpus)[runs // 2]


def _pgolf_check() -> str:
    return str(Path(sys.executable).with_name("pgolf-check"))


def bench_help() -> bool:
    seconds, cpu = _median_run([_pgolf_check(), "--help"])
    ok = seconds < 0.3
    print(
        f"help: pgolf-check --help in {seconds:.3f} s (cpu {cpu:.3f} s), median of 7 (target < 0.3 s) "
        f"{'OK' if ok else 'SLOW'}; {_load()}"
    )
    return ok


def bench_audit_one() -> bool:
    """The command a reviewer types for one record folder: start-up, parsing, every record check."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = next((p for p in sorted(RECORDS.glob("*/*")) if p.is_dir()), None) if RECORDS.is_dir() else None
        if folder is None:
            sys.path.insert(0, str(REPO))
            from tests.factory import make_record

            folder = make_record(Path(tmp))
        seconds, cpu = _median_run([_pgolf_check(), str(folder)])
    ok = seconds < 0.6
    print(
        f"audit-one: pgolf-check {folder.name} in {seconds:.3f} s (cpu {cpu:.3f} s), median of 7 "
        f"(target < 0.6 s) {'OK' if ok else 'SLOW'}; {_load()}"
    )
    return ok


def _fresh_clone_to_pass(label: str, concurrent_load: bool) -> bool:
    """git clone, then `make submit SEEDS="1 2 3"` in the clone: install, data, seeds, record, check.

    The committed state is what a clone gets. pip's cache is off, as on a fresh machine; a local
    wheelhouse in pip's configuration stays, as the README's prerequisites allow.
    """
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "pgolf"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PGOLF_", "MAKE", "VIRTUAL_ENV"))}
        env["PIP_NO_CACHE_DIR"] = "1"
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if concurrent_load else None
        try:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(["make", "submit", "SEEDS=1 2 3"], cwd=clone, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
        output = done.stdout + done.stderr
        verdict = re.findall(r"^verdict: (\w+)", output, re.M)
        phases = re.findall(r"^pgolf: (install \d/\d): done in (\d+) s", output, re.M)
        calibration = re.findall(r"^pgolf: (calibration: .*)$", output, re.M)
        steps = _record_steps(clone)
    ok = done.returncode == 0 and verdict == ["PASS"] and len(steps) == 1 and seconds < 360
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(
        f"{label}: fresh clone to {verdict[-1] if verdict else 'no verdict'} (exit {done.returncode}) in "
        f"{seconds:.0f} s (cpu {cpu:.0f} s), install included (target PASS, exit 0, < 360 s) "
        f"{'OK' if ok else 'FAILED'}; {_load()}"
    )
    print(
        f"{label}: "
        + ", ".join(f"{name} {s} s" for name, s in phases)
        + "; "
        + ("; ".join(calibration) or "no calibration line")
        + f"; seeds ran {sorted(steps)} steps"
    )
    ticks = re.compile(r"^(pgolf: dynamic: \d+s /|seed \d+/\d+ \(seed=\d+\) \w+: )")
    said = [line for line in output.splitlines() if not ticks.match(line)]
    print("\n".join(f"{label}:   {line}" for line in said[-(40 if not ok else 12) :]))
    return ok


def _record_steps(clone: Path) -> set:
    found = sorted(clone.glob("records/track_cpu_smoke/*/submission.json"))
    if not found:
        return set()
    results = json.loads(found[-1].read_text())["seed_results"].values()
    return {r.get("steps") for r in results}


def bench_fresh() -> bool:
    return _fresh_clone_to_pass("fresh", concurrent_load=False)


def bench_fresh_loaded() -> bool:
    return _fresh_clone_to_pass("fresh-loaded", concurrent_load=True)


def _stage_env(profile, data, paths, val_dir: Path) -> dict:
    from pgolf.pipeline.stages import base_env

    env = base_env(profile, 1, {})
    env.update(
        {
            "PGOLF_TRAIN_DATA": str(data.train),
            "PGOLF_VAL_DATA": str(val_dir),
            "PGOLF_TOKENIZER": str(data.tokenizer),
            "PGOLF_CHECKPOINT": str(paths.checkpoint),
            "PGOLF_ARTIFACT": str(paths.artifact),
            "PGOLF_RESULT": str(paths.result),
            "PGOLF_TRAIN_BUDGET_S": str(profile.train_cap_s - profile.quantize_reserve_s),
        }
    )
    return env


def _timed(env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REFERENCE)], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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
        traced_env = {
            **env,
            "PGOLF_STAGE": "eval",
            "PYTHONPATH": str(SHIM_DIR),
            "PGOLF_CANARY": str(canary_file),
            "PGOLF_LEDGER_DIR": str(work / "ledger"),
        }  # no device shim: a contract script, as the check runs it
        traced = min(_timed(traced_env) for _ in range(2))
        options = DynamicOptions(data=data.train, tokenizer=data.tokenizer, env=dict(profile.env), preset=False)
        start = time.perf_counter()
        report = audit([str(REFERENCE)], AuditOptions(dynamic=options))
        whole = time.perf_counter() - start
    overhead = traced / plain - 1
    ok = overhead < 0.25 and report.verdict == "pass"
    print(
        f"dynamic: reference eval pass on a {len(canary.tokens) - 1}-token canary: plain {plain:.1f} s, traced "
        f"{traced:.1f} s, tracer overhead {overhead:+.0%} (target < 25%) {'OK' if ok else 'SLOW'}"
    )
    print(
        f"dynamic: whole check (train, quantize, eval traced; verdict {report.verdict}) {whole:.1f} s = "
        f"{whole / plain:.1f}x a plain eval pass"
    )
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
    ok = (
        params["margin_nats_per_token"] > worst["fp32_loss"]
        and params["lowp_margin_nats_per_token"] > worst["bf16_loss"]
    )
    print(
        f"margin: worst mean shift per token: fp32 loss {worst['fp32_loss']:.2e} (catalog "
        f"{params['margin_nats_per_token']:.0e}), bf16 loss {worst['bf16_loss']:.4f} (catalog "
        f"{params['lowp_margin_nats_per_token']}) {'OK' if ok else 'TOO SMALL'}"
    )
    return ok


BENCHES = {
    "help": bench_help,
    "audit-one": bench_audit_one,
    "audit": bench_audit,
    "static": bench_static,
    "pipeline": bench_pipeline,
    "dynamic": bench_dynamic,
    "margin": bench_margin,
    "fresh": bench_fresh,
    "fresh-loaded": bench_fresh_loaded,
}

if __name__ == "__main__":
    os.chdir(REPO)
    chosen = sys.argv[1:] or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        sys.exit(f"unknown bench {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    results = [BENCHES[name]() for name in chosen]
    sys.exit(0 if all(results) else 1)
