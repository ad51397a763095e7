"""Tokenizing on worker processes, for build-vocab, vectorizing and score.

Tokenizing is pure Python and holds the GIL, so a second core has to be a second process.
`pool_map` hands chunks of reviews to the workers, in order and a few ahead; a worker counts
their document frequencies (`document_frequencies`) or, holding the vocabulary's term index (sent
once, by `start`), turns them into feature ids (`batch_ids`). The main process reads the files,
merges the counts or builds the sparse batches, runs the model and writes. This module imports
no torch, so that a worker that has to be spawned (where fork is not available) starts in a
fraction of a second.
"""

import multiprocessing
import os
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, islice

import numpy as np

from .errors import BadInput
from .tokenize import term_ids, terms

_index: dict[str, int] = {}
_ngrams = 1


def default_workers() -> int:
    """One worker per core, 0 on a one-core machine (tokenize in the main process). The main
    process's own share (reading, merging or the model's forward pass, writing) is the smaller
    one, so it shares a core with a worker: on 2 cores, 2 workers scored IMDB 1.4x faster than
    1 (docs/performance.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


def resolve(workers: int | None) -> int:
    """The number of workers to start: `workers`, checked, or `default_workers()` for None."""
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise BadInput(f"--workers must be 0 or more, got {workers}")
    return workers


def plan(items, workers: int | None):
    """(workers to use, items): `workers` resolved, and 0 when there are fewer than two items
    (starting processes would cost more than it saves)."""
    workers = resolve(workers)
    items = iter(items)
    head = list(islice(items, 2))
    return (workers if len(head) == 2 else 0), chain(head, items)


def pool_map(fn, items, prepare, workers: int, initializer=None, initargs=(), ahead: int = 2):
    """(item, fn(prepare(item))) for each of `items`, in order, with fn run on `workers`
    processes at most `ahead` items per worker ahead of the consumer (`items` is read lazily, so
    memory stays bounded). Workers are forked where the platform can (as torch's DataLoader
    does; they run no torch): spawned ones would re-import the caller's script, which breaks
    scripts without a `__main__` guard."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                               initializer=initializer, initargs=initargs)
    pending = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, prepare(item))))
            if len(pending) > ahead * workers:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def start(vocabulary_terms: list[str], ngrams: int) -> None:
    """Worker initializer: the vocabulary's term index."""
    global _index, _ngrams
    _index = {t: i for i, t in enumerate(vocabulary_terms)}
    _ngrams = ngrams


def pairs(reviews) -> list[tuple]:
    """What tokenizing needs of each review, and all a worker is sent: (text, given terms)."""
    return [(r.text, r.terms) for r in reviews]


def batch_ids(items: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Worker task: `term_ids_of(items)` under the term index that `start` set."""
    return term_ids_of(items, _index, _ngrams)


def term_ids_of(items: list[tuple], index: dict, ngrams: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature ids of (text, terms) pairs under `index`: (ids per review, all ids concatenated)."""
    lengths, ids = np.empty(len(items), dtype=np.int64), []
    for i, (text, terms) in enumerate(items):
        found = term_ids(index, ngrams, text, terms)
        lengths[i] = len(found)
        ids.extend(found)
    return lengths, np.asarray(ids, dtype=np.int64)


def document_frequencies(task: tuple) -> Counter:
    """(ngrams, [(text, terms), ...]) -> in how many of the reviews each term occurs."""
    ngrams, items = task
    df = Counter()
    for text, given in items:
        df.update(set(given if given is not None else terms(text, ngrams)))
    return df
