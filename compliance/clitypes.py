"""Command-line value types shared by pgolf-check and pgolf (the pipeline's CLI imports them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # generic in recent click (8.5 here); the older 8.x pgolf accepts cannot subscript it
    _ParamType = click.ParamType[tuple[str, str]]
else:
    _ParamType = click.ParamType


class KeyValue(_ParamType):
    """`KEY=VALUE`, an environment setting for a script: (key, value), the value possibly empty.

    A NUL byte cannot be put in an environment, so it is refused here rather than by the
    process launch later; with `multiple=True`, `dict(values)` keeps the last of a repeated key.
    """

    name = "KEY=VALUE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, str]:
        text = str(value)
        key, sep, val = text.partition("=")
        if not sep or not key.strip():
            self.fail(f"{text!r} is not KEY=VALUE", param, ctx)
        if "\0" in text:
            self.fail(f"{key!r}: a NUL byte cannot be put in an environment", param, ctx)
        return key, val


KEY_VALUE = KeyValue()
