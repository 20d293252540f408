"""Installed into the image's site-packages as pgolf_net_audit.py, imported at every
interpreter start by pgolf_net_audit.pth (not sitecustomize: Debian and Ubuntu ship their own,
which would shadow it).

When a stage runs with networking off (the runtime sets PGOLF_NET_AUDIT=1), each attempt
to resolve a name or open a socket connection is reported on the process's stderr before
it fails, so the runtime can raise R-NETWORK even when the script swallows the error.
The container has no network either way: this is the evidence, not the barrier.
"""

import os
import sys

_MARK = "pgolf-net-audit:"
_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}


def _report(event, args):
    if event not in _EVENTS:
        return
    target = args[1] if event in ("socket.connect", "socket.sendto") and len(args) > 1 else args[:2]
    try:
        os.write(2, f"{_MARK} {event} {target!r} pid={os.getpid()}\n".encode("utf-8", "replace"))
    except OSError:
        pass


if os.environ.get("PGOLF_NET_AUDIT") == "1":
    sys.addaudithook(_report)
