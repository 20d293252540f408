"""pgolf-check: audit record folders and print a report; the exit code is the verdict.

0 pass, 1 fail, 2 could not check (bad input), 3 needs human review (cli_review.EXIT_CODES).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from . import __version__
from .cli_review import EXIT_CODES, explain, prepare, record_folders_of, review_options
from .clitypes import KEY_VALUE
from .errors import InputError
from .formatters import FORMATTERS
from .progress import Progress
from .rules import load_ruleset, ruleset_names
from .sandbox import DEFAULT_SANDBOX, runtime_help, runtime_names

if TYPE_CHECKING:  # the dynamic check loads only with --dynamic: --help and --version stay instant
    from .context import AuditOptions
    from .dynamic.harness import DynamicOptions
    from .selection import Selection


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.argument("targets", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATTERS)), default="human", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option(
    "--against",
    help="Baseline: a record folder, comma-separated per-seed val_bpb values, or `auto`: "
    "the best accepted record whose PR was opened earlier (PR mode or --pr-meta).",
)
@click.option(
    "--pr-meta",
    "pr_meta",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON of `gh pr view N --json number,createdAt,headRefOid,baseRefOid,mergedAt,state,title` "
    "(or `gh pr list --json ...`): rules are judged as in force when the PR was opened.",
)
@click.option(
    "--policy",
    type=click.Choice(["enforced", "written"]),
    default=None,
    help="Which significance policy decides R-SIGNIFICANCE [default: enforced].",
)
@click.option("--ruleset", help="Rule catalog to apply (default: from the record's track).")
@click.option("-v", "--verbose", is_flag=True, help="Show info findings too.")
@click.option("--list-rules", is_flag=True, help="List the rules of the ruleset and exit.")
@click.option(
    "--git",
    "git_repo",
    type=click.Path(file_okay=False, path_type=Path),
    help="PR mode: a git repository; audits every record folder --range adds.",
)
@click.option("--range", "git_range", help="PR mode: BASE..HEAD.")
@click.option(
    "--dynamic", is_flag=True, help="Also run the entry script, sandboxed and traced, on a canary validation set."
)
@click.option(
    "--data",
    "dyn_data",
    type=click.Path(file_okay=False, path_type=Path),
    help="--dynamic: training shards of the script's vocabulary, or a `pgolf data synth` folder "
    "[default: $PGOLF_DYNAMIC_DATA, else data/synth].",
)
@click.option(
    "--tokenizer",
    "dyn_tokenizer",
    type=click.Path(dir_okay=False, path_type=Path),
    help="--dynamic: the SentencePiece model of those shards (a synth folder names its own).",
)
@click.option(
    "--runtime",
    "dyn_runtime",
    type=click.Choice(runtime_names()),
    default=DEFAULT_SANDBOX,
    show_default=True,
    help=f"--dynamic: where the script runs. {runtime_help()}.",
)
@click.option(
    "--unsafe-local",
    is_flag=True,
    help="--dynamic: allow running the script unsandboxed (--runtime local, or when no sandbox can start).",
)
@click.option("--image", "dyn_image", default=None, help="--dynamic: image for docker [default: pgolf:cpu].")
@click.option(
    "--nproc",
    "dyn_nproc",
    type=click.IntRange(1, 8),
    default=1,
    show_default=True,
    help="--dynamic: processes (torchrun on gloo when > 1).",
)
@click.option(
    "--cap",
    "dyn_cap",
    type=click.FloatRange(1),
    default=900.0,
    show_default=True,
    help="--dynamic: wall-clock cap of the traced run, seconds.",
)
@click.option(
    "--set",
    "dyn_env",
    multiple=True,
    type=KEY_VALUE,
    help="--dynamic: an environment knob for the run, e.g. TTT_ENABLED=1 (repeatable).",
)
@click.option("--no-preset", is_flag=True, help="--dynamic: do not apply the tiny CPU preset.")
@click.option(
    "--device-shim",
    "dyn_shim",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="--dynamic: run CUDA code on the CPU (auto: unless the script speaks "
    "pgolf's stage contract, which runs on a CPU by itself).",
)
@click.option(
    "--keep",
    "dyn_keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="--dynamic: keep the run (log, ledger, canary) in this folder.",
)
@review_options
@click.version_option(__version__, prog_name="pgolf-check")
def main(
    targets: Sequence[str],
    fmt: str,
    output: Path | None,
    against: str | None,
    pr_meta: Path | None,
    policy: str | None,
    ruleset: str | None,
    verbose: bool,
    list_rules: bool,
    git_repo: Path | None,
    git_range: str | None,
    dynamic: bool,
    dyn_data: Path | None,
    dyn_tokenizer: Path | None,
    dyn_runtime: str,
    unsafe_local: bool,
    dyn_image: str | None,
    dyn_nproc: int,
    dyn_cap: float,
    dyn_env: tuple[tuple[str, str], ...],
    no_preset: bool,
    dyn_shim: str,
    dyn_keep: Path | None,
    **review: Any,
) -> None:
    """Audit record folders (or trees of them), single scripts, or the folders a git range adds."""
    started = time.monotonic()
    # the audit's modules load here, not with the CLI: --help and --version stay instant
    from .audit import audit, audit_git

    try:
        if review["explain"]:
            explain(review["explain"], review["color"])
            return
        if list_rules:
            _list_rules(ruleset or "track_10min_16mb")
            return
        if bool(git_repo) != bool(git_range):
            raise InputError(None, "--git and --range go together")
        if review["from_files"]:
            targets = record_folders_of(list(targets))
            if not targets:
                click.echo("pgolf-check: no record folder among the files; nothing to check", err=True)
                return
        if not targets and not git_repo:
            raise InputError(None, "give at least one record folder or script, or --git REPO --range BASE..HEAD")
        checking = prepare(review, list(targets), git_repo, git_range, fmt, verbose, policy, ruleset)
        settings = checking.settings
        dyn = (
            _dynamic_options(
                dyn_data,
                dyn_tokenizer,
                dyn_runtime,
                unsafe_local,
                dyn_image,
                dyn_nproc,
                dyn_cap,
                dyn_env,
                no_preset,
                dyn_shim,
                dyn_keep,
            )
            if dynamic
            else None
        )
        options = _audit_options(
            settings.policy, against, pr_meta, bool(git_repo), settings.ruleset, dyn, checking.selection
        )
        if settings.ruleset:
            load_ruleset(settings.ruleset)  # an unknown name is bad input, not a per-record error
        # --git and --range go together (checked above): with git_repo, git_range is a str
        report = audit_git(git_repo, cast(str, git_range), options) if git_repo else audit(list(targets), options)
    except InputError as exc:
        click.echo(f"pgolf-check: {exc}", err=True)
        sys.exit(2)
    if report.error and fmt == "human":
        click.echo(f"pgolf-check: {report.error}", err=True)
        sys.exit(2)
    checking.finish(report, output, time.monotonic() - started)


def _audit_options(
    policy: str,
    against: str | None,
    pr_meta: Path | None,
    pr_mode: bool,
    ruleset: str | None,
    dyn: DynamicOptions | None,
    selection: Selection | None = None,
) -> AuditOptions:
    # records, logs and baselines load here, not with the CLI: --help stays quick
    from . import prmeta
    from .baseline import AUTO, parse_baseline
    from .context import AuditOptions

    meta = prmeta.load(pr_meta) if pr_meta else None
    auto = against is not None and against.strip().lower() == AUTO
    if auto and not (pr_mode or meta):
        raise InputError(
            None,
            "--against auto needs PR mode (--git/--range) or --pr-meta: the frontier is "
            "ordered by when PRs were opened",
        )
    return AuditOptions(
        policy=policy,
        against=parse_baseline(against) if against and not auto else None,
        against_auto=auto,
        ruleset=ruleset,
        dynamic=dyn,
        pr_meta=meta,
        selection=selection,
    )


def _dynamic_options(
    data: Path | None,
    tokenizer: Path | None,
    runtime: str,
    unsafe_local: bool,
    image: str | None,
    nproc: int,
    cap: float,
    env: tuple[tuple[str, str], ...],
    no_preset: bool,
    shim: str,
    keep: Path | None,
) -> DynamicOptions:
    """Where no sandbox can start, --dynamic refuses (one line, exit 2) unless --unsafe-local."""
    from .dynamic.harness import DynamicOptions
    from .sandbox import RuntimeOptions, choose_runtime

    knobs = dict(env)
    chosen = choose_runtime(runtime, RuntimeOptions(image=image, device="cpu"), unsafe_local=unsafe_local)
    if not chosen.isolated:
        click.echo(
            "pgolf-check: --unsafe-local: the script runs unsandboxed, with your access to this machine", err=True
        )
    return DynamicOptions(
        data=data,
        tokenizer=tokenizer,
        runtime=chosen,
        nproc=nproc,
        cap_s=cap,
        env=knobs,
        preset=not no_preset,
        workdir=keep,
        device_shim={"auto": None, "on": True, "off": False}[shim],
        progress=Progress(prefix="pgolf-check"),
    )


def _list_rules(name: str) -> None:
    from .rules import load_ruleset

    for rule in load_ruleset(name).rules:
        state = "" if rule.enabled else "  (disabled)"
        click.echo(
            f"{rule.id:<20} {rule.kind:<7} {rule.severity:<6} {rule.title}{state}\n{'':<20} source: {rule.source}"
        )
    click.echo(f"rulesets: {', '.join(ruleset_names())}; `pgolf-check --explain ID` explains a rule")


def run() -> None:
    """Entry point: no traceback for the user unless PGOLF_DEBUG is set."""
    try:
        main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last line of defence for the promise of one-line errors
        if os.environ.get("PGOLF_DEBUG"):
            raise
        click.echo(
            f"pgolf-check: internal error: {type(exc).__name__}: {exc} (PGOLF_DEBUG=1 for a traceback)", err=True
        )
        sys.exit(2)
