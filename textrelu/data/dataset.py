"""Review files to training arrays: read (with rejects reported), vectorize, attach targets."""

import scipy.sparse as sp

from textrelu.data.readers import Reject, records
from textrelu.data.vectorize import vectorize, vectorize_batches
from textrelu.errors import BadInput
from textrelu.nn.batches import ArrayData
from textrelu.nn.targets import label_problem
from textrelu.progress import bar, report_rejects, say
from textrelu.settings import Reading

CHUNK = 2048  # reviews per batch when vectorizing a whole dataset


def read_files(files, reading: Reading | None = None, quiet=False, what="reviews", shard=None):
    """All reviews of `files`, in order, read as `reading` says (None: the defaults); rows that
    cannot be read are reported, never silent. `shard` (index, count): only the records (reviews
    and rejects) whose position in the stream modulo count is index, for one of count processes
    that each hold their share; the others are passed over as they stream by."""
    reading = Reading() if reading is None else reading
    if not files:
        raise BadInput(f"no {what} files given")
    index, count = (0, 1) if shard is None else shard
    reviews, rejects = [], []
    found = records(files, reading, notify=lambda m: say(m, quiet))
    for i, rec in enumerate(bar(found, desc=f"reading {what}", unit="reviews", quiet=quiet)):
        if i % count == index:
            (rejects if isinstance(rec, Reject) else reviews).append(rec)
    report_rejects(rejects, quiet)
    if not reviews:
        part = f" (share {index} of {count} processes: row number modulo {count} = {index})" if shard else ""
        raise BadInput(f"no readable reviews in {', '.join(map(str, files))}{part}")
    return reviews, rejects


def to_arrays(reviews, vocab, target=None, workers: int | None = None) -> ArrayData:
    """Binary bag-of-words inputs and, with a target, its encoded labels; `workers` threads
    vectorize (None: one per core), as in `vectorize_batches`."""
    y = None if target is None else target.encode(reviews)
    chunks = (reviews[i : i + CHUNK] for i in range(0, len(reviews), CHUNK))
    parts = [x for _, x in vectorize_batches(chunks, vocab, workers)]
    X = sp.vstack(parts, format="csr") if parts else vectorize([], vocab)
    return ArrayData(X, y)


def screen_labels(
    reviews,
    task: str,
    max_bad: float,
    what: str = "reviews",
    classes=None,
    quiet=False,
    positive_above: float | None = None,
):
    """(reviews whose label `task` can use, Rejects for the others, each with file, row and the
    bad value). More than `max_bad` of them bad is BadInput: a wrong column, not a few bad rows.

    positive_above (sentiment): the labels are ratings, mapped to "positive" above it and
    "negative" below it; a rating equal to it is neutral and left out (said, not counted as bad)."""
    kept, bad, neutral = [], [], 0
    for r in reviews:
        if positive_above is not None and task == "sentiment":
            problem = label_problem("rating", r)
            if problem is None:
                value = r.rating if r.rating is not None else float(r.label)
                if value == positive_above:
                    neutral += 1
                    continue
                r.label = "positive" if value > positive_above else "negative"
        else:
            problem = label_problem(task, r, classes)
        if problem is None:
            kept.append(r)
        else:
            bad.append(Reject(r.source, r.row, problem))
    if neutral:
        say(f"{neutral} {what} review(s) rated exactly {positive_above:g} (neutral) left out", quiet)
    if bad:
        share = len(bad) / len(reviews)
        first = "; ".join(f"{b.source}, row {b.row}: {b.reason}" for b in bad[:3])
        if share > max_bad or not kept:
            raise BadInput(
                f"{len(bad)} of {len(reviews)} {what} reviews have labels that {task} cannot use "
                f"({share:.1%}, over max_bad_labels {max_bad:g}); first: {first}; "
                "is the label column the right one (label_column)?"
            )
        say(f"warning: {len(bad)} {what} review(s) left out for their labels:", quiet)
        report_rejects(bad, quiet, heading=False)
    if not kept:
        raise BadInput(f"no {what} reviews left: all {len(reviews)} were rated {positive_above:g} (neutral)")
    return kept, bad
