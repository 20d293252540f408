"""pgolf.compliance: reads record folders and submissions and judges them against the rules.

Never imports pgolf.pipeline: the pipeline writes records that this half reads.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pgolf")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
