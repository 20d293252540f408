"""The line grammar of every layout: the patterns the parser matches, and their units."""

from __future__ import annotations

import re

from .. import stage_contract as contract

NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[nN]a[nN]|[iI]nf(?:inity)?)"
UNIT_MS = {"ms": 1.0, "s": 1000.0, "m": 60000.0}

TIMESTAMP = re.compile(r"\d{9,11}\.\d{1,6} ")
RANK = re.compile(r"\[(?:rank|default)(\d+)\]:\s?")
TORCHRUN_BANNER = re.compile(r"W\d{4} \d\d:\d\d:\d\d\.\d+ \d+ \S*torch/distributed/run\.py")

# One anchored alternation picks the handler of a line, so most lines cost one C-level match.
DISPATCH = re.compile(
    r"(?P<step>step:\s*\d+/\d+|\d+/\d+\s)"
    r"|(?P<stop>stopping_early:)"
    r"|(?P<size>Serialized model|Code size|Total submission size|budget:\d|artifact:)"
    r"|(?P<gptq>gptq:|GPTQ:)"
    r"|(?P<torch>(?:Running )?PyTorch \d|torch(?:_version|\.__version__)\s*[:=])"
    r"|(?P<runstart>Running Python|Python \d+\.\d+\.\d+ \||val_bpb:enabled|logs/\S+\.txt\s*$)"
    r"|(?P<smi>\||GPU \d+: )"
    r"|(?P<world>world_size\s*[:=])"
    r"|(?P<seed>seed\s*[:=]\s*\d+\s*$)"
    r"|(?P<shards>train_shards:|train_loader:)"
    r"|(?P<valtok>val_tokens:|val_loader:)"
    r"|(?P<hparams>Hyperparameters:\s*$|-+\s*Hyperparameters\s*-+\s*$)"
    r"|(?P<srchdr>Source code:\s*$)"
    r"|(?P<evalstart>\s*(?:ttt_sliding:start|ttt:start|ttt_phased:|beginning TTT eval"
    r"|final_eval_mode:|ngram_tilt:precompute|sliding_eval \[))"
    r"|(?P<evaltime>eval_time\s*[:=])"
    r"|(?P<totaleval>total_eval_time\s*[:=])"
    r"|(?P<banner>Setting OMP_NUM_THREADS|\*{20,}\s*$)"
    r"|(?P<pgolf>" + re.escape(contract.STAGE_PREFIX) + r")"
)

STEP = re.compile(r"(?:step:\s*)?(\d+)/(\d+)")
TRAIN_TIME = re.compile(r"(?<![\w])(?:train_time|t)\s*[:=]\s*(" + NUM + r")\s*(ms|s|m)\b")
STOP = re.compile(r"stopping_early:.*?train_time:\s*(" + NUM + r")\s*(ms|s|m)\b(?:.*?step:\s*(\d+)/(\d+))?")
VAL_LOSS = re.compile(r"(?<![\w])val_loss\s*([:=])\s*(" + NUM + r")(?![\w.])")
VAL_BPB = re.compile(r"(?<![\w])val_bpb\s*([:=])\s*(" + NUM + r")(?![\w.])")
# `mix_bpb=1.0003`, `bpb:0.99`: a bits-per-byte a line prints under a name of its own
NAMED_BPB = re.compile(r"(?<![\w])([A-Za-z][\w]*_bpb\w*|bpb)\s*[:=]\s*(" + NUM + r")(?![\w.])")
EVAL_TIME = re.compile(r"(?<![\w.])(?:eval_)?time\s*[:=]\s*(" + NUM + r")\s*(ms|s|m)\b")

SIZE_MODEL = re.compile(r"Serialized model(?: (?P<fmt>[^:]+?))?:\s*(?P<n>" + NUM + r") bytes")
SIZE_CODE = re.compile(r"Code size(?: \((?P<kind>[^)]*)\))?:\s*(?P<n>" + NUM + r") bytes")
SIZE_TOTAL = re.compile(r"Total submission size(?: (?P<fmt>[^:]+?))?:\s*(?P<n>" + NUM + r") bytes")
BUDGET = re.compile(r"budget:(" + NUM + r")/\d+")
ARTIFACT_CODE = re.compile(r"artifact:.*?(?<![\w])code:(" + NUM + r")")
TOTAL_EVAL = re.compile(r"total_eval_time\s*[:=]\s*(" + NUM + r")\s*(ms|s|m)\b")

GPTQ_RESERVE = re.compile(r"gptq:reserving\s+(" + NUM + r")\s*(ms|s|m)\b", re.I)
GPTQ_HESSIAN = re.compile(r"gptq:(?:collected\b.*?\bhessians|calibrated)\b.*?\bin\s+(" + NUM + r")\s*s\b", re.I)
TORCH = re.compile(r"(?:Running )?PyTorch (\S+)|torch(?:_version|\.__version__)\s*[:=]\s*(\S+)")
SMI_ROW = re.compile(r"\|\s+(\d+)\s+(\S.*?)\s{2,}(?:On|Off)\s+\|")
SMI_LIST = re.compile(r"GPU (\d+): (.+?)(?: \(UUID:.*)?$")
INT_AFTER_COLON = re.compile(r"[:=]\s*(\d+)")
SHARDS = re.compile(r"(?<![\w])train_shards:\s*(\d+)")
VAL_TOKENS = re.compile(r"(?:^val_tokens|(?<![\w])tokens):\s*(\d+)")
COMPACT_WS = re.compile(r"(?<![\w])ws:(\d+)\b")
COMPACT_SEED = re.compile(r"(?<![\w])s:(\d+)\b")

HPARAM = re.compile(r"\s{2,}([A-Za-z_][\w.\-]*):(?:\s(.*))?$")
KV_LINE = re.compile(r"[A-Za-z_][\w.]*=\S*(?:\s+[A-Za-z_][\w.]*=\S*)*\s*$")
CONFIG_LINE = re.compile(r"[A-Za-z_][\w.]*:\S+(?:\s+[A-Za-z_][\w.]*:\S+)*\s*$")
PLACEHOLDER = re.compile(r"# \[embedded source removed: (\d+) lines, sha256/16=([0-9a-f]+)\]")
# Any Python start may open the first run's source; after a finished run only an unmistakable
# one does, so a stray comment after the score cannot discard a complete run.
PY_START = re.compile(r"(?:\"\"\"|'''|[\"'#]|import\s|from\s+[\w.]+\s+import\b|def\s|class\s|@\w)")
PY_START_STRONG = re.compile(r"(?:\"\"\"|'''|import\s|from\s+[\w.]+\s+import\b|# \[embedded)")
# A column-0 line that only run output starts with: the source block cannot go on past it.
SOURCE_BREAK = re.compile(
    r"(?:Running (?:Python|PyTorch) \d|step:\d+/\d+ |\d+/\d+ |stopping_early: |Hyperparameters:\s*$"
    r"|val_bpb:enabled |final_\w+ val_loss:\s?\d|(?:Serialized model|Code size|Total submission size)[^:]*: \d"
    r"|(?:train_shards|val_tokens|world_size|model_params):\s?\d)"
)
COUNTER = re.compile(r":\s*\d+/\d+\b")  # `warmup_step:3/20` is progress, not configuration
BAD_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\ufffd]")

SEPARATOR_MIN = 40
BINARY_SAMPLE = 65536
BINARY_BAD_RATIO = 0.10
CONFLICT_CHECKED = ("seed", "world_size", "torch_version", "train_shards", "val_tokens")


def to_ms(value: str, unit: str | None) -> float:
    return float(value) * UNIT_MS.get(unit or "ms", 1.0)


def is_separator(line: str) -> bool:
    s = line.strip()
    return len(s) >= SEPARATOR_MIN and s[0] in "=-" and s == s[0] * len(s)
