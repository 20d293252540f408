"""The `pgolf` command: submit, init, profiles, and data (synth, fetch)."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import click

from pgolf.compliance import __version__
from pgolf.compliance.clitypes import KEY_VALUE
from pgolf.compliance.errors import InputError

from ..compliance.progress import Progress
from ..compliance.sandbox import RuntimeOptions, choose_runtime, runtime_help, runtime_names
from ..compliance.sandbox.docker import DockerRuntimeError
from .data.commands import data
from .data.synth import SynthConfig, SynthError, synth
from .profiles import ProfileError, get_profile, load_profiles
from .record_writer import RecordExists, RecordMeta
from .stages import DataPaths
from .submit import SubmitError, SubmitRequest, submit, writable_dir

REFERENCE = Path(__file__).with_name("reference") / "train_gpt.py"
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgolf")
def main() -> None:
    """Run Parameter Golf submissions under caps pgolf enforces, and write their records."""


main.add_command(data)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"seeds must be integers: {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"give distinct seeds: {text!r}")
    return seeds


def _default_data(out: Path) -> DataPaths:
    """The embedded default: the synthetic dataset, built offline on first use."""
    try:
        if not (out / "manifest.json").is_file():
            writable_dir(out)  # before anything is built, not after
        with Progress(prefix="pgolf data").task("synth", kind="synth") as task:
            result = synth(SynthConfig(out=out), log=task.note)
    except (SynthError, SubmitError) as exc:
        raise click.ClickException(str(exc)) from None
    manifest = result.manifest
    dataset = out / manifest["dataset"]
    return DataPaths(train=dataset, val=dataset, tokenizer=out / manifest["tokenizer"]["model"])


def _data_paths(data_dir, train, val, tokenizer) -> DataPaths:
    if train or val or tokenizer:
        if not (train and val and tokenizer):
            raise click.UsageError("--train-data, --val-data and --tokenizer go together")
        return DataPaths(Path(train).resolve(), Path(val).resolve(), Path(tokenizer).resolve())
    return _default_data(Path(data_dir).resolve())


def _runtime(name: str | None, image: str | None, profile, trusted: bool, unsafe_local: bool):
    """--runtime, else the sandbox (the local runtime for the bundled reference)."""
    return choose_runtime(
        name, RuntimeOptions(image=image, device=profile.device), trusted=trusted, unsafe_local=unsafe_local
    )


@main.command("submit")
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=REFERENCE,
    show_default="the bundled reference submission",
    help="The submission's entry script.",
)
@click.option("--seeds", default="42 314 999", show_default=True, help="Seeds, space or comma separated.")
@click.option(
    "--profile", "profile_name", default="cpu-smoke", show_default=True, help="Run profile: caps and process count."
)
@click.option(
    "--name", default=None, help="Record name (folder YYYY-MM-DD_<name>) [default: from the script's folder]."
)
@click.option("--data-dir", default="data/synth", show_default=True, help="Synthetic data, built here if absent.")
@click.option("--train-data", type=click.Path(exists=True, file_okay=False), help="Directory of fineweb_train_*.bin.")
@click.option("--val-data", type=click.Path(exists=True, file_okay=False), help="Directory of fineweb_val_*.bin.")
@click.option("--tokenizer", type=click.Path(exists=True, dir_okay=False), help="SentencePiece .model.")
@click.option(
    "--runtime",
    "runtime_name",
    type=click.Choice(runtime_names()),
    default=None,
    help=f"Where stages run [default: bwrap; local for the bundled reference]. {runtime_help()}.",
)
@click.option(
    "--unsafe-local",
    is_flag=True,
    help="Allow the local runtime for a script that is not the bundled reference (no isolation).",
)
@click.option(
    "--image", default=None, help="Image for --runtime docker [default: pgolf:cpu, or pgolf:cuda with a GPU profile]."
)
@click.option(
    "--records-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("records"), show_default=True
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Per-seed state and logs [default: runs/<name>].",
)
@click.option("--set", "sets", multiple=True, type=KEY_VALUE, help="Environment for the script (repeatable).")
@click.option("--pack-code", is_flag=True, help="Count (and record) the code as an lzma+b85 wrapper.")
@click.option("--force", is_flag=True, help="Replace an existing record; restart a run of other code.")
@click.option("--retry-failed", is_flag=True, help="Run again the seeds that failed before.")
@click.option("--against", default=None, help="Baseline for R-SIGNIFICANCE: a record folder or per-seed values.")
@click.option("--policy", type=click.Choice(["enforced", "written"]), default="enforced", show_default=True)
@click.option("--author", default="anonymous", show_default=True)
@click.option("--github-id", default="", show_default=False)
@click.option("--blurb", default="", help="One paragraph for the README and submission.json.")
@click.option(
    "--dynamic/--no-dynamic",
    default=True,
    show_default=True,
    help="Check the record with one traced run on a canary validation set (pgolf-check --dynamic).",
)
@click.option(
    "--dynamic-cap",
    type=click.FloatRange(min=1.0),
    default=None,
    metavar="SECONDS",
    help="Cap of the traced run [default: the profile's multiple of the slowest seed's measured "
    "time, never under its floor].",
)
def submit_command(
    script,
    seeds,
    profile_name,
    name,
    data_dir,
    train_data,
    val_data,
    tokenizer,
    runtime_name,
    unsafe_local,
    image,
    records_dir,
    work_dir,
    sets,
    pack_code,
    force,
    retry_failed,
    against,
    policy,
    author,
    github_id,
    blurb,
    dynamic,
    dynamic_cap,
):
    """Train, quantize and evaluate SCRIPT for each seed under enforced caps; write and check the record."""
    trusted = script.resolve() == REFERENCE.resolve()
    try:
        profile = get_profile(profile_name)
        runtime = _runtime(runtime_name, image, profile, trusted, unsafe_local)
    except (ProfileError, ValueError, InputError) as exc:
        raise click.ClickException(str(exc)) from None
    seed_list = _parse_seeds(seeds)
    name = name or ("pgolf_reference" if trusted else script.resolve().parent.name)
    data_paths = _data_paths(data_dir, train_data, val_data, tokenizer)
    meta = RecordMeta(
        name=name,
        author=author,
        github_id=github_id,
        blurb=blurb or f"{name}, run by pgolf on profile {profile.name}.",
        profile=profile,
        commands=[shlex.join(["pgolf", "submit", *sys.argv[2:]])],
        pack_code=pack_code,
    )
    request = SubmitRequest(
        script=script.resolve(),
        seeds=seed_list,
        profile=profile,
        data=data_paths,
        runtime=runtime,
        work_dir=(work_dir or Path("runs") / name).resolve(),
        records_dir=records_dir,
        meta=meta,
        overrides=dict(sets),
        force=force,
        retry_failed=retry_failed,
        against=against,
        policy=policy,
        dynamic=dynamic,
        dynamic_cap_s=dynamic_cap,
        trusted=trusted,
    )
    try:
        code = submit(request, Progress())
    except (SubmitError, RecordExists, InputError, DockerRuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\npgolf: interrupted; finished seeds are kept, rerun the same command to continue", err=True)
        sys.exit(130)
    sys.exit(code)


@main.command("init")
@click.argument("name")
@click.option(
    "--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("submissions"), show_default=True
)
def init_command(name: str, parent: Path):
    """Start a submission from the bundled reference script (it speaks the stage contract)."""
    if not PLAIN_NAME.match(name) or name in (".", ".."):
        raise click.BadParameter(
            f"{name!r}: use a plain name (letters, digits, '.', '_', '-'), not a path; --dir chooses the parent folder",
            param_hint="NAME",
        )
    dest = parent / name
    if dest.exists():
        raise click.ClickException(f"{dest} exists")
    dest.mkdir(parents=True)
    shutil.copy2(REFERENCE, dest / "train_gpt.py")
    click.echo(f"created {dest / 'train_gpt.py'}; run it with: pgolf submit --script {dest / 'train_gpt.py'}")


@main.command("env")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report (goes into provenance).")
@click.option(
    "--lock",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Expected environment [default: the image's /etc/pgolf/env-lock.json].",
)
def env_command(as_json, lock):
    """Preflight: torch, CUDA, cuDNN, FA3, GPUs and packages against the image's lock."""
    from .env_check import run_env

    sys.exit(run_env(lock, as_json, click.echo))


@main.command("profiles")
def profiles_command():
    """List run profiles and their caps."""
    try:
        profiles = load_profiles()
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from None
    for profile in profiles.values():
        c = profile.caps
        scaled = f" (x up to {profile.max_cap_scale:g} by calibration)" if profile.calibration_reference_s else ""
        click.echo(
            f"{profile.name:<10} train+quantize {c['train_s']:.0f} s, eval {c['eval_s']:.0f} s{scaled}, "
            f"{c['bytes']:,} bytes, {c['nproc']} proc  ({profile.description}; caps from ruleset "
            f"{profile.ruleset})"
        )
