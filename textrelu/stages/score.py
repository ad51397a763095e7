"""score: batch-score review files of any size with a fine-tuned model.

    textrelu score model.pt reviews.csv --out predictions.jsonl [--rejects rejects.jsonl]

Streaming: reviews are read, vectorized and scored a batch at a time, so memory does not grow with
the file; worker threads vectorize the next batches while the model scores this one. One output
line per input row, in input order, with its id, file and row and the prediction (label and class
probabilities, or a rating). Rows that cannot be scored go to the rejects file with file, row and
reason, so that read = scored + rejected. Both files, and a `.summary.json` with the counts and
the config, appear under their final names only when complete: an interrupted run leaves no half
file and can simply be run again. With --engine ray the rows are scored on a Ray cluster into a
folder of shards (stages/ray_engine.py), the same rows.
"""

import json
import os
from contextlib import ExitStack
from pathlib import Path

import orjson
import torch

from textrelu import checkpoint
from textrelu.data.dataset import records
from textrelu.data.readers import Reject
from textrelu.data.vectorize import vectorize, vectorize_batches
from textrelu.data.vocab import Vocabulary
from textrelu.data.workers import resolve as resolve_workers
from textrelu.errors import BadInput
from textrelu.io import STDIO, check_outputs, is_special, output_file
from textrelu.nn.batches import csr_to_torch
from textrelu.nn.targets import Target
from textrelu.nn.train import resolve_device
from textrelu.progress import bar, report_rejects, say
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare, model_columns, ray_engine

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


def reject_line(rec: Reject) -> bytes:
    """The rejects file's JSON line (UTF-8 bytes) for a row that could not be scored."""
    row = {"source": rec.source, "row": rec.row, "reason": rec.reason}
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


class Scorer:
    """A model file loaded once, turning batches of reviews into the output lines of `score`;
    the one place a batch is scored, here and in the Ray engine's actors (stages/ray_engine.py)."""

    def __init__(self, model, device: str = "auto"):
        self.payload = checkpoint.load(model, kind="model")
        self.device = resolve_device(device)
        self.net = checkpoint.build_net(self.payload).to(self.device)
        self.target = Target(**self.payload["target"])
        self.vocabulary = Vocabulary.from_dict(self.payload["vocab"])

    def lines(self, reviews, x) -> list[bytes]:
        """The output lines of `reviews`, whose vectors `x` already are."""
        with torch.inference_mode():
            outputs, _ = self.net(csr_to_torch(x, self.device))
        return list(prediction_rows(self.target, reviews, outputs))

    def __call__(self, reviews) -> list[bytes]:
        return self.lines(reviews, vectorize(reviews, self.vocabulary))

    reject_line = staticmethod(reject_line)  # so that a Scorer is all an engine needs


def score(
    model, files: list, out, rejects=None, device: str = "auto", quiet: bool = False, **settings
) -> dict:
    """Score every row of `files` into `out` (JSON lines); unscorable rows go to `rejects`.

    settings: the keys of Scoring and Reading (textrelu.settings). `workers` threads vectorize
    ahead of the model (None: one per core; 0: all in this thread); the output is the same
    either way. `out` may be `-` (stdout) or a special file (a FIFO, /dev/stdout), streamed:
    then the rejects go to `rejects` if given,
    else only their count and the first few reach stderr, and no summary file is written. A file
    given as `-` is read from stdin."""
    args = dict(locals())
    s = SETTINGS.resolve(settings)
    workers = resolve_workers(s.scoring.workers)  # the config records the number used
    config = {**SETTINGS.config(args, s), "workers": workers}
    if s.engine.engine == "ray":
        return score_on_ray(model, files, out, rejects, device, quiet, s, config)
    if s.engine.address is not None or s.scoring.format != "jsonl":
        raise BadInput("--address and --format are for --engine ray; the local engine writes JSON lines")
    streamed = os.fspath(out) == STDIO or is_special(out)  # stdout, a FIFO, /dev/stdout: nothing beside
    if rejects is None and not streamed:
        rejects = beside(out, ".rejects.jsonl")
    summary_file = None if streamed else beside(out, ".summary.json")
    check_outputs({"--out": out, "--rejects": rejects, "the summary": summary_file}, [*files, model])
    scorer = Scorer(model, device)
    # the training files' text column, unless given (scoring reads no labels)
    s.reading = model_columns(s.reading, scorer.payload, ("text_column",))
    batch_size, text_column = s.scoring.batch_size, s.reading.text_column
    config.update(text_column=text_column, id_column=s.reading.id_column)
    counts = {"read": 0, "scored": 0, "rejected": 0}

    def tell(message):
        say(message, quiet)

    unsaved = []  # the first rejects, reported when there is no rejects file

    with ExitStack() as outputs:
        f_out = outputs.enter_context(output_file(out, "wb"))
        f_rej = outputs.enter_context(output_file(rejects, "wb")) if rejects is not None else None

        def batches():
            """Batches of readable reviews, in order; rejects are written as they are met."""
            batch = []
            for rec in bar(records(files, s.reading, tell), desc="scoring", unit="reviews", quiet=quiet):
                counts["read"] += 1
                if isinstance(rec, Reject):
                    if f_rej is not None:
                        f_rej.write(reject_line(rec))
                    elif len(unsaved) < 5:
                        unsaved.append(rec)
                    counts["rejected"] += 1
                    continue
                batch.append(rec)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch

        for batch, x in vectorize_batches(batches(), scorer.vocabulary, workers):
            f_out.writelines(scorer.lines(batch, x))
            counts["scored"] += len(batch)
    summary = {
        **counts,
        "out": str(out),
        "rejects": None if rejects is None else str(rejects),
        "config": config,
    }
    if summary_file is not None:
        with output_file(summary_file, "w") as f:
            json.dump(summary, f, indent=2)
    if unsaved:
        say(f"warning: {counts['rejected']} row(s) could not be scored (no --rejects file):", quiet)
        report_rejects(unsaved, quiet, heading=False)
    say(
        f"read {counts['read']} = scored {counts['scored']} + rejected {counts['rejected']}; "
        f"predictions -> {out}, rejects -> {rejects if rejects is not None else 'stderr'}",
        quiet,
    )
    return summary


def score_on_ray(model, files, out, rejects, device, quiet, s, config) -> dict:
    """`score` with --engine ray: the folder `out` of shards and manifest.json (stages/ray_engine.py)."""
    ray_engine.need_ray()
    if rejects is not None:
        raise BadInput(
            "--rejects is for the local engine: with --engine ray the rejects are the --out folder's rejects-*.jsonl"
        )
    payload = checkpoint.load(model, kind="model")
    s.reading = model_columns(s.reading, payload, ("text_column",))
    config.update(text_column=s.reading.text_column, id_column=s.reading.id_column)
    manifest = ray_engine.score(
        files,
        out,
        Scorer,
        model,
        Target(**payload["target"]),
        s.reading,
        s.scoring.batch_size,
        s.scoring.format,
        s.engine.address,
        device,
        quiet,
        config,
    )
    say(
        f"read {manifest['read']} = scored {manifest['scored']} + rejected {manifest['rejected']}; "
        f"shards and {ray_engine.MANIFEST} -> {out}",
        quiet,
    )
    counts = {key: manifest[key] for key in ("read", "scored", "rejected")}
    return {**counts, "out": str(out), "rejects": os.path.join(out, "rejects-*.jsonl"), "config": config}


def lines(metrics: dict) -> list[str]:
    return [f"score: read {metrics['read']} = scored {metrics['scored']} + rejected {metrics['rejected']}"]


STAGE = declare(
    __name__,
    reads={"model": "model"},
    writes={"out": ("predictions", "predictions.jsonl"), "rejects": ("rejects", "rejects.jsonl")},
)
