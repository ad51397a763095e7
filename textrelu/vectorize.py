"""Reviews to binary bag-of-words vectors (scipy CSR), in this process or on worker processes,
CSR batches to torch sparse tensors, and the naive Bayes log-count ratios that `--nb-weights`
weights the terms by."""

import multiprocessing
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import chain

import numpy as np
import scipy.sparse as sp
import torch

from . import workers as worker
from .errors import BadInput

# torch warns once that sparse CSR is "beta"; the operations used here are stable and tested.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def vectorize(reviews, vocab) -> sp.csr_matrix:
    """Binary CSR matrix (n_reviews, len(vocab)), float32: 1 where the review holds the term."""
    indptr, indices = [0], []
    for review in reviews:
        indices.extend(vocab.ids(review))
        indptr.append(len(indices))
    return binary_csr(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64), len(vocab))


def binary_csr(indptr: np.ndarray, indices: np.ndarray, n_features: int) -> sp.csr_matrix:
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_features))


def vectorize_batches(batches, vocab, workers: int | None = None, ahead: int = 2):
    """(batch, its CSR matrix) for each batch of reviews in `batches` (any iterable), in order.

    With `workers` > 0 (None: `workers.default_workers()`, one per core beyond the first) the
    tokenizing runs on that many processes, up to `ahead` batches per worker ahead of the
    consumer, so memory stays bounded. A single batch is vectorized here: starting processes
    would cost more than it saves. Workers are forked where the platform can (as torch's
    DataLoader does; they run no torch): spawned ones would re-import the caller's script, which
    breaks scripts without a `__main__` guard.
    """
    workers = worker.default_workers() if workers is None else workers
    if workers < 0:
        raise BadInput(f"--workers must be 0 or more, got {workers}")
    batches = iter(batches)
    head = [b for b in (next(batches, None), next(batches, None)) if b is not None]
    if workers == 0 or len(head) < 2:
        for batch in chain(head, batches):
            yield batch, vectorize(batch, vocab)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                               initializer=worker.start, initargs=(vocab.terms, vocab.ngrams))
    pending = deque()
    try:
        for batch in chain(head, batches):
            pending.append((batch, pool.submit(worker.batch_ids, [(r.text, r.terms) for r in batch])))
            if len(pending) > ahead * workers:
                yield _finish(pending.popleft(), len(vocab))
        while pending:
            yield _finish(pending.popleft(), len(vocab))
    finally:
        pool.shutdown(cancel_futures=True)


def _finish(submitted, n_features: int) -> tuple:
    """(batch, CSR) from a batch and its worker's (ids per review, ids)."""
    batch, future = submitted
    lengths, ids = future.result()
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return batch, binary_csr(indptr, ids.astype(np.int64), n_features)


def csr_to_torch(x: sp.csr_matrix, device="cpu") -> torch.Tensor:
    """A scipy CSR batch as a torch sparse CSR tensor; the input is never densified."""
    return torch.sparse_csr_tensor(torch.from_numpy(x.indptr.astype(np.int64)),
                                   torch.from_numpy(x.indices.astype(np.int64)),
                                   torch.from_numpy(x.data.astype(np.float32, copy=False)),
                                   size=x.shape, device=device, check_invariants=False)


def nb_log_ratios(X, y, alpha: float = 1.0) -> np.ndarray:
    """Per feature, log of (its smoothed share among class-1 rows) over (its share among class-0
    rows): the naive Bayes log-count ratio r of Wang & Manning (2012), float32 (n_features,)."""
    y = np.asarray(y)
    if len(np.unique(y)) != 2:
        raise BadInput("NB weights need training reviews of both classes")
    p = np.asarray(X[y == 1].sum(axis=0)).ravel() + alpha
    q = np.asarray(X[y == 0].sum(axis=0)).ravel() + alpha
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
