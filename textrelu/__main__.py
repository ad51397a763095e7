"""`python -m textrelu` runs the command line (as `textrelu` does)."""

from textrelu.cli import app

app()
