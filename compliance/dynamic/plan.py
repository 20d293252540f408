"""What the traced run sets, and why: the run's own configuration, the tiny preset, the caps on
evaluation work, the knobs the user set, in that order of precedence (later wins).

- The run's configuration (README run command, the logs' hyperparameter dumps) switches on what
  the submitted run used (`SLOT_ENABLED=1` from the README); a dump's `slot_enabled: True` is mapped
  to the knob the script reads (`SLOT_ENABLED`, by the binding the data flow found), and only knobs
  the script reads are passed on. Paths are never taken from it: the harness names its own.
- The tiny preset (preset.yaml) shrinks training; the eval preset (eval_preset.yaml) caps what the
  script does at evaluation, for the canary's size.
- Knobs are read from every source the run executes: the decoded entry script, the Python files
  beside it, and payloads it unpacks itself (literals that decode to Python source).
"""

from __future__ import annotations

import base64
import lzma
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .claimed import claimed_label
from .eval_preset import EvalPreset, eval_preset, rules
from .knobs import Knob, KnobMap, as_number, discover
from .logswitches import switches_from_logs
from .preset import tiny_preset, vocab_size

if TYPE_CHECKING:
    from ..record import Record

SIDECAR_MARKER = "fineweb_val_bytes_"
_PAYLOAD = re.compile(r"""(?:b?(?:'''|\"\"\"|'|"))([A-Za-z0-9!#$%&()*+\-;<=>?@^_`{|}~\s]{512,})""")
_MAX_PAYLOAD = 16 << 20
_MAX_LOG_BYTES = 8 << 20
_VALUE_JUNK = "`,;)(\"' "
# A run's sequence length beyond this does not fit the tiny preset's batch (8 micro-steps of whole
# sequences in 32,768 tokens): the script's own default stands in.
MAX_SEQ_LEN = 4096


@dataclass
class RunPlan:
    knobs: KnobMap
    vocab: int
    sidecar: bool  # the script reads fineweb_val_bytes_* files
    distributed: bool = False  # it starts a torch.distributed process group
    run_config: dict[str, str] = field(default_factory=dict)
    tiny: dict[str, str] = field(default_factory=dict)
    user: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where knobs were read from
    claimed: str | None = None  # the label of the final pass the record's score rests on

    def environment(self, scored_tokens: int) -> tuple[dict[str, str], EvalPreset]:
        """The knobs for a run on a canary of `scored_tokens` targets, and the caps behind them."""
        tiny = self._sized_tiny()
        resolved = {**self.run_config, **tiny, **self.user}
        caps = eval_preset(self.knobs, resolved, set(tiny) | set(self.user), scored_tokens)
        return {**self.run_config, **tiny, **caps.env, **self.user}, caps

    def _sized_tiny(self) -> dict[str, str]:
        """The tiny preset with its batches fitted to the script's sequence lengths: 8 micro-batches of
        one whole sequence each (the records split a batch over world_size x 8 // world_size), not
        the 4096-token sequences a few records use, when the script's are shorter. Evaluation batches
        of one sequence per rank: a script that drops a rank's last partial batch ("TODO: Don't
        truncate this") then still scores every canary sequence, at any number of ranks."""
        tiny = dict(self.tiny)
        train = self._resolved_number("TRAIN_SEQ_LEN")
        evaluation = self._resolved_number("EVAL_SEQ_LEN") or train
        if "TRAIN_BATCH_TOKENS" in tiny and train and train >= 128:
            tiny["TRAIN_BATCH_TOKENS"] = str(min(int(tiny["TRAIN_BATCH_TOKENS"]), 8 * int(train)))
        for name in ("VAL_BATCH_SIZE", "VAL_BATCH_TOKENS"):
            if name in tiny and evaluation and evaluation >= 128:
                tiny[name] = str(8 * int(max(evaluation, train or 0)))
        return tiny

    def _resolved_number(self, name: str) -> float | None:
        knob = self.knobs.knobs.get(name)
        value = as_number(self.user.get(name, self.run_config.get(name, knob.default if knob else None)))
        return value if value and value > 0 else None

    def ignored(self) -> list[str]:
        """Tiny-preset knobs the script never reads."""
        return sorted(k for k in self.tiny if k not in self.knobs.knobs)


def plan_run(script: Path, source: str, user: dict[str, str], preset: bool) -> RunPlan:
    texts = {script.name: source, **_payloads(source)}
    texts.update(_siblings(script, "\n".join(texts.values())))
    kmap = _merged(texts)
    record = _record(script.parent)
    config = run_configuration(record, kmap, list(texts.values()))
    vocab = user.get("VOCAB_SIZE") or config.get("VOCAB_SIZE")
    plan = RunPlan(
        knobs=kmap,
        vocab=int(cast(str, vocab)) if str(vocab).isdigit() else vocab_size(kmap.reads()),
        sidecar=any(SIDECAR_MARKER in t for t in texts.values()),
        run_config=config,
        distributed=any("init_process_group" in t for t in texts.values()),
        tiny=dict(tiny_preset()) if preset else {},
        user=dict(user),
        sources=sorted(texts),
        claimed=claimed_label(record),
    )
    return plan


def _merged(texts: dict[str, str]) -> KnobMap:
    """The entry script (first) and what it runs besides, read as one program."""
    entry, *others = texts.values()
    return discover(entry, *others)


def _siblings(script: Path, entry: str) -> dict[str, str]:
    """Python files beside the entry script that it names (imports, or opens to exec), decoded; other
    files in the folder (earlier variants, data tools) never run and set nothing."""
    out = {}
    for path in sorted(script.parent.glob("*.py"))[:32]:
        if path.name == script.name or not path.is_file() or path.is_symlink() or path.stat().st_size > 4 << 20:
            continue
        if not re.search(rf"\b{re.escape(path.stem)}\b", entry):
            continue
        try:
            out[path.name] = _decoded(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return out


def _decoded(text: str) -> str:
    from ..unpack import UnpackError, decode_script

    try:
        return decode_script(text).text
    except UnpackError:
        return text


def _payloads(source: str) -> dict[str, str]:
    """Long literals that decode (base85 or base64, then lzma) to Python source: code a script
    unpacks by a route the static unpacker does not follow still has knobs."""
    out = {}
    for i, match in enumerate(_PAYLOAD.finditer(source)):
        if i >= 8:
            break
        text = _unpack(re.sub(r"\s", "", match.group(1)))
        if text is not None:
            out[f"<payload {i + 1}>"] = text
    return out


def _unpack(blob: str) -> str | None:
    for decode in (base64.b85decode, base64.b64decode):
        try:
            raw = decode(blob)
        except ValueError:
            continue
        for fmt, filters in ((lzma.FORMAT_AUTO, None), (lzma.FORMAT_RAW, [{"id": lzma.FILTER_LZMA2}])):
            try:
                data = lzma.LZMADecompressor(fmt, filters=filters).decompress(raw, max_length=_MAX_PAYLOAD)
                text = data.decode("utf-8")
            except (lzma.LZMAError, UnicodeDecodeError, ValueError):
                continue
            if "import" in text:
                return text
    return None


def _record(folder: Path) -> Record | None:
    """The script's record folder, loaded once for the run configuration and the claimed pass."""
    try:
        from ..record import load_record

        return load_record(folder)
    except Exception:  # noqa: BLE001 - a folder that is no record has no run configuration
        return None


def run_configuration(record: Record | None, kmap: KnobMap, texts: list[str] | None = None) -> dict[str, str]:
    """The submitted run's knobs (README code blocks and run command, then the logs' dumps), as the
    script reads them, plus the switches the logs show were on (logswitches). Knobs it does not
    read, and the launcher's own variables, are left out."""
    if record is None:
        return {}
    try:
        from ..static.runconfig import config_from_record

        raw = {**readme_assignments(record.readme), **config_from_record(record)}
    except Exception:  # noqa: BLE001 - a record whose files say nothing usable has no run configuration
        return {}
    out: dict[str, str] = {}
    launcher = set(rules()["launcher"])
    for key, value in raw.items():
        knob = _knob_for(key, kmap)
        if knob is not None and (knob.name in launcher or _too_long(knob.name, value)):
            continue
        text = _clean(value, knob) if knob is not None else None
        if text is not None:
            assert knob is not None  # text is None whenever knob is
            out[knob.name] = text
    for name, value in switches_from_logs(texts or [], kmap, _log_texts(record)).items():
        out.setdefault(name, value)
    return out


def _log_texts(record: Record) -> list[str]:
    """The submitted logs' text (bounded): what the run printed."""
    texts = []
    for log in record.scored_logs():
        path = record.root / log.rel
        if path.is_symlink():
            continue  # a link may lead out of the folder: the record checks report it
        try:
            with open(path, "rb") as handle:
                texts.append(handle.read(_MAX_LOG_BYTES).decode("utf-8", errors="replace"))
        except OSError:
            continue
    return texts


def _too_long(name: str, value: str) -> bool:
    try:
        return "SEQ_LEN" in name and int(str(value).strip()) > MAX_SEQ_LEN
    except ValueError:
        return False


_ASSIGNMENT_LINE = re.compile(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]{1,63})=(\"[^\"]*\"|'[^']*'|[^\s;&|]+)\s*\\?\s*$")


def readme_assignments(text: str | None) -> dict[str, str]:
    """`KEY=VALUE` lines inside the README's fenced code blocks (a "key environment" block is a run's
    configuration as much as its run command is)."""
    out: dict[str, str] = {}
    inside = False
    for line in (text or "").splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        match = _ASSIGNMENT_LINE.match(line) if inside else None
        if match:
            out[match.group(1)] = match.group(2).strip("\"'")
    return out


def _knob_for(key: str, kmap: KnobMap) -> Knob | None:
    if key in kmap.knobs:
        return kmap.knobs[key]
    if key.upper() in kmap.knobs:
        return kmap.knobs[key.upper()]
    # A dump key names a knob through what it is bound to only when it says the same words: a
    # function's `mode` parameter holds WORD_NORMALIZE, but a `mode:inherit` dump is another setting.
    bound = [k for k in kmap.by_binding(key) if set(key.upper().split("_")) <= set(k.name.split("_"))]
    return bound[0] if len(bound) == 1 else None


def _clean(value: str, knob: Knob) -> str | None:
    text = str(value).strip().strip(_VALUE_JUNK)
    if not text or text == "None" or "/" in text or text.endswith((".model", ".bin", ".pt")):
        return None  # paths are the harness's to give
    if text in ("True", "False", "true", "false"):
        if str(knob.default) in ("0", "1") or isinstance(knob.default, int):
            return "1" if text.lower() == "true" else "0"
    return text
