"""The worker side of parallel vectorizing.

Tokenizing is pure Python and holds the GIL, so a second core has to be a second process. A
worker holds the vocabulary's term index (sent once, by `start`) and turns batches of reviews into
feature ids; the main process reads the files, builds the sparse batches, runs the model and
writes. This module imports no torch, so that a worker that has to be spawned (where fork is not
available) starts in a fraction of a second.
"""

import os

import numpy as np

from .tokenize import term_ids

_index: dict[str, int] = {}
_ngrams = 1


def default_workers() -> int:
    """One worker per core beyond the first: the main process keeps a core for reading, the
    model and writing. 0 on a one-core machine (vectorize in the main process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)


def start(terms: list[str], ngrams: int) -> None:
    """Worker initializer: the vocabulary's term index."""
    global _index, _ngrams
    _index = {t: i for i, t in enumerate(terms)}
    _ngrams = ngrams


def batch_ids(items: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Feature ids of (text, terms) pairs: (ids per review, all ids concatenated), int32."""
    lengths, ids = np.empty(len(items), dtype=np.int32), []
    for i, (text, terms) in enumerate(items):
        found = term_ids(_index, _ngrams, text, terms)
        lengths[i] = len(found)
        ids.extend(found)
    return lengths, np.asarray(ids, dtype=np.int32)
