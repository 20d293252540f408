"""Whether a stream gets colour and live lines, and the rich Console that draws them.

Colour only on a terminal, never with NO_COLOR set (https://no-color.org), always
with FORCE_COLOR or `--color always`. Piped output is plain text: no colour, no
cursor movement, nothing a log file would keep as escape bytes.
"""

from __future__ import annotations

import io
import os
from typing import TextIO

from rich.console import Console
from rich.text import Text

COLOR_MODES = ("auto", "always", "never")


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def wants_color(stream: TextIO, mode: str = "auto") -> bool:
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    if mode == "always" or os.environ.get("FORCE_COLOR"):
        return True
    return is_tty(stream) and os.environ.get("TERM") != "dumb"


def console(stream: TextIO, color: bool, *, live: bool = False) -> Console:
    """A Console that never parses markup or emoji in what it prints, and never guesses
    about the terminal: colour and live drawing are what the caller decided."""
    return Console(
        file=stream,
        force_terminal=color or live,
        no_color=not color,
        color_system="standard" if color else None,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=True,
        force_interactive=live,
    )


def render_lines(lines: list[Text], color: bool) -> str:
    """rich Text lines as a string, with ANSI styles only when colour is wanted."""
    if not color:
        return "".join(line.plain + "\n" for line in lines)
    buffer = io.StringIO()
    out = console(buffer, True)
    for line in lines:
        out.print(line)
    return buffer.getvalue()
