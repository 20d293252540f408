"""Every connection attempt of every process of a sandboxed stage, with that process's command line.

Why a syscall tracer: an audit hook sees only Python's own socket calls in processes that
load it; `bash -c 'echo > /dev/tcp/...'`, a `python -I` child, a C extension or curl do
not load it. strace follows every process the stage starts (-f) and, with --seccomp-bpf,
stops only at the syscalls listed here, so the stage runs at full speed between them.
It runs as the tracer of the stage's first process, outside the stage's uid, so the stage
can neither detach nor kill it; were it gone, the seccomp filter it installed would fail
each traced call (ENOSYS) rather than let it through untraced. io_uring, which could
connect without a connect(2), is refused (ENOSYS) for the same reason.

The sandbox has its own network namespace: only its loopback exists. A connection to a
port a process of the same stage serves (bind(2), getsockname(2)) is the stage talking to
itself (torchrun's store, gloo's peers) and is marked internal; every other attempt is
reaching for a network it does not have.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .base import Connection

SYSCALLS = (
    "connect",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "bind",
    "getsockname",
    "execve",
    "execveat",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "io_uring_setup",
)
MAX_STRING = 512  # argv elements are cut here in the trace
MAX_TRACE_BYTES = 512 * 1024 * 1024  # a trace larger than this is read in part and says so

_LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+(\w+))?")
_UNFINISHED = re.compile(r"^(\d+)\s+(.*?)\s*<unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
_INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]*)"\)')
_INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]*)"')
_PATH_ARG = re.compile(r'^"(?:[^"\\]|\\.)*"(?:\.\.\.)?, \[')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')
_SENDS = {"connect", "sendto", "sendmsg", "sendmmsg"}
_FORKS = {"clone", "clone3", "fork", "vfork"}


def strace_argv(strace: str, trace_file: Path) -> list[str]:
    return [
        strace,
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-e",
        "signal=none",
        "-e",
        f"trace={','.join(SYSCALLS)}",
        "-e",
        "inject=io_uring_setup:error=ENOSYS",
        "-s",
        str(MAX_STRING),
        "-o",
        str(trace_file),
        "--",
    ]


@dataclass
class _Call:
    index: int
    pid: int
    name: str
    args: str
    result: str
    errno: str | None


@dataclass
class Trace:
    connections: list[Connection] = field(default_factory=list)
    truncated: bool = False


def read_trace(path: Path) -> Trace:
    """The connection attempts recorded in an strace output file (none when it is missing)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TRACE_BYTES + 1)
    except OSError:
        return Trace()
    truncated = len(data) > MAX_TRACE_BYTES
    calls = list(_calls(data[:MAX_TRACE_BYTES].decode("utf-8", "replace").splitlines()))
    return Trace(_connections(calls), truncated)


def _calls(lines: list[str]) -> Iterator[_Call]:
    """One _Call per completed syscall, an <unfinished ...> line joined with its <... resumed> one."""
    pending: dict[int, str] = {}
    for index, line in enumerate(lines):
        started = _UNFINISHED.match(line)
        if started:
            pending[int(started.group(1))] = started.group(2)
            continue
        resumed = _RESUMED.match(line)
        if resumed:
            pid = int(resumed.group(1))
            line = f"{pid} {pending.pop(pid, resumed.group(2) + '(')}{resumed.group(3)}"
        match = _LINE.match(line)
        if match:
            yield _Call(index, int(match.group(1)), match.group(2), match.group(3), match.group(4), match.group(5))


class _Processes:
    """Which command line a pid ran at a point of the trace: its last exec, else its parent's."""

    def __init__(self, calls: list[_Call]) -> None:
        self.execs: dict[int, list[tuple[int, str]]] = {}
        self.parent: dict[int, tuple[int, int]] = {}
        for call in calls:
            if call.name in ("execve", "execveat") and call.result == "0":
                self.execs.setdefault(call.pid, []).append((call.index, _cmdline(call.args)))
            elif call.name in _FORKS and call.result.isdigit() and int(call.result) > 0:
                self.parent.setdefault(int(call.result), (call.pid, call.index))

    def cmdline(self, pid: int, index: int, depth: int = 0) -> str:
        runs = [cmd for at, cmd in self.execs.get(pid, []) if at < index]
        if runs:
            return runs[-1]
        if pid in self.parent and depth < 1000:
            parent, at = self.parent[pid]
            return self.cmdline(parent, at, depth + 1)
        return "?"


def _cmdline(args: str) -> str:
    """The argv array of an execve as strace printed it (its escapes kept: no control character)."""
    if args.startswith("AT_FDCWD, ") or re.match(r"^\d+, ", args):
        args = args.split(", ", 1)[1]  # execveat(dirfd, path, argv, ...)
    start = _PATH_ARG.match(args)
    if not start:
        return "?"
    words, at = [], start.end()
    while True:  # the array's strings, up to its closing bracket (a bracket inside a string is text)
        word = _STRING.match(args, at)
        if not word:
            break
        words.append(word.group(1).replace('\\"', '"') + ("..." if word.group(2) else ""))
        at = word.end()
        if not args.startswith(", ", at):
            break
        at += 2
    if args.startswith("...", at):
        words.append("...")
    return " ".join(words)[:300] or "?"


def _address(args: str) -> tuple[str, str, int] | None:
    found = _INET.search(args)
    if found:
        return "AF_INET", found.group(2), int(found.group(1))
    found = _INET6.search(args)
    if found:
        return "AF_INET6", found.group(2), int(found.group(1))
    return None  # a unix socket (the sandbox's own files), netlink, or a send on a connected socket


def _served(calls: list[_Call]) -> set[int]:
    ports = set()
    for call in calls:
        if call.name in ("bind", "getsockname") and call.result == "0":
            address = _address(call.args)
            if address and address[2]:
                ports.add(address[2])
    return ports


def is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "0.0.0.0", "::") or host.startswith("::ffff:127.")


def _result(call: _Call) -> str:
    if call.result == "?":
        return "interrupted"
    if not call.result.startswith("-"):
        return "ok"
    return "pending" if call.errno in ("EINPROGRESS", "EALREADY") else (call.errno or "error")


def _connections(calls: list[_Call]) -> list[Connection]:
    processes, served = _Processes(calls), _served(calls)
    out = []
    for call in calls:
        if call.name not in _SENDS:
            continue
        address = _address(call.args)
        if address is None:
            continue
        family, host, port = address
        if port == 0:
            continue  # glibc's getaddrinfo connects a UDP socket to port 0 to sort addresses: nothing is sent
        shown = f"[{host}]:{port}" if family == "AF_INET6" else f"{host}:{port}"
        out.append(
            Connection(
                call.pid,
                processes.cmdline(call.pid, call.index),
                family,
                shown,
                _result(call),
                internal=is_loopback(host) and port in served,
            )
        )
    return out
