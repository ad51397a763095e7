"""Progress bars and messages on stderr, silenced by --quiet."""

import sys

from tqdm.auto import tqdm


def bar(iterable=None, *, total=None, desc="", unit="it", quiet=False):
    """A progress bar with rate and ETA (tqdm) on stderr; no output when quiet."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


def say(message: str, quiet: bool = False) -> None:
    """A line of progress news on stderr (results go to stdout through the CLI)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def report_rejects(rejects, quiet: bool = False, shown: int = 5) -> None:
    """Say how many rows could not be read, and the first few with file, row and reason."""
    if not rejects:
        return
    say(f"warning: {len(rejects)} row(s) could not be read and were left out:", quiet)
    for r in rejects[:shown]:
        say(f"  {r.source}, row {r.row}: {r.reason}", quiet)
    if len(rejects) > shown:
        say(f"  ... and {len(rejects) - shown} more", quiet)
