"""A tiny deterministic labeled corpus for the CLI and pipeline tests, and the in-process CLI call
they share."""

import csv
from pathlib import Path

from typer.testing import CliRunner

from textrelu.cli import app

POSITIVE = ["great", "excellent", "love", "wonderful", "perfect", "amazing", "best", "happy"]
NEGATIVE = ["terrible", "awful", "hate", "horrible", "worst", "broken", "useless", "poor"]
NEUTRAL = ["the", "pan", "knife", "kettle", "this", "was", "and", "it", "kitchen", "toaster"]
N_ROWS = 60


def review_text(i: int, positive: bool) -> str:
    """A deterministic review: three sentiment words and three neutral words."""
    words = POSITIVE if positive else NEGATIVE
    picked = [words[(i + k) % len(words)] for k in (0, 3, 5)]
    neutral = [NEUTRAL[(2 * i + k) % len(NEUTRAL)] for k in (0, 1, 4)]
    return f"{neutral[0]} {picked[0]} {neutral[1]} {picked[1]} {neutral[2]} {picked[2]}"


def write_csv(path: Path, rows, header=("id", "text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def invoke(*args, **kwargs):
    """Run the textrelu CLI in-process; every argument is turned into a string."""
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def ok(result):
    """Assert exit 0 and return the result (with its output in the failure message)."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result
