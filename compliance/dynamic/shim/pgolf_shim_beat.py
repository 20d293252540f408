"""The traced process's heartbeat: its CPU time in the ledger every few seconds (PGOLF_BEAT_S).

The harness tells a run that waits on itself from a slow one by it (compliance/dynamic/stall.py).
The CPU counted is the process's own, its live descendants' (from /proc) and its reaped
children's: a rank waiting on a compressor or compile worker it started is busy, not stalled.
Standard library only: it runs in every traced process.
"""

import os
import threading
import time


def start_beating(writer, period: float) -> None:
    """`writer` is the tracer's ledger writer (its `event` method)."""
    threading.Thread(target=_beat, args=(writer, period), name="pgolf-beat", daemon=True).start()


def _beat(writer, period: float) -> None:
    """The CPU time of the process and of everything it started, every `period` seconds: by it the
    harness tells a run that waits on itself from a slow one (compliance/dynamic/stall.py). A rank
    waiting on a compressor it started (lrzip, a compile worker) is busy, not stalled. A beat also
    carries the last line the process printed, when it is new: where a run killed at its cap was."""
    reported = None
    while True:
        time.sleep(period)
        fields = {"cpu_s": round(_cpu_with_descendants(), 3)}
        said = getattr(writer, "said", None)
        if said is not None and said is not reported:
            fields.update(said_t=said[0], said=said[1])
            reported = said
        try:
            writer.event("beat", **fields)
        except (OSError, ValueError):  # the ledger closed at exit
            return


def _cpu_with_descendants() -> float:
    done = os.times()
    total = time.process_time() + done.children_user + done.children_system  # children already reaped
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for pid in _descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15)
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    except (OSError, ValueError):  # no /proc: the process's own time only
        pass
    return total


def _descendants(root: int) -> list[int]:
    found, todo = [], [root]
    while todo and len(found) < 4096:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                    children = [int(c) for c in handle.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found
