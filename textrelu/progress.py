"""Progress on stderr, silenced by --quiet: a bar on a terminal, log lines elsewhere.

Results go to stdout through the CLI; everything here goes to stderr, so that a command's stdout
can be piped (`textrelu score m.pt - --out - | jq`).
"""

import sys
import time

from tqdm.auto import tqdm

LOG_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class LogLines:
    """Progress as a line every LOG_EVERY seconds (count, rate and, with a total, ETA): what a log
    file or CI gets instead of a bar's carriage returns. Used like a tqdm bar (iterate, update,
    close)."""

    def __init__(self, iterable=None, total=None, desc="", unit="it", every=None):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every = LOG_EVERY if every is None else every
        self.n, self.started = 0, time.monotonic()
        self.last = self.started

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.n / elapsed
        text = f"{self.desc}: {self.n:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
        text += f", {rate:,.1f} {self.unit}/s, {elapsed:.0f}s"
        if self.total and rate > 0:
            text += f", ETA {max(self.total - self.n, 0) / rate:.0f}s"
        return text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def bar(iterable=None, *, total=None, desc="", unit="it", quiet=False):
    """A progress bar with rate and ETA (tqdm) on a terminal's stderr, else a log line every
    LOG_EVERY seconds (`LogLines`); no output when quiet."""
    if not quiet and not _terminal():
        return LogLines(iterable, total=total, desc=desc, unit=unit)
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


def report_rejects(rejects, quiet: bool = False, shown: int = 5, heading: bool = True) -> None:
    """Say how many rows could not be read, and the first few with file, row and reason."""
    if not rejects:
        return
    if heading:
        say(f"warning: {len(rejects)} row(s) could not be read and were left out:", quiet)
    for r in rejects[:shown]:
        say(f"  {r.source}, row {r.row}: {r.reason}", quiet)
    if len(rejects) > shown:
        say(f"  ... and {len(rejects) - shown} more", quiet)
