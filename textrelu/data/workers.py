"""Work beside the main process: counting terms on worker processes for build-vocab, and
vectorizing the next batches on worker threads for score and the datasets.

Counting n-grams is pure Python and holds the GIL, so a second core has to be a second process:
`pool_map` hands chunks of reviews to the workers, in order and a few ahead, each worker counts
their document frequencies (`document_frequencies`) and the main process merges them. This
module imports no torch, so that a worker that has to be spawned (where fork is not available)
starts in a fraction of a second. Vectorizing runs in a compiled loop that releases the GIL
(`featurize`), so there `pool_map` runs threads, which share the vocabulary's tables.
"""

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from itertools import chain, islice

from textrelu.data.tokenize import terms
from textrelu.errors import BadSetting


def default_workers() -> int:
    """One worker per core, 0 on a one-core machine (all in the main process). The main
    process's own share (reading, merging counts, stacking batches) is the smaller one, so it
    shares a core with a worker: on 2 cores, build-vocab counted 1.65x faster on 2 workers than
    in one process, and reading a dataset vectorized 1.8x faster on 2 threads than on 1
    (docs/performance.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


def resolve(workers: int | None) -> int:
    """The number of workers to start: `workers`, checked, or `default_workers()` for None."""
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise BadSetting("workers", f"must be at least 0, got {workers}")
    return workers


def plan(items, workers: int | None):
    """(workers to use, items): `workers` resolved, and 0 when there are fewer than two items
    (starting workers would cost more than it saves)."""
    workers = resolve(workers)
    items = iter(items)
    head = list(islice(items, 2))
    return (workers if len(head) == 2 else 0), chain(head, items)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)


def worker_start(parent: int) -> None:
    """Set up a worker process: it dies with its parent (SIGKILL when the parent dies, on Linux,
    so a killed build-vocab leaves no orphans), leaves Ctrl-C to the parent (which stops the pool
    and cleans up) and dies at once on SIGTERM (the parent's handler, inherited through fork,
    would raise in the worker instead)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def pool_map(fn, items, prepare, workers: int, threads: bool = False, ahead: int = 2):
    """(item, fn(prepare(item))) for each of `items`, in order, with fn run on `workers`
    processes (or threads, for an fn that releases the GIL) at most `ahead` items per worker
    ahead of the consumer (`items` is read lazily, so memory stays bounded). Processes are
    forked where the platform can (as torch's DataLoader does; they run no torch): spawned ones
    would re-import the caller's script, which breaks scripts without a `__main__` guard."""
    if threads:
        pool = ThreadPoolExecutor(workers)
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context(method),
            initializer=worker_start,
            initargs=(os.getpid(),),
        )
    pending, stopped = deque(), False
    try:
        for item in items:
            pending.append((item, pool.submit(fn, prepare(item))))
            if len(pending) > ahead * workers:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()
    except BaseException:  # Ctrl-C, SIGTERM (textrelu.errors.Interrupted), an error: stop at once
        stopped = True
        raise
    finally:
        if stopped and not threads:
            for process in (getattr(pool, "_processes", None) or {}).values():
                process.kill()  # not terminate: a worker still starting has the parent's handler
        pool.shutdown(wait=not stopped or threads, cancel_futures=True)


def pairs(reviews) -> list[tuple]:
    """What tokenizing needs of each review, and all a worker is sent: (text, given terms)."""
    return [(r.text, r.terms) for r in reviews]


def document_frequencies(task: tuple) -> Counter:
    """(ngrams, [(text, terms), ...]) -> in how many of the reviews each term occurs."""
    ngrams, items = task
    df = Counter()
    for text, given in items:
        df.update(set(given if given is not None else terms(text, ngrams)))
    return df
