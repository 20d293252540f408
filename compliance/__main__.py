"""python -m pgolf.compliance: the same as pgolf-check."""

from .cli import run

run()
