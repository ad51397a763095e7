"""score: batch-score review files of any size with a fine-tuned model.

    textrelu score model.pt reviews.csv --out predictions.jsonl [--rejects rejects.jsonl]

Streaming: reviews are read, vectorized and scored a batch at a time, so memory does not grow with
the file; worker threads vectorize the next batches while the model scores this one. One output
line per input row, in input order, with its id, file and row and the prediction (label and class
probabilities, or a rating). Rows that cannot be scored go to the rejects file with file, row and
reason, so that read = scored + rejected. Both files, and a `.summary.json` with the counts and
the config, appear under their final names only when complete: an interrupted run leaves no half
file and can simply be run again.
"""

import json
from pathlib import Path

import orjson
import torch

from textrelu import checkpoint
from textrelu.data.readers import Reject, iter_records
from textrelu.data.vectorize import vectorize_batches
from textrelu.data.vocab import Vocabulary
from textrelu.data.workers import resolve as resolve_workers
from textrelu.io import atomic_path
from textrelu.nn.batches import csr_to_torch
from textrelu.nn.targets import Target
from textrelu.nn.train import resolve_device
from textrelu.progress import bar, say
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare

SETTINGS = STAGE_SETTINGS["score"]


def beside(out, suffix: str) -> Path:
    """A file next to the predictions: predictions.jsonl -> predictions<suffix>."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + suffix)


def prediction_rows(target: Target, reviews, outputs: torch.Tensor):
    """JSON lines (UTF-8 bytes) for a scored batch."""
    pred = target.predict(outputs).cpu().tolist()  # one conversion per batch, not per value
    for review, p in zip(reviews, pred):
        row = {"id": review.id, "source": review.source, "row": review.row}
        if target.head == "softmax":
            row["label"] = target.classes[max(range(len(p)), key=p.__getitem__)]
            row["probabilities"] = {c: round(q, 6) for c, q in zip(target.classes, p)}
        else:
            row["rating"] = round(p, 6)
        yield orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def score(
    model, files: list, out, rejects=None, device: str = "auto", quiet: bool = False, **settings
) -> dict:
    """Score every row of `files` into `out` (JSON lines); unscorable rows go to `rejects`.

    settings: the keys of Scoring and Reading (textrelu.settings). `workers` threads vectorize
    ahead of the model (None: one per core; 0: all in this thread); the output is the same
    either way."""
    args = dict(locals())
    s = SETTINGS.resolve(settings)
    workers = resolve_workers(s.scoring.workers)  # the config records the number used
    batch_size, text_column = s.scoring.batch_size, s.reading.text_column
    config = {**SETTINGS.config(args, s), "workers": workers}
    payload = checkpoint.load(model, kind="model")
    dev = resolve_device(device)
    net = checkpoint.build_net(payload).to(dev)
    target = Target(**payload["target"])
    vocabulary = Vocabulary.from_dict(payload["vocab"])
    rejects = Path(rejects) if rejects is not None else beside(out, ".rejects.jsonl")
    counts = {"read": 0, "scored": 0, "rejected": 0}

    with (
        atomic_path(out) as tmp_out,
        atomic_path(rejects) as tmp_rej,
        open(tmp_out, "wb") as f_out,
        open(tmp_rej, "w", encoding="utf-8") as f_rej,
    ):

        def batches():
            """Batches of readable reviews, in order; rejects are written as they are met."""
            batch = []
            records = (rec for path in files for rec in iter_records(path, text_column=text_column))
            for rec in bar(records, desc="scoring", unit="reviews", quiet=quiet):
                counts["read"] += 1
                if isinstance(rec, Reject):
                    f_rej.write(
                        json.dumps(
                            {"source": rec.source, "row": rec.row, "reason": rec.reason}, ensure_ascii=False
                        )
                        + "\n"
                    )
                    counts["rejected"] += 1
                    continue
                batch.append(rec)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

        for batch, x in vectorize_batches(batches(), vocabulary, workers):
            with torch.inference_mode():
                outputs, _ = net(csr_to_torch(x, dev))
            f_out.writelines(prediction_rows(target, batch, outputs))
            counts["scored"] += len(batch)
    summary = {**counts, "out": str(out), "rejects": str(rejects), "config": config}
    with atomic_path(beside(out, ".summary.json")) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    say(
        f"read {counts['read']} = scored {counts['scored']} + rejected {counts['rejected']}; "
        f"predictions -> {out}, rejects -> {rejects}",
        quiet,
    )
    return summary


def lines(metrics: dict) -> list[str]:
    return [f"score: read {metrics['read']} = scored {metrics['scored']} + rejected {metrics['rejected']}"]


STAGE = declare(
    __name__,
    reads={"model": "model"},
    writes={"out": ("predictions", "predictions.jsonl"), "rejects": ("rejects", "rejects.jsonl")},
)
