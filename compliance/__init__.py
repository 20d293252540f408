"""pgolf.compliance: reads record folders and submissions and judges them against the rules.

Never imports pgolf.pipeline: the pipeline writes records that this half reads.
"""

# The one place the version is written: pyproject.toml reads it from here (without importing
# pgolf), and no command pays for importlib.metadata to learn it.
__version__ = "0.1.0"
