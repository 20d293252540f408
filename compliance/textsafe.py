"""Untrusted text made safe for each place a report puts it.

File names, log lines and JSON strings come from the audited folder, so they may
hold terminal escape sequences (CSI, OSC), a newline followed by a fake verdict,
bidirectional overrides that reorder what a reader sees, or Markdown and HTML
that would break out of a PR comment. Every formatter passes such text through
one of these functions; none of them can be undone by the text itself.
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls, DEL, and the invisible characters that change how the rest
# of a line reads: bidi embeddings/overrides/isolates, line/paragraph separators,
# zero-width and BOM characters.
_INVISIBLE = {
    0x200B,
    0x200C,
    0x200D,
    0x200E,
    0x200F,
    0x2028,
    0x2029,
    0x202A,
    0x202B,
    0x202C,
    0x202D,
    0x202E,
    0x2060,
    0x2061,
    0x2062,
    0x2063,
    0x2064,
    0x2066,
    0x2067,
    0x2068,
    0x2069,
    0xFEFF,
}
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(f"\\u{c:04x}" for c in sorted(_INVISIBLE)) + "]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """One line with every control or invisible formatting character shown as an escape.

    `ESC[8m` becomes the visible text `\\x1b[8m`, a newline becomes `\\n`: nothing a
    terminal, a log viewer or a code host would act on survives.
    """
    value = text if isinstance(text, str) else str(text)
    value = "".join(c if unicodedata.category(c) != "Cs" else "\ufffd" for c in value)  # lone surrogates
    return _UNSAFE.sub(_escape_char, value)


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


# Markdown: every ASCII punctuation character that can open or close an inline
# construct becomes a numeric character reference. CommonMark treats a reference as
# literal text, so no emphasis, link, image, code span, raw HTML, math or
# strikethrough can start inside the escaped text, and a GFM table splitter sees no
# `|` at all. Block syntax needs a line start, and the text is one line that never
# starts a line of the output. `. , / : ; = ? % ' "` are left as they are, for a
# readable source.
_MD_PUNCT = re.compile(r"[!#$&()*+<>@\[\\\]^_`{|}~-]")


def _entity(match: re.Match[str]) -> str:
    return f"&#{ord(match.group())};"


def md_text(text: object) -> str:
    """Untrusted text as literal Markdown prose (also safe inside a table cell).

    An `@` is followed by a word joiner so that a name in a file cannot mention
    (and notify) a GitHub user, and `#123` cannot link an issue.
    """
    escaped = _MD_PUNCT.sub(_entity, printable(text))
    return escaped.replace("&#64;", "&#64;\u2060").replace("&#35;", "&#35;\u2060")


def md_code(text: object) -> str:
    """Untrusted text shown as code: an inline <code> element with escaped content.

    A Markdown code span cannot hold every string (backtick runs, a `|` inside a GFM
    table), so the text goes into raw HTML with references for all punctuation;
    GitHub neither links mentions nor renders Markdown inside <code>.
    """
    return f"<code>{_MD_PUNCT.sub(_entity, printable(text))}</code>"


def md_trusted(text: str) -> str:
    """pgolf's own prose with untrusted pieces already escaped: only table pipes and newlines matter."""
    return text.replace("|", "\\|").replace("\n", " ")


# GitHub workflow commands (`::error file=...::message`): properties and data have
# their own percent-escapes; a newline would end the command and start another.
def gh_data(text: object) -> str:
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def gh_property(text: object) -> str:
    return gh_data(text).replace(":", "%3A").replace(",", "%2C")


# XML 1.0 cannot carry most control characters at all, even escaped.
def xml_text(text: object) -> str:
    return printable(text)
