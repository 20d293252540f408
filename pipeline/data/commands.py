"""The `pgolf data` click group: `synth` (offline dataset) and `fetch` (official download)."""

from __future__ import annotations

from pathlib import Path

import click

from pgolf.compliance.progress import Progress

from .fetch import (
    DEFAULT_ENDPOINT,
    DEFAULT_TRAIN_SHARDS,
    ENDPOINT_ENV,
    LOCK_NAME,
    VARIANTS,
    FetchConfig,
    FetchError,
    fetch,
)
from .synth import SynthConfig, SynthError, synth


@click.group("data")
def data() -> None:
    """Build or download token shards in the official format (fineweb_{train,val}_NNNNNN.bin)."""


@data.command("synth")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/synth"),
    show_default=True,
    help="Output folder: tokenizers/, datasets/synth_sp<V>/ and manifest.json go here.",
)
@click.option(
    "--vocab-size",
    type=click.IntRange(261, 65536),
    default=1024,
    show_default=True,
    help="SentencePiece BPE vocabulary size (ignored with --tokenizer).",
)
@click.option(
    "--val-docs", type=click.IntRange(min=1), default=None, help="Hold out exactly this many documents for validation."
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Hold out this fraction of documents for validation [default: 0.1].",
)
@click.option(
    "--train-shards",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Split train tokens into N shards; multi-process runs need at least world-size shards.",
)
@click.option("--seed", type=int, default=1337, show_default=True, help="Seed of the document shuffle and the trainer.")
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=None,
    help="Stop collecting text after this many characters [default: all, about 2.2 M].",
)
@click.option(
    "--tokenizer",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Tokenize with this existing .model instead of training one "
    "(e.g. /work/shared/tokenizers/fineweb_1024_bpe.model).",
)
def synth_command(
    out: Path,
    vocab_size: int,
    val_docs: int | None,
    val_fraction: float | None,
    train_shards: int,
    seed: int,
    max_chars: int | None,
    tokenizer: Path | None,
) -> None:
    """Build a small dataset offline from the Python docs and stdlib docstrings.

    Documents are split into train/val by document, a SentencePiece BPE is trained on the
    train documents, and every document is written with a leading BOS (id 1). Running it
    again with the same options does nothing when the files still match manifest.json.
    """
    if val_docs is not None and val_fraction is not None:
        raise click.UsageError("give --val-docs or --val-fraction, not both")
    config = SynthConfig(
        out=out,
        vocab_size=vocab_size,
        val_docs=val_docs,
        val_fraction=0.1 if val_fraction is None else val_fraction,
        train_shards=train_shards,
        seed=seed,
        max_chars=max_chars,
        tokenizer=tokenizer,
    )
    try:
        with Progress(prefix="pgolf data").task("synth", kind="synth") as task:
            result = synth(config, log=task.note)
    except SynthError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write under {out}: {exc.strerror or exc}") from None
    if result.skipped:
        click.echo(f"up to date: {out / 'manifest.json'} matches these options and every file hash; nothing to do")
        return
    splits = result.manifest["splits"]
    click.echo(
        f"wrote {out}/{result.manifest['dataset']}: {splits['train']['tokens']} train tokens in "
        f"{train_shards} shard(s), {splits['val']['tokens']} val tokens, {splits['val']['docs']} val docs, "
        f"vocab {result.manifest['tokenizer']['vocab_size']} in {result.seconds:.1f}s"
    )


@data.command("fetch")
@click.option(
    "--variant",
    type=click.Choice(sorted(VARIANTS)),
    default="sp1024",
    show_default=True,
    help="Tokenizer family; sp1024 is the public export, sp4096/sp8192 come from kevclark/parameter-golf.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Local data root: datasets/fineweb10B_<variant>/, tokenizers/, manifest.json.",
)
@click.option(
    "--train-shards",
    type=click.IntRange(min=0),
    default=DEFAULT_TRAIN_SHARDS,
    show_default=True,
    help="Fetch this prefix of the train shards (100M tokens, ~200 MB each). Validation is always whole.",
)
@click.option(
    "--endpoint",
    default=None,
    help=f"Hub URL (http(s):// or file://) [default: ${ENDPOINT_ENV} or {DEFAULT_ENDPOINT}].",
)
@click.option("--repo", default=None, help="Dataset repo id [default: the variant's].")
@click.option("--revision", default=None, help="Commit or branch [default: the variant's pinned revision].")
@click.option(
    "--hashes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON of repo path -> {sha256, size} to verify against.",
)
@click.option(
    "--lock",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Lock file recording hashes on first download [default: <out>/{LOCK_NAME}].",
)
@click.option("--strict", is_flag=True, help="Fail on a file with no known hash instead of trusting it on first use.")
@click.option(
    "--skip-manifest", is_flag=True, help="Do not download datasets/manifest.json; use a local copy or built-in counts."
)
@click.option(
    "--retries", type=click.IntRange(min=0), default=4, show_default=True, help="Retries per file on network errors."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds without data before a request counts as failed.",
)
def fetch_command(
    variant: str,
    out: Path,
    train_shards: int,
    endpoint: str | None,
    repo: str | None,
    revision: str | None,
    hashes: Path | None,
    lock: Path | None,
    strict: bool,
    skip_manifest: bool,
    retries: int,
    timeout_s: float,
) -> None:
    """Download the official FineWeb shards and tokenizer from the Hugging Face Hub.

    Resumes partial downloads, retries with backoff, skips files already present with the
    right hash, and verifies every file's sha256 (from --hashes, else from the lock file).
    """
    config = FetchConfig(
        variant=variant,
        out=out,
        train_shards=train_shards,
        endpoint=endpoint,
        repo=repo,
        revision=revision,
        hashes=hashes,
        lock=lock,
        strict=strict,
        skip_manifest=skip_manifest,
        retries=retries,
        timeout_s=timeout_s,
    )
    progress = Progress(prefix="pgolf data")
    try:
        report = fetch(config, progress=progress.transfer, log=progress.say)
    except FetchError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write under {out}: {exc.strerror or exc}") from None
    counts = {a: sum(f.action == a for f in report.files) for a in ("downloaded", "resumed", "present")}
    total = sum(f.size for f in report.files)
    click.echo(
        f"{variant}: {len(report.files)} files ({counts['downloaded']} downloaded, {counts['resumed']} resumed, "
        f"{counts['present']} already present), {total / 1e6:.1f} MB under {out}; "
        f"{report.repo}@{report.revision}; hashes in {report.lock}"
    )
