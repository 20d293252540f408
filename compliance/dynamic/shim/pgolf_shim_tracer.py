"""The in-process tracer of a dynamic-check run: the token ledger and the runtime trace.

What it records, each event stamped with time.monotonic_ns() (one clock for every process
of the machine, so the ranks of a torchrun job merge into one order):
- `loss`: every F.cross_entropy / F.nll_loss call whose targets are canary positions, with
  the positions, each target's offset inside its run of consecutive positions (its context
  length, as far as the call shows it) and its loss computed from the same logits;
- `backward`: the moment a backward pass reaches one of those loss nodes (an update on those
  positions is now possible, whatever optimizer or manual step follows);
- `step`: every torch.optim optimizer step; one after a canary backward gets a taint bit that
  the tensors it changed, and everything computed from them, carry (pgolf_shim_taint), and
  each loss event says which bits its logits carry;
- `line`: printed lines that carry a val_loss or val_bpb, to find the pass a score came from;
- `open`, `connect`, `resolve`, `subprocess`: from a Python audit hook, with the call site.

Child-side: stdlib, numpy and torch only. Output goes to $PGOLF_LEDGER_DIR/<rank>-<pid>/:
events.jsonl, plus positions/offsets (int32) and losses (float32) in three flat files that
each loss event indexes by (start, count).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time

NGRAM = 16  # a random canary makes every 16-token window unique
FILE_MARKERS = ("fineweb_train_", "fineweb_val_", "fineweb_val_bytes_")
LINE_MARKERS = ("val_loss", "val_bpb")
_HASH_MULT = 0x9E3779B97F4A7C15


class _Writer:
    """Appends events as they happen, so a run killed at its cap keeps what it did."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.lock = threading.Lock()
        self.events = open(os.path.join(folder, "events.jsonl"), "a", buffering=1, encoding="utf-8")
        self.arrays = {
            name: open(os.path.join(folder, f"{name}.bin"), "ab") for name in ("positions", "offsets", "losses")
        }
        self.count = 0
        self.next_id = 0
        self.said = None  # (time, text) of the last line the process printed: the heartbeat reports it

    def event(self, kind: str, **fields) -> int:
        with self.lock:
            event_id = self.next_id
            self.next_id += 1
            fields.update(i=event_id, kind=kind, t=time.monotonic_ns())
            self.events.write(json.dumps(fields, separators=(",", ":")) + "\n")
            return event_id

    def loss(self, positions, offsets, losses, **fields) -> int:
        with self.lock:
            start = self.count
            self.arrays["positions"].write(positions.astype("<i4").tobytes())
            self.arrays["offsets"].write(offsets.astype("<i4").tobytes())
            self.arrays["losses"].write(losses.astype("<f4").tobytes())
            for handle in self.arrays.values():
                handle.flush()
            self.count += len(positions)
        return self.event("loss", start=start, n=int(len(positions)), **fields)

    def close(self) -> None:
        with self.lock:
            for handle in (self.events, *self.arrays.values()):
                try:
                    handle.flush()
                except (OSError, ValueError):
                    pass


class Locator:
    """Maps target tokens back to canary positions through their 16-token windows."""

    def __init__(self, tokens) -> None:
        import numpy as np

        self.np = np
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.powers = np.array([pow(_HASH_MULT, k, 1 << 64) for k in range(NGRAM)], dtype=np.uint64)
        hashes = self._hashes(self.tokens[None, :])[0]
        self.order = np.argsort(hashes, kind="stable")
        self.sorted = hashes[self.order]

    def _hashes(self, rows):
        np = self.np
        windows = np.lib.stride_tricks.sliding_window_view(rows.astype(np.uint64), NGRAM, axis=1)
        with np.errstate(over="ignore"):
            return (windows * self.powers).sum(axis=2, dtype=np.uint64)

    def locate(self, rows):
        """Positions (stream indices) of every target, -1 where it is not a canary token."""
        np = self.np
        pos = np.full(rows.shape, -1, dtype=np.int64)
        if rows.shape[1] >= NGRAM:
            hashes = self._hashes(rows)
            idx = np.searchsorted(self.sorted, hashes).clip(max=len(self.sorted) - 1)
            hit = self.sorted[idx] == hashes
            pos[:, : hashes.shape[1]] = np.where(hit, self.order[idx], -1)
        if (pos >= 0).any():
            self._extend(rows, pos)
        return pos

    def _extend(self, rows, pos) -> None:
        """Targets in the last 15 columns of a run have no whole window: follow their neighbours."""
        np, last = self.np, len(self.tokens) - 1
        for _ in range(NGRAM - 1):
            prev = pos[:, :-1]
            cand = np.where(prev >= 0, prev + 1, -1).clip(max=last)
            ok = (pos[:, 1:] < 0) & (prev >= 0) & (prev < last) & (self.tokens[cand] == rows[:, 1:])
            if not ok.any():
                break
            pos[:, 1:][ok] = cand[ok]
        for _ in range(NGRAM - 1):
            nxt = pos[:, 1:]
            cand = np.where(nxt > 0, nxt - 1, 0)
            ok = (pos[:, :-1] < 0) & (nxt > 0) & (self.tokens[cand] == rows[:, :-1])
            if not ok.any():
                break
            pos[:, :-1][ok] = cand[ok]


def run_offsets(pos):
    """Each target's offset inside its run of consecutive positions: the context it was scored with."""
    import numpy as np

    flat = pos.reshape(-1)
    starts = np.ones(len(flat), dtype=bool)
    starts[1:] = flat[1:] != flat[:-1] + 1
    idx = np.arange(len(flat))
    run_start = np.maximum.accumulate(np.where(starts, idx, 0))
    return (idx - run_start).reshape(pos.shape)


class _Ledger:
    def __init__(self, writer: _Writer, locator: Locator | None) -> None:
        self.writer, self.locator = writer, locator
        self.failures = 0
        self.canary_since_step = False
        from pgolf_shim_taint import Taint

        self.taint = Taint()

    def loss_call(self, func, args, kwargs, out) -> None:
        import inspect

        import torch

        bound = inspect.signature(func).bind(*args, **kwargs)
        target, logits = bound.arguments.get("target"), bound.arguments.get("input")
        if self.locator is None or not isinstance(target, torch.Tensor) or target.is_floating_point():
            return
        grad = isinstance(out, torch.Tensor) and out.grad_fn is not None
        event = self.record(
            target,
            lambda: _per_token(func, bound, logits, target),
            func.__name__,
            grad,
            logits,
            bound.arguments.get("ignore_index", -100),
            taint=self.taint.of(logits),
        )
        if event is not None and grad:
            out.grad_fn.register_prehook(lambda _grads, e=event: self.backward(e))

    def record(self, target, losses_of, fn: str, grad: bool, logits, ignore=-100, taint: int | None = None):
        """One loss call on `target`; `losses_of()` gives per-target losses only when some are canary.
        `taint`: the canary steps the logits depend on (None where the tracer could not follow)."""
        rows = target.detach().reshape(-1, target.shape[-1] if target.dim() else 1).to("cpu").long().numpy()
        pos = self.locator.locate(rows)
        pos[rows == ignore] = -1
        keep = pos.reshape(-1) >= 0
        if not keep.any():
            return None
        losses = losses_of().reshape(-1)
        offsets = run_offsets(pos).reshape(-1)
        extra = {} if taint is None else {"taint": format(taint, "x")}
        return self.writer.loss(
            pos.reshape(-1)[keep],
            offsets[keep],
            losses[keep],
            fn=fn,
            grad=grad,
            site=call_site(),
            dtype=str(getattr(logits, "dtype", "?")).replace("torch.", ""),
            **extra,
        )

    def backward(self, event: int) -> None:
        self.canary_since_step = True
        self.writer.event("backward", of=event)

    def step(self, optimizer) -> None:
        """A step after a backward on canary targets is test-time training; one without, training.
        The tensors a canary step changed carry its taint bit from then on."""
        if not self.canary_since_step:
            self.writer.event("step", opt=type(optimizer).__name__, canary=False)
            return
        stepped = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        bit = self.taint.new_step(stepped)
        self.writer.event("step", opt=type(optimizer).__name__, canary=True, params=len(stepped), bit=bit)
        self.canary_since_step = False


_LEDGER: _Ledger | None = None
_KERNEL_FORWARDS: dict = {}  # fingerprint of a kernel call's targets -> its loss event


def _fingerprint(target) -> int:
    return hash(target.detach().to("cpu").numpy().tobytes())


def kernel_loss(logits, target, losses) -> None:
    """Called by the device shim's reference of a fused cross-entropy kernel: a record that wraps
    its kernel in torch.library.custom_op runs it where no TorchFunctionMode can see (so its
    logits carry no taint, and time order alone judges these scores)."""
    if _LEDGER is None or _LEDGER.locator is None:
        return
    event = _LEDGER.record(target, lambda: losses.detach().float().cpu().numpy(), "fused_cross_entropy", False, logits)
    if event is not None:
        _KERNEL_FORWARDS[_fingerprint(target)] = event
        while len(_KERNEL_FORWARDS) > 256:  # forwards never backpropagated (scoring) age out
            _KERNEL_FORWARDS.pop(next(iter(_KERNEL_FORWARDS)))


def kernel_backward(target) -> None:
    """The backward kernel of that loss ran: an update on those targets is now possible."""
    event = _KERNEL_FORWARDS.pop(_fingerprint(target), None) if _LEDGER is not None else None
    if event is not None:
        _LEDGER.backward(event)


def _per_token(func, bound, logits, target):
    """The loss of each target, from the same logits, in fp32 (what the distribution really gives)."""
    import torch

    args = dict(bound.arguments)
    args.update(reduction="none", size_average=None, reduce=None)
    args["input"] = logits.detach().float()
    args["target"] = target.detach()
    if "weight" in args and args["weight"] is not None:
        args["weight"] = args["weight"].detach().float()
    with torch.no_grad():
        return func(**{k: v for k, v in args.items() if k in bound.signature.parameters}).cpu().numpy()


def call_site(depth: int = 3) -> str:
    """The innermost frames in the submission's own code (`a.py:50 in f < b.py:13 in g`: a helper
    and who called it), else the innermost frame outside the shim."""
    script_dir = os.environ.get("PGOLF_SCRIPT_DIR", "")
    frame = sys._getframe(1)
    found, fallback = [], None
    while frame is not None and len(found) < depth:
        name = frame.f_code.co_filename
        if script_dir and name.startswith(script_dir):
            found.append(f"{os.path.basename(name)}:{frame.f_lineno} in {frame.f_code.co_name}")
        elif fallback is None and "pgolf_shim" not in name and "sitecustomize" not in name:
            fallback = f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return " < ".join(found) or fallback or "?"


class _LineTap:
    """Stands in for sys.stdout / sys.stderr; lines with a score become `line` events."""

    def __init__(self, stream, writer: _Writer, name: str) -> None:
        self._stream, self._writer, self._name, self._pending = stream, writer, name, ""

    def write(self, text):
        try:
            self._pending += text
            if "\n" in self._pending:
                *lines, self._pending = self._pending.split("\n")
                said = [line for line in lines if line.strip()]
                if said:
                    self._writer.said = (time.monotonic_ns(), said[-1][:300])
                for line in lines:
                    if any(marker in line for marker in LINE_MARKERS):
                        self._writer.event("line", stream=self._name, text=line[:2000])
        except Exception:  # noqa: BLE001 - the script's output matters more than our trace
            pass
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _audit_hook(writer: _Writer):
    script_dir = os.environ.get("PGOLF_SCRIPT_DIR") or None
    written: set = set()

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path = args[0]
            if isinstance(path, (str, bytes, os.PathLike)):
                path = os.fsdecode(path)
                if any(marker in os.path.basename(path) for marker in FILE_MARKERS):
                    writer.event("open", path=path, mode=str(args[1]), site=call_site())
                elif _is_artifact_write(path, args[1], args[2] if len(args) > 2 else 0, script_dir):
                    if path not in written or len(written) < 64:  # each artifact once, mostly
                        written.add(path)
                        writer.event("write", path=path, site=call_site())
        elif event == "socket.connect":
            writer.event("connect", address=repr(args[1])[:200], site=call_site())
        elif event == "socket.getaddrinfo":
            writer.event("resolve", host=repr(args[0])[:200], site=call_site())
        elif event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec"):
            writer.event("subprocess", argv=repr(args[1] if event != "os.system" else args[0])[:300], site=call_site())

    return hook


TEXT_SUFFIXES = (".txt", ".log", ".json", ".jsonl", ".csv", ".md", ".py", ".out")


def _is_artifact_write(path: str, mode, flags, script_dir: str | None) -> bool:
    """A file the script writes beside itself that is not a log: the artifact (or a step to it).
    Scoring starts from the artifact, so its last write marks where evaluation may begin."""
    if script_dir is None or path.endswith(TEXT_SUFFIXES):
        return False
    writes = any(c in str(mode) for c in "wax+") if mode is not None else bool(flags & (os.O_WRONLY | os.O_RDWR))
    full = os.path.abspath(path)
    return writes and full.startswith(script_dir) and "/ledger/" not in full


def _install_torch(ledger: _Ledger, writer: _Writer) -> None:
    import torch
    import torch.nn.functional as F
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.overrides import TorchFunctionMode

    losses = {F.cross_entropy, F.nll_loss}

    class Tracer(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if ledger.taint.active:
                try:
                    ledger.taint.propagate(func, args, kwargs or {}, out)
                except Exception as exc:  # noqa: BLE001 - a lost flow only hides; say so once
                    ledger.failures += 1
                    if ledger.failures <= 3:
                        writer.event("trace_error", error=f"taint: {type(exc).__name__}: {exc}"[:300])
            if func in losses:
                try:
                    ledger.loss_call(func, args, kwargs or {}, out)
                except Exception as exc:  # noqa: BLE001 - record the blind spot, keep the run going
                    ledger.failures += 1
                    if ledger.failures <= 3:
                        writer.event("trace_error", error=f"{type(exc).__name__}: {exc}"[:300])
            return out

    mode = Tracer()
    mode.__enter__()
    _enter_in_threads(mode)
    register_optimizer_step_post_hook(lambda opt, *_: ledger.step(opt))
    _follow_serialization(torch, ledger.taint)
    writer.event("torch", version=torch.__version__)


def _follow_serialization(torch, taint) -> None:
    """torch.save/torch.load are not torch functions: wrap them so taint survives an artifact."""
    save, load = torch.save, torch.load

    def traced_save(obj, *args, **kwargs):
        if taint.active:
            taint.saved(obj)
        return save(obj, *args, **kwargs)

    def traced_load(*args, **kwargs):
        obj = load(*args, **kwargs)
        if taint.escaped:
            taint.loaded(obj)
        return obj

    torch.save, torch.load = traced_save, traced_load


def _enter_in_threads(mode) -> None:
    """Modes are per thread; scoring in a worker thread must be seen too."""
    original = threading.Thread.run

    def run(self, *args, **kwargs):
        mode.__enter__()
        return original(self, *args, **kwargs)

    threading.Thread.run = run


def install() -> None:
    root = os.environ["PGOLF_LEDGER_DIR"]
    rank = os.environ.get("RANK", "0")
    writer = _Writer(os.path.join(root, f"{rank}-{os.getpid()}"))
    writer.event("start", rank=int(rank), argv=sys.argv[:4], python=sys.version.split()[0])
    atexit.register(lambda: (writer.event("exit"), writer.close()))

    def fresh_lock() -> None:  # a fork while another thread wrote must not leave the child's lock held
        writer.lock = threading.Lock()

    os.register_at_fork(after_in_child=fresh_lock)
    period = float(os.environ.get("PGOLF_BEAT_S") or 0)
    if period > 0:
        from pgolf_shim_beat import start_beating

        start_beating(writer, period)
    sys.addaudithook(_audit_hook(writer))
    sys.stdout = _LineTap(sys.stdout, writer, "stdout")
    sys.stderr = _LineTap(sys.stderr, writer, "stderr")
    canary = os.environ.get("PGOLF_CANARY")

    def torch_ready() -> None:
        global _LEDGER
        import numpy as np

        locator = Locator(np.load(canary)) if canary else None
        _LEDGER = _Ledger(writer, locator)
        _install_torch(_LEDGER, writer)

    from pgolf_shim_hooks import when_imported

    when_imported("torch", torch_ready)
