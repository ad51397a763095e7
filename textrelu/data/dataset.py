"""Review files to training arrays: read (with rejects reported), vectorize, attach targets."""

import scipy.sparse as sp

from textrelu.data.readers import Reject, iter_records
from textrelu.data.vectorize import vectorize, vectorize_batches
from textrelu.errors import BadInput
from textrelu.nn.batches import ArrayData
from textrelu.progress import bar, report_rejects

CHUNK = 2048  # reviews per batch when vectorizing a whole dataset


def read_files(files, text_column=None, label_column=None, quiet=False, what="reviews"):
    """All reviews of `files`, in order; rows that cannot be read are reported, never silent."""
    if not files:
        raise BadInput(f"no {what} files given")
    reviews, rejects = [], []
    records = (
        rec
        for path in files
        for rec in iter_records(path, text_column=text_column, label_column=label_column)
    )
    for rec in bar(records, desc=f"reading {what}", unit="reviews", quiet=quiet):
        (rejects if isinstance(rec, Reject) else reviews).append(rec)
    report_rejects(rejects, quiet)
    if not reviews:
        raise BadInput(f"no readable reviews in {', '.join(map(str, files))}")
    return reviews, rejects


def to_arrays(reviews, vocab, target=None, workers: int | None = None) -> ArrayData:
    """Binary bag-of-words inputs and, with a target, its encoded labels; `workers` threads
    vectorize (None: one per core), as in `vectorize_batches`."""
    y = None if target is None else target.encode(reviews)
    chunks = (reviews[i : i + CHUNK] for i in range(0, len(reviews), CHUNK))
    parts = [x for _, x in vectorize_batches(chunks, vocab, workers)]
    X = sp.vstack(parts, format="csr") if parts else vectorize([], vocab)
    return ArrayData(X, y)
