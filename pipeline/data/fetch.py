"""`pgolf data fetch`: download the published challenge data from Hugging Face.

Layout facts, from openai/parameter-golf `data/cached_challenge_fineweb.py` and
`data/README.md`: the data is the Hugging Face *dataset* repo
`willdepueoai/parameter-golf` (sp1024; the sp4096/sp8192 exports live in
`kevclark/parameter-golf`), rooted under the repo folder `datasets/`:

    datasets/manifest.json
    datasets/datasets/fineweb10B_<variant>/fineweb_{val,train}_%06d.bin
    datasets/tokenizers/fineweb_<V>_bpe.{model,vocab}

`manifest.json` lists `datasets` (name, tokenizer_name, stats.files_train/files_val) and
`tokenizers` (name, model_path, vocab_path). Shards hold 100M tokens; the helper's
default is 80 train shards plus the whole validation split. Locally the `datasets/`
prefix is dropped, as the official helper does: `<out>/datasets/fineweb10B_sp1024/...`.

Files are fetched from `{endpoint}/datasets/{repo}/resolve/{revision}/{path}` with plain
urllib (no huggingface_hub), streamed to `<file>.part`, resumed with HTTP Range, retried
with exponential backoff, and checked against sha256 hashes: from `--hashes` when given,
else from the lock file, where the hashes seen on first download are recorded
(trust on first use), so every later fetch of the same repo@revision is verified.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...compliance.fsutil import atomic_write_text, sha256_file
from ...compliance.shards import shard_name

DEFAULT_ENDPOINT = "https://huggingface.co"
ENDPOINT_ENV = "PGOLF_HF_ENDPOINT"
REMOTE_ROOT = "datasets"
REMOTE_MANIFEST = f"{REMOTE_ROOT}/manifest.json"
LOCK_NAME = "pgolf-fetch-lock.json"
LOCK_FORMAT = "pgolf-fetch-lock/1"
USER_AGENT = "pgolf-data-fetch/1"
CHUNK_BYTES = 1 << 20
DEFAULT_TRAIN_SHARDS = 80  # the official helper's default: 8B training tokens

PUBLIC_REPO = "willdepueoai/parameter-golf"
# A commit of PUBLIC_REPO, not a branch: it is the Hugging Face cache snapshot directory
# (`datasets--willdepueoai--parameter-golf/snapshots/<sha>`) in several independent
# public run scripts, and the revision pinned by aim-do/thetascan's adapter_manifest.json.
# It could not be checked against the Hub from this machine (no network).
PUBLIC_REVISION = "a85b0e6035c3c94bc23685a07c81a8f3bf89db80"
FRONTIER_REPO = "kevclark/parameter-golf"
# WARNING: NOT A PIN. No commit of kevclark/parameter-golf could be found offline, so
# this is the branch name: its files may change under the same name. The lock file
# (trust on first use) turns such a change into a hash-mismatch error.
FRONTIER_REVISION = "main"


@dataclass(frozen=True)
class Variant:
    name: str
    repo: str
    revision: str
    dataset_dir: str
    tokenizer_files: tuple[str, ...]  # repo paths below REMOTE_ROOT, used without a manifest
    val_shards: int = 1  # likewise: the official fallback metadata says 1 for every variant


def _sp_variant(vocab: int, repo: str, revision: str) -> Variant:
    stem = f"tokenizers/fineweb_{vocab}_bpe"
    return Variant(f"sp{vocab}", repo, revision, f"fineweb10B_sp{vocab}", (f"{stem}.model", f"{stem}.vocab"))


VARIANTS: dict[str, Variant] = {
    "sp1024": _sp_variant(1024, PUBLIC_REPO, PUBLIC_REVISION),
    "sp4096": _sp_variant(4096, FRONTIER_REPO, FRONTIER_REVISION),
    "sp8192": _sp_variant(8192, FRONTIER_REPO, FRONTIER_REVISION),
}


class FetchError(Exception):
    """A download failed; the message is one line and names the file."""


class NotFoundError(FetchError):
    """The server has no such file (HTTP 404)."""


class HashMismatchError(FetchError):
    """A file's sha256 or size differs from the expected one."""


class NetworkError(FetchError):
    """The server could not be reached, or kept failing, after every retry."""


class _Transient(Exception):
    """A failure worth retrying (connection lost, timeout, HTTP 5xx/429)."""


@dataclass(frozen=True)
class Expected:
    sha256: str
    size: int | None = None
    origin: str = ""  # where the expectation came from, for the error message


@dataclass(frozen=True)
class FetchConfig:
    variant: str = "sp1024"
    out: Path = Path("data")
    train_shards: int = DEFAULT_TRAIN_SHARDS
    endpoint: str | None = None  # else $PGOLF_HF_ENDPOINT, else huggingface.co
    repo: str | None = None  # else the variant's repo
    revision: str | None = None  # else the variant's pinned revision
    hashes: Path | None = None  # JSON: repo path -> {"sha256", "size"}
    lock: Path | None = None  # else <out>/pgolf-fetch-lock.json
    strict: bool = False  # refuse a file with no known hash instead of trusting it
    skip_manifest: bool = False
    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 60.0


@dataclass
class FileResult:
    remote: str
    local: Path
    sha256: str
    size: int
    action: str  # "downloaded", "resumed" or "present"
    trusted: bool = False  # hash recorded on first use, nothing to check it against


@dataclass
class FetchReport:
    endpoint: str
    repo: str
    revision: str
    lock: Path
    files: list[FileResult] = field(default_factory=list)


Progress = Callable[[str, int, "int | None"], None]
Log = Callable[[str], None]


def _quiet(*_args: object) -> None:
    return None


# ---------------------------------------------------------------- addresses


def resolve_endpoint(explicit: str | None = None) -> str:
    """`--endpoint`, else $PGOLF_HF_ENDPOINT, else huggingface.co; http(s) or file only."""
    endpoint = (explicit or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
    if urllib.parse.urlsplit(endpoint).scheme not in ("http", "https", "file"):
        raise FetchError(f"endpoint must be an http(s):// or file:// URL, got {endpoint!r}")
    return endpoint


def file_url(endpoint: str, repo: str, revision: str, path: str) -> str:
    quoted = urllib.parse.quote(f"datasets/{repo}/resolve/{revision}/{path}", safe="/")
    return f"{endpoint.rstrip('/')}/{quoted}"


def local_path(out: Path, remote: str) -> Path:
    """Where a repo path lands locally: the `datasets/` root prefix is dropped."""
    parts = Path(remote).parts
    if parts[:1] == (REMOTE_ROOT,):
        parts = parts[1:]
    if not parts or ".." in parts or Path(remote).is_absolute():
        raise FetchError(f"refusing unsafe repo path {remote!r}")
    return Path(out).joinpath(*parts)


def plan_files(variant: Variant, manifest: dict | None, train_shards: int) -> list[str]:
    """Repo paths to fetch: every val shard, the first `train_shards` train shards, the tokenizer."""
    val_shards, max_train, tokenizer_files = _variant_layout(variant, manifest)
    if train_shards < 0:
        raise FetchError(f"train shards must be >= 0, got {train_shards}")
    if max_train is not None and train_shards > max_train:
        raise FetchError(f"{variant.name} has only {max_train} train shards, {train_shards} requested")
    prefix = f"{REMOTE_ROOT}/datasets/{variant.dataset_dir}"
    paths = [f"{prefix}/{shard_name('val', i)}" for i in range(val_shards)]
    paths += [f"{prefix}/{shard_name('train', i)}" for i in range(train_shards)]
    return paths + [f"{REMOTE_ROOT}/{name}" for name in tokenizer_files]


def _variant_layout(variant: Variant, manifest: dict | None) -> tuple[int, int | None, tuple[str, ...]]:
    if manifest is None:
        return variant.val_shards, None, variant.tokenizer_files
    datasets = [d for d in manifest.get("datasets") or [] if isinstance(d, dict)]
    entry = next((d for d in datasets if d.get("name") == variant.dataset_dir), None)
    if entry is None:
        raise FetchError(f"dataset {variant.dataset_dir} is not listed in the remote {REMOTE_MANIFEST}")
    stats = entry.get("stats") or {}
    try:
        val_shards, max_train = int(stats["files_val"]), int(stats["files_train"])
    except (KeyError, TypeError, ValueError):
        raise FetchError(f"{REMOTE_MANIFEST}: no shard counts for {variant.dataset_dir}") from None
    tokenizers = [t for t in manifest.get("tokenizers") or [] if isinstance(t, dict)]
    tokenizer = next((t for t in tokenizers if t.get("name") == entry.get("tokenizer_name")), None)
    files = tuple(str(tokenizer[k]) for k in ("model_path", "vocab_path") if tokenizer and tokenizer.get(k))
    return val_shards, max_train, files or variant.tokenizer_files


# ---------------------------------------------------------------- hashes and the lock


def _digest(path: Path) -> tuple[str, int]:
    return sha256_file(path), path.stat().st_size


def load_hashes(path: Path) -> dict[str, Expected]:
    """A hash manifest: {path: {"sha256", "size"}}, optionally under a "files" key."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot read hash manifest {path}: {_one_line(exc)}") from None
    table = data.get("files", data) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise FetchError(f"hash manifest {path} is not a JSON object of path -> {{sha256, size}}")
    origin = f" (hash manifest {path})"
    return {str(k): e for k, v in table.items() if (e := _expected(v, origin)) is not None}


def _expected(entry: object, origin: str = "") -> Expected | None:
    if isinstance(entry, str):
        entry = {"sha256": entry}
    if not isinstance(entry, dict) or not re.fullmatch(r"[0-9a-fA-F]{64}", str(entry.get("sha256", ""))):
        return None
    size = entry.get("size")
    return Expected(str(entry["sha256"]).lower(), size if isinstance(size, int) else None, origin)


class Lock:
    """Hashes seen on first download, per repo@revision, so later fetches are verified."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.data = self._load()

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": LOCK_FORMAT, "sources": {}}
        except (OSError, ValueError) as exc:
            raise FetchError(f"cannot read lock file {self.path}: {_one_line(exc)}") from None
        if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
            raise FetchError(f"{self.path} is not a {LOCK_FORMAT} lock file")
        return data

    def _files(self) -> dict:
        return self.data.setdefault("sources", {}).setdefault(self.key, {}).setdefault("files", {})

    def get(self, remote: str) -> Expected | None:
        origin = f" (recorded on first download in {self.path}; the remote file changed?)"
        return _expected(self._files().get(remote), origin)

    def record(self, remote: str, sha256: str, size: int) -> None:
        self._files()[remote] = {"sha256": sha256, "size": size}
        atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------- one file over HTTP


def download(
    url: str,
    dest: Path,
    *,
    label: str,
    expected: Expected | None = None,
    retries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    progress: Progress = _quiet,
) -> tuple[str, int, bool]:
    """Fetch `url` into `dest` via `dest.part`; return (sha256, size, resumed).

    A partial file left by an earlier run is resumed. When a resumed file fails its
    hash, the partial may have been stale, so it is fetched once more from scratch
    before the mismatch is reported.
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    resumed = _fetch_with_retries(url, part, label, retries, backoff_s, timeout_s, progress)
    digest, size = _digest(part)
    if resumed and _mismatch(expected, digest, size):
        part.unlink()
        _fetch_with_retries(url, part, label, retries, backoff_s, timeout_s, progress)
        digest, size = _digest(part)
    if expected is not None and _mismatch(expected, digest, size):
        part.unlink()
        raise HashMismatchError(f"{label}: {_mismatch(expected, digest, size)}")
    os.replace(part, dest)
    return digest, size, resumed


def _mismatch(expected: Expected | None, digest: str, size: int) -> str:
    if expected is None:
        return ""
    if expected.size is not None and expected.size != size:
        return f"size {size} bytes, expected {expected.size}{expected.origin}"
    if expected.sha256 != digest:
        return f"sha256 {digest}, expected {expected.sha256}{expected.origin}"
    return ""


def _fetch_with_retries(
    url: str, part: Path, label: str, retries: int, backoff_s: float, timeout_s: float, progress: Progress
) -> bool:
    for attempt in range(retries + 1):
        try:
            return _stream(url, part, label, timeout_s, progress)
        except _Transient as exc:
            if attempt == retries:
                raise NetworkError(
                    f"{label}: {exc} (gave up after {retries + 1} attempt{'s' if retries else ''})"
                ) from None
            time.sleep(min(backoff_s * 2**attempt, 60.0))
    raise AssertionError("unreachable")


def _stream(url: str, part: Path, label: str, timeout_s: float, progress: Progress) -> bool:
    """One request; appends to `part` when the server honours Range. Returns True if it resumed."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    response = _open(request, part, label, timeout_s, offset)
    with response:
        status = response.status or 200  # file:// responses carry no status
        if status == 206 and _range_start(response.headers.get("Content-Range")) != offset:
            part.unlink(missing_ok=True)
            raise _Transient("server answered a different byte range; starting over")
        if status != 206:
            offset = 0  # the server ignored Range and sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        done = _copy_body(response, part, offset, total, label, progress)
    if total is not None and done < total:
        raise _Transient(f"connection closed after {done} of {total} bytes")
    return offset > 0


def _open(request: urllib.request.Request, part: Path, label: str, timeout_s: float, offset: int):
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise NotFoundError(f"{label}: not found (HTTP 404) at {request.full_url}") from None
        if exc.code == 416 and offset:
            part.unlink(missing_ok=True)  # partial is longer than the file: stale, start over
            raise _Transient("HTTP 416 for a stale partial download") from None
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Transient(f"HTTP {exc.code} from {request.full_url}") from None
        raise FetchError(f"{label}: HTTP {exc.code} {exc.reason} from {request.full_url}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):
            raise NotFoundError(f"{label}: not found at {request.full_url}") from None
        raise _Transient(f"cannot reach {_origin(request.full_url)}: {_one_line(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"request to {_origin(request.full_url)} failed: {_one_line(exc)}") from None


def _copy_body(response, part: Path, offset: int, total: int | None, label: str, progress: Progress) -> int:
    done = offset
    try:
        with open(part, "ab" if offset else "wb") as handle:
            while block := response.read(CHUNK_BYTES):
                handle.write(block)
                done += len(block)
                progress(label, done, total)
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, OSError) and exc.filename:
            raise FetchError(f"{label}: cannot write {exc.filename}: {exc.strerror}") from None
        raise _Transient(f"connection lost after {done} bytes: {_one_line(exc)}") from None
    return done


def _range_start(content_range: str | None) -> int:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", content_range or "")
    return int(match.group(1)) if match else -1


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _one_line(value: object) -> str:
    text = str(value).strip() or type(value).__name__
    return text.splitlines()[0]


# ---------------------------------------------------------------- the command's work


def fetch(config: FetchConfig, progress: Progress = _quiet, log: Log = _quiet) -> FetchReport:
    """Download (or verify) one variant's validation shards, a train-shard prefix and its tokenizer."""
    variant = VARIANTS.get(config.variant)
    if variant is None:
        raise FetchError(f"unknown variant {config.variant!r}; known: {', '.join(sorted(VARIANTS))}")
    report = FetchReport(
        endpoint=resolve_endpoint(config.endpoint),
        repo=config.repo or variant.repo,
        revision=config.revision or variant.revision,
        lock=Path(config.lock or Path(config.out) / LOCK_NAME),
    )
    if report.revision == FRONTIER_REVISION:
        log(f"warning: {report.repo} is fetched at branch {report.revision!r}, not a pinned commit")
    hashes = load_hashes(config.hashes) if config.hashes else {}
    lock = Lock(report.lock, f"{report.repo}@{report.revision}")
    manifest = _remote_manifest(config, report, hashes, lock, progress, log)
    for remote in plan_files(variant, manifest, config.train_shards):
        report.files.append(_fetch_one(config, report, remote, hashes, lock, progress, log))
    return report


def _remote_manifest(config, report, hashes, lock, progress, log) -> dict | None:
    path = local_path(config.out, REMOTE_MANIFEST)
    if not config.skip_manifest:
        report.files.append(_fetch_one(config, report, REMOTE_MANIFEST, hashes, lock, progress, log))
    elif not path.is_file():
        log(f"no local {path}: using built-in shard counts")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FetchError(f"{path}: unreadable manifest ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise FetchError(f"{path}: manifest is not a JSON object")
    return data


def _fetch_one(config, report, remote, hashes, lock, progress, log) -> FileResult:
    dest = local_path(config.out, remote)
    stripped = dest.relative_to(config.out).as_posix()
    expected = hashes.get(remote) or hashes.get(stripped) or lock.get(remote)
    if expected is None and config.strict:
        raise FetchError(f"{remote}: no expected sha256 in the hash manifest or lock (strict mode)")
    if dest.is_file():
        digest, size = _digest(dest)
        if not _mismatch(expected, digest, size):
            return _finish(lock, FileResult(remote, dest, digest, size, "present", expected is None), log)
        log(f"{remote}: local copy does not match the expected hash; downloading again")
    url = file_url(report.endpoint, report.repo, report.revision, remote)
    digest, size, resumed = download(
        url,
        dest,
        label=remote,
        expected=expected,
        retries=config.retries,
        backoff_s=config.backoff_s,
        timeout_s=config.timeout_s,
        progress=progress,
    )
    action = "resumed" if resumed else "downloaded"
    return _finish(lock, FileResult(remote, dest, digest, size, action, expected is None), log)


def _finish(lock: Lock, result: FileResult, log: Log) -> FileResult:
    lock.record(result.remote, result.sha256, result.size)
    trust = " (trusted on first use)" if result.trusted else ""
    log(f"{result.action:>10}  {result.remote}  {result.size} bytes  sha256 {result.sha256[:16]}{trust}")
    return result


__all__ = [
    "DEFAULT_ENDPOINT",
    "ENDPOINT_ENV",
    "Expected",
    "FetchConfig",
    "FetchError",
    "FetchReport",
    "FileResult",
    "HashMismatchError",
    "NetworkError",
    "NotFoundError",
    "PUBLIC_REPO",
    "PUBLIC_REVISION",
    "VARIANTS",
    "Variant",
    "download",
    "fetch",
    "file_url",
    "load_hashes",
    "local_path",
    "plan_files",
    "resolve_endpoint",
]
