"""Shared helpers for the benchmark scripts (not a benchmark itself).

- the checkout the script is in comes first on sys.path, so that its textrelu is measured;
- where the data is: ``DATA`` = ../shared/data beside the repository, ``IMDB`` its IMDB archive;
- ``export_commit``: an earlier commit's package, to run its commands beside this one's;
- ``extract_imdb``: one pass over the IMDB archive with textrelu's own reader, written to plain
  JSON Lines files (``text``, ``label``, ``id``) so that every tool then reads the same plain file;
- timing: ``repeat`` (median of repeated calls) and ``run_child`` (a command in a fresh child
  process: wall time, user+sys CPU time and peak RSS of that child alone, from ``os.wait4`` in a
  small launcher process, since a child's ru_maxrss starts at its forking parent's peak);
- ``machine_lines`` and ``table``: the markdown header (machine, versions, the exact command) and
  tables that every script prints.

The machine these run on is shared and noisy: scripts report medians of repeats and ratios between
tools measured side by side in the same run, interleaved, never a lone absolute time.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `python benchmarks/x.py` puts benchmarks/ first on sys.path, not the checkout: without this, an
# installed textrelu (another checkout) would be the one measured.
sys.path.insert(0, str(REPO))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMDB = DATA / "imdb" / "aclImdb_v1_nofeat.tar.gz"
PYTHON = sys.executable
# The last commit whose `textrelu score` ran the torch model (and imported torch): the "old" side of
# benchmarks/startup.py and score_throughput.py.
TORCH_SCORE_COMMIT = "0bf6383"


# --------------------------------------------------------------------------------------------
# Data


def imdb_archive(data: Path = DATA) -> Path:
    archive = Path(data) / IMDB.relative_to(DATA)
    if not archive.is_file():
        sys.exit(f"IMDB archive not found at {archive} (expected ../shared/data beside the repository)")
    return archive


def extract_imdb(
    workdir: Path, parts=("train", "unsup", "test"), limit: int | None = None, data: Path = DATA
) -> dict:
    """Write the IMDB reviews to ``workdir/{train,unsup,test}.jsonl`` in one pass over the archive.

    ``train`` is train/pos + train/neg (25,000 labeled), ``unsup`` train/unsup (50,000, no label),
    ``test`` test/pos + test/neg (25,000). With ``limit``, each part keeps an evenly spread sample
    of at most that many reviews (the archive is sorted by class, so a prefix would be one class).
    Returns {part: (path, n_reviews)}. Read with textrelu's reader, so the texts are exactly what
    textrelu sees when it reads the archive itself. ``data``: the folder that holds imdb/.
    """
    from textrelu.data.readers import Review, iter_records

    archive = imdb_archive(data)

    rows: dict[str, list] = {p: [] for p in parts}
    started = time.perf_counter()
    for rec in iter_records(f"{archive}::aclImdb/*"):
        if not isinstance(rec, Review):
            continue
        split, folder = rec.id.split("/")[:2]  # "train/pos/123_8"
        part = "unsup" if folder == "unsup" else split
        if part in rows:
            rows[part].append({"id": rec.id, "text": rec.text, "label": rec.label})
    out = {}
    for part, items in rows.items():
        if limit is not None and len(items) > limit:
            step = len(items) / limit
            items = [items[int(i * step)] for i in range(limit)]
        path = Path(workdir) / f"{part}.jsonl"
        write_jsonl(path, items)
        out[part] = (path, len(items))
    print(
        f"extracted {', '.join(f'{p} {n}' for p, (_, n) in out.items())} reviews from "
        f"{archive} in {time.perf_counter() - started:.1f} s -> {workdir}",
        file=sys.stderr,
    )
    return out


def imdb_vocab_sample(data: Path, n_reviews: int, max_terms: int):
    """The first `n_reviews` IMDB train+unsup reviews (archive order) and a function giving the
    vocabulary of their top `size` unigrams+bigrams (min_df 2), for any size up to `max_terms`:
    the setting of the pre-training benchmarks."""
    from textrelu.data.readers import read_reviews
    from textrelu.data.vocab import Vocabulary, count_terms, select_terms

    reviews, _ = read_reviews([f"{imdb_archive(data)}::aclImdb/train/*[:{n_reviews}]"])
    df, n_docs, _ = count_terms(reviews, ngrams=2, quiet=True)
    ranked = select_terms(df, max_terms, min_df=2)

    def vocabulary(size: int) -> Vocabulary:
        kept = ranked[:size]
        return Vocabulary([t for t, _ in kept], [n for _, n in kept], ngrams=2, n_documents=n_docs)

    return reviews, vocabulary


def write_jsonl(path: Path, items, copies: int = 1) -> None:
    """One JSON object a line; ``label`` left out where it is None (unlabeled reviews)."""
    lines = [
        json.dumps({k: v for k, v in item.items() if v is not None}, ensure_ascii=False) + "\n"
        for item in items
    ]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(copies):
            f.writelines(lines)


def read_jsonl(path: Path) -> list[dict]:
    """The plain way a peer reads the file: json.loads per line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def export_commit(commit: str, work: Path) -> Path:
    """A folder holding the textrelu package of `commit` (git archive), for running an earlier
    version's commands beside this one's: `python -m textrelu ...` with that folder as cwd."""
    folder = Path(work) / f"textrelu-{commit}"
    if not (folder / "textrelu").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit, "textrelu"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def workdir(prefix: str, keep: Path | None = None) -> Path:
    """A fresh temporary folder, removed at exit, or ``keep`` (created, kept) when the user names one."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return keep
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# --------------------------------------------------------------------------------------------
# Timing and memory


def median(xs) -> float:
    return statistics.median(xs)


def repeat(fn, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of fn() (perf_counter)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


# Run by a small interpreter between the benchmark and the measured command; see run_child.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as f:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
               "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run argv in a fresh child process and return its wall time, CPU time, peak RSS and stdout.

    The peak RSS is ru_maxrss from ``os.wait4`` on that one child (``RUSAGE_CHILDREN`` would be the
    maximum over every child waited for so far). A catch: Linux starts a child's ru_maxrss at the
    high-water RSS of the process it was forked from (exec keeps it), so a child spawned straight
    from this benchmark, which holds the data, would report at least this process's size. The
    command is therefore started by a small launcher interpreter (about 10 MiB), which waits for
    it and reports its rusage. Output goes to temp files, so a chatty child cannot block on a pipe.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".json") as result,
    ):
        launcher = [PYTHON, "-S", "-c", _LAUNCHER, result.name, *argv]
        proc = subprocess.run(launcher, stdout=out, stderr=err, env=env, cwd=cwd)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        usage = json.loads(Path(result.name).read_text() or "{}")
    if proc.returncode != 0 or usage.get("exit") != 0:
        raise RuntimeError(
            f"child failed (exit {usage.get('exit', proc.returncode)}): {shlex.join(argv)}\n{stderr[-3000:]}"
        )
    return {
        "wall": usage["wall"],
        "cpu": usage["cpu"],
        "maxrss_mib": usage["maxrss_kib"] / 1024,
        "stdout": stdout,
        "stderr": stderr,
    }


def child_json(result: dict) -> dict:
    """The last stdout line of a child that reports with ``print(json.dumps(...))``."""
    return json.loads(result["stdout"].strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Reporting


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(extra: tuple[str, ...] = ()) -> str:
    import importlib.metadata as md

    parts = [f"python {platform.python_version()}"]
    for dist in ("textrelu", "torch", "scikit-learn", "numpy", "scipy", *extra):
        try:
            parts.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            parts.append(f"{dist} (not installed)")
    return ", ".join(parts)


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line() -> str:
    """The command as it was run, relative to the repository root when possible."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def machine_lines(extra_versions: tuple[str, ...] = ()) -> list[str]:
    import torch

    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- command: `{command_line()}`",
        f"- machine: {nproc} CPU cores available (nproc), {cpu_model()}, "
        f"torch threads {torch.get_num_threads()}, shared and noisy: medians and ratios only",
        f"- versions: {versions(extra_versions)}",
        f"- textrelu commit: {git_commit()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_times(times: list[float]) -> str:
    """'median (min-max)' of seconds."""
    return f"{median(times):.2f} ({min(times):.2f}-{max(times):.2f})"
