"""KEY=VALUE: one parameter type for `pgolf-check --set` and `pgolf submit --set`."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pgolf.compliance.cli import main as check_main
from pgolf.compliance.clitypes import KEY_VALUE
from pgolf.pipeline.cli import main as pipeline_main


@click.command()
@click.option("--set", "sets", multiple=True, type=KEY_VALUE)
def _echo(sets: tuple[tuple[str, str], ...]) -> None:
    click.echo(repr(dict(sets)))


def test_pairs_become_a_mapping_with_the_last_repeat_winning() -> None:
    result = CliRunner().invoke(_echo, ["--set", "A=1", "--set", "B=", "--set", "C=x=y", "--set", "A=2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == repr({"A": "2", "B": "", "C": "x=y"})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("NOEQUALS", "'NOEQUALS' is not KEY=VALUE"),
        ("=1", "'=1' is not KEY=VALUE"),
        ("  =1", "is not KEY=VALUE"),
        ("A=b\0c", "a NUL byte cannot be put in an environment"),
    ],
)
def test_malformed_pairs_are_a_usage_error(item: str, message: str) -> None:
    result = CliRunner().invoke(_echo, ["--set", item])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("cli", "args"),
    [
        (check_main, ["--dynamic", "--set", "TTT_ENABLED", "train_gpt.py"]),
        (pipeline_main, ["submit", "--set", "TTT_ENABLED"]),
    ],
)
def test_both_clis_refuse_the_same_way(cli: click.Command, args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "Invalid value for '--set': 'TTT_ENABLED' is not KEY=VALUE" in result.output
