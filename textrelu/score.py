"""score: batch-score review files of any size with a fine-tuned model.

    textrelu score model.pt reviews.csv --out predictions.jsonl [--rejects rejects.jsonl]

Streaming: reviews are read, vectorized and scored a batch at a time, so memory does not grow with
the file. One output line per input row, in input order, with its id, file and row and the
prediction (label and class probabilities, or a rating). Rows that cannot be scored go to the
rejects file with file, row and reason, so that read = scored + rejected. Both files, and a
`.summary.json` with the counts and the config, appear under their final names only when
complete: an interrupted run leaves no half file and can simply be run again.
"""

import itertools
import json
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from . import checkpoint
from .errors import BadInput
from .io import atomic_path, plain
from .progress import bar, say
from .readers import Reject, iter_records
from .targets import Target
from .train import resolve_device
from .vectorize import csr_to_torch, vectorize
from .vocab import Vocabulary


def default_rejects_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".rejects.jsonl")


def prediction_rows(target: Target, reviews, outputs: torch.Tensor):
    """JSON lines for a scored batch."""
    pred = target.predict(outputs).cpu().tolist()  # one conversion per batch, not per value
    for review, p in zip(reviews, pred):
        row = {"id": review.id, "source": review.source, "row": review.row}
        if target.head == "softmax":
            row["label"] = target.classes[max(range(len(p)), key=p.__getitem__)]
            row["probabilities"] = {c: round(q, 6) for c, q in zip(target.classes, p)}
        else:
            row["rating"] = round(p, 6)
        yield json.dumps(row, ensure_ascii=False) + "\n"


# Vectorizing (tokenizing in Python) costs about as much as the model's forward pass, so with
# workers it runs in other processes, a few batches ahead, while this one runs the model and
# writes. In flight at most 2 batches per worker: memory stays flat however large the input.
_worker_vocab = None


def _start_worker(vocab: dict) -> None:
    global _worker_vocab
    _worker_vocab = Vocabulary.from_dict(vocab)


def _vectorize_in_worker(batch):
    return vectorize(batch, _worker_vocab)


def vectorized(batches, vocabulary: Vocabulary, workers: int):
    """(batch, CSR matrix) pairs in input order, vectorized here or in `workers` processes.

    The first batch is always done here: an input of one batch is not worth starting processes.
    """
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return
    yield first, vectorize(first, vocabulary)
    if workers == 0:
        for batch in batches:
            yield batch, vectorize(batch, vocabulary)
        return
    second = next(batches, None)
    if second is None:
        return
    # spawn, not fork: a forked copy of a process that has started torch's threads can hang.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_worker, initargs=(vocabulary.to_dict(),)) as pool:
        pending = deque()
        for batch in itertools.chain([second], batches):
            pending.append((batch, pool.submit(_vectorize_in_worker, batch)))
            if len(pending) > 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def default_workers() -> int:
    """One vectorizing process per core beyond the first (0 on a single core)."""
    return min(4, (os.cpu_count() or 1) - 1)


def score(model, files: list, out, rejects=None, text_column: str | None = None,
          batch_size: int = 1024, workers: int | None = None, device: str = "auto",
          quiet: bool = False) -> dict:
    """Score every row of `files` into `out` (JSON lines); unscorable rows go to `rejects`."""
    config = plain(locals())
    if batch_size < 1:
        raise BadInput(f"--batch-size must be positive, got {batch_size}")
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise BadInput(f"--workers must be 0 or more, got {workers}")
    payload = checkpoint.load(model, kind="model")
    dev = resolve_device(device)
    net = checkpoint.build_net(payload).to(dev)
    target = Target(**payload["target"])
    vocabulary = Vocabulary.from_dict(payload["vocab"])
    rejects = Path(rejects) if rejects is not None else default_rejects_path(out)
    counts = {"read": 0, "scored": 0, "rejected": 0}

    with atomic_path(out) as tmp_out, atomic_path(rejects) as tmp_rej, \
            open(tmp_out, "w", encoding="utf-8") as f_out, open(tmp_rej, "w", encoding="utf-8") as f_rej:

        def batches():
            """Batches of readable reviews, in order; rejects are written as they are met."""
            batch = []
            records = (rec for path in files for rec in iter_records(path, text_column=text_column))
            for rec in bar(records, desc="scoring", unit="reviews", quiet=quiet):
                counts["read"] += 1
                if isinstance(rec, Reject):
                    f_rej.write(json.dumps({"source": rec.source, "row": rec.row, "reason": rec.reason},
                                           ensure_ascii=False) + "\n")
                    counts["rejected"] += 1
                    continue
                batch.append(rec)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

        for batch, x in vectorized(batches(), vocabulary, workers):
            with torch.no_grad():
                outputs, _ = net(csr_to_torch(x, dev))
            f_out.writelines(prediction_rows(target, batch, outputs))
            counts["scored"] += len(batch)
    summary = {**counts, "out": str(out), "rejects": str(rejects), "config": config}
    summary_path = Path(out).with_name(Path(out).name.removesuffix(".jsonl") + ".summary.json")
    with atomic_path(summary_path) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    say(f"read {counts['read']} = scored {counts['scored']} + rejected {counts['rejected']}; "
        f"predictions -> {out}, rejects -> {rejects}", quiet)
    return summary
