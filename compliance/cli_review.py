"""The reviewer's side of pgolf-check: rule selection, [tool.pgolf], output and exit policy.

cli.py declares what to audit; this module adds the options that decide what the
verdict covers (--select, --ignore, config), how it is shown (--format, colour,
--docs-url) and what the exit status says (--fail-on, --exit-zero), and turns a
finished Report into output and a status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click

from . import config, ruledocs, terminal
from .errors import InputError
from .formatters import FORMATTERS, RenderOptions, render
from .report import Report
from .safeio import resolved
from .selection import Selection
from .textsafe import printable

EXIT_CODES = """\b
Exit status:
  0  pass (also review with --fail-on fail; anything but 2 with --exit-zero)
  1  fail: a rule failed
  2  could not check: bad input, named in one line on stderr
  3  review: a finding needs a human (with the default --fail-on review)"""


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


def review_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options this module reads, as one decorator so cli.py lists them in one line."""
    options = [
        click.option(
            "--select",
            multiple=True,
            metavar="RULES",
            help="Only these rules decide: ids, id prefixes (R-DYN), kinds (record, script, dynamic), "
            "conditions (C1-C4) or ALL; comma-separated or repeated. Replaces [tool.pgolf] select.",
        ),
        click.option(
            "--ignore",
            multiple=True,
            metavar="RULES",
            help="Leave these rules out (same forms as --select); adds to [tool.pgolf] ignore.",
        ),
        click.option(
            "--fail-on",
            type=click.Choice(config.FAIL_ON),
            default=None,
            help="Which verdict makes the exit status non-zero: fail, or review as well "
            "[default: review, or [tool.pgolf] fail-on].",
        ),
        click.option("--exit-zero", is_flag=True, help="Exit 0 whatever the verdict, except 2 for bad input."),
        click.option("--isolated", is_flag=True, help="Ignore [tool.pgolf] in pyproject.toml."),
        click.option("--explain", metavar="RULE", help="Print the documentation of a rule and exit."),
        click.option(
            "--color",
            type=click.Choice(terminal.COLOR_MODES),
            default="auto",
            show_default=True,
            help="Colour in the human form (auto: only on a terminal, never with NO_COLOR).",
        ),
        click.option(
            "--docs-url",
            metavar="URL",
            help="Base URL of the rule pages (compliance/rules/docs) for links and SARIF helpUri.",
        ),
        click.option(
            "--from-files",
            is_flag=True,
            help="TARGETS are files (as pre-commit passes them): audit the record folders that hold them.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass
class Review:
    """What the review options decided, before and after the audit."""

    settings: config.Settings
    selection: Selection
    root: Path | None
    fmt: str
    verbose: bool
    color_mode: str
    exit_zero: bool = False

    def finish(self, report: Report, output: Path | None, elapsed_s: float) -> None:
        """Apply the selection, render, write, and exit with the status --fail-on asks for."""
        self.selection.filter(report)
        report.elapsed_s = round(elapsed_s, 3)
        report.settings = self.settings.to_dict()
        for line in _errors(report):
            click.echo(f"pgolf-check: {line}", err=True)
        color = self.fmt == "human" and output is None and terminal.wants_color(sys.stdout, self.color_mode)
        options = RenderOptions(
            verbose=self.verbose,
            color=color,
            docs_url=self.settings.docs_url,
            root=self.root,
            fail_on=self.settings.fail_on,
        )
        _emit(render(report, self.fmt, options), output, color)
        sys.exit(exit_status(report.verdict, self.settings.fail_on, self.exit_zero))


def _errors(report: Report) -> list[str]:
    lines = [printable(report.error)] if report.error else []
    return lines + [printable(r.error) for r in report.records if r.error]


def exit_status(verdict: str, fail_on: str, exit_zero: bool) -> int:
    if verdict == "error":
        return 2
    if exit_zero or verdict == "pass" or (verdict == "review" and fail_on == "fail"):
        return 0
    return {"fail": 1, "review": 3}[verdict]


def prepare(
    opts: dict[str, Any],
    targets: list[str],
    git_repo: Path | None,
    git_range: str | None,
    fmt: str,
    verbose: bool,
    policy: str | None,
    ruleset: str | None,
) -> Review:
    """Settings from [tool.pgolf] (the PR's base in PR mode) under the command line's."""
    if opts["isolated"]:
        base = config.Settings()
    elif git_repo is not None and git_range:
        base = config.from_git(git_repo, git_range.split("..", 1)[0].rstrip(".") or "HEAD")
    else:
        base = config.from_folder(Path(targets[0]) if targets else Path.cwd())
    settings = config.merge(
        base,
        select=_split(opts["select"]),
        ignore=_split(opts["ignore"]),
        fail_on=opts["fail_on"],
        policy=policy,
        ruleset=ruleset,
        docs_url=opts["docs_url"],
    )
    selection = Selection.of(settings.select, settings.ignore)
    return Review(
        settings=settings,
        selection=selection,
        root=_root(targets, git_repo),
        fmt=fmt,
        verbose=verbose,
        color_mode=opts["color"],
        exit_zero=opts["exit_zero"],
    )


def _root(targets: list[str], git_repo: Path | None) -> Path:
    """Report paths are made relative to this: the PR's repository, else the repository that
    holds the first target, else the working directory."""
    if git_repo is not None:
        return git_repo.resolve()
    start = resolved(Path(targets[0])) if targets else Path.cwd()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return Path.cwd().resolve()


def record_folders_of(files: list[str]) -> list[str]:
    """pre-commit passes files; each one under records/<track>/<folder>/ stands for that folder."""
    folders: list[str] = []
    for name in files:
        parts = PurePosixPath(Path(name).as_posix()).parts
        for i in range(len(parts) - 3):
            if parts[i] == "records":
                folder = str(Path(*parts[: i + 3]))
                if folder not in folders:
                    folders.append(folder)
                break
    return folders


def explain(rule_id: str, color_mode: str) -> None:
    doc = ruledocs.get(rule_id.strip().upper())
    if doc is None:
        import difflib

        close = difflib.get_close_matches(rule_id.upper(), list(ruledocs.all_docs()), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(None, f"--explain {rule_id}: no such rule{hint}; --list-rules lists them")
    if terminal.wants_color(sys.stdout, color_mode):
        from rich.markdown import Markdown

        terminal.console(sys.stdout, True).print(Markdown(doc.body))
    else:
        click.echo(doc.body, nl=not doc.body.endswith("\n"))


def _emit(text: str, output: Path | None, color: bool = False) -> None:
    if output is None:
        click.echo(text, nl=False, color=color)  # click would strip our colour from a pipe otherwise
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"pgolf-check: {output}: cannot write report: {exc.strerror}", err=True)
        sys.exit(2)


__all__ = [
    "EXIT_CODES",
    "FORMATTERS",
    "Review",
    "exit_status",
    "explain",
    "prepare",
    "record_folders_of",
    "review_options",
]
