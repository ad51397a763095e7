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

On the CPU the model runs without torch (`Scorer`: nn/inference.py over the arrays that
`checkpoint.load_arrays` reads), so a few reviews are scored in a fraction of a second. An input
of at most `PLAIN_MAX_REVIEWS` reviews is vectorized and scored without the compiled loops
(numba), which cost more to load than they save there; the predictions are the same.
"""

import itertools
import json
import os
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import orjson

from textrelu import checkpoint
from textrelu.data.readers import Reject, records
from textrelu.data.vectorize import vectorize, vectorize_batches
from textrelu.data.vocab import Vocabulary
from textrelu.data.workers import resolve as resolve_workers
from textrelu.errors import BadInput
from textrelu.io import STDIO, check_outputs, is_special, output_file
from textrelu.nn.targets import Target
from textrelu.progress import bar, report_rejects, say
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare, model_columns, ray_engine

SETTINGS = STAGE_SETTINGS["score"]
# Inputs of at most this many reviews skip the compiled loops: loading numba and them takes about
# 0.3 s and 65 MB, and the plain tokenizer costs 0.3 ms a review more (benchmarks/startup.py).
PLAIN_MAX_REVIEWS = 1000


def beside(out, suffix: str) -> Path:
    """A file next to the predictions: predictions.jsonl -> predictions<suffix>."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + suffix)


def prediction_rows(target: Target, reviews, predicted: np.ndarray):
    """JSON lines (UTF-8 bytes) for a scored batch, from the target's predictions: class
    probabilities (batch, n_classes) or ratings (batch,)."""
    pred = predicted.tolist()  # one conversion per batch, not per value
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
    """A model file loaded once, turning vectorized batches of reviews into `score`'s output
    lines (`lines`): the one place a batch is scored, for `score` and for other engines.

    On the CPU the network runs without torch: `nn.inference.ArrayNet` over the arrays that
    `checkpoint.load_arrays` reads. With device cuda, or auto where an NVIDIA GPU is present, or a
    model file only torch's reader takes, torch runs it (`checkpoint.load`, `build_net`)."""

    def __init__(self, model, device: str = "auto"):
        payload = None if needs_torch(device) else checkpoint.load_arrays(model, kind="model")
        if payload is None:
            self.payload, self.predict = torch_predictor(model, device)
        else:
            self.payload, self.predict = payload, array_predictor(payload)
        self.target = Target(**self.payload["target"])
        self.vocabulary = Vocabulary.from_dict(self.payload["vocab"])

    def lines(self, reviews, x, compiled: bool = True) -> list[bytes]:
        """The output lines of `reviews`, whose vectors (scipy CSR, `vectorize`) `x` already are;
        `compiled` False runs the network without numba (nn.inference), the same predictions."""
        return list(prediction_rows(self.target, reviews, self.predict(x, compiled)))

    def __call__(self, reviews) -> list[bytes]:
        """The output lines of `reviews` (vectorized here): what an engine's workers call."""
        return self.lines(reviews, vectorize(reviews, self.vocabulary))

    reject_line = staticmethod(reject_line)  # so that a Scorer is all an engine needs


def needs_torch(device: str) -> bool:
    """Whether scoring on `device` takes torch: cuda (or a name that torch's resolve_device
    judges), or auto where an NVIDIA GPU is visible, for torch to decide as everywhere else."""
    if device == "cpu":
        return False
    if device != "auto":
        return True
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    return not hidden and any(Path("/dev").glob("nvidia[0-9]*"))


def array_predictor(payload: dict):
    """predict(x, compiled) -> the target's predictions, by nn.inference without torch."""
    net, target = checkpoint.build_array_net(payload), Target(**payload["target"])

    def predict(x, compiled: bool = True) -> np.ndarray:
        return target.predict_array(net.forward(x, compiled))

    return predict


def torch_predictor(model, device: str):
    """(payload, predict(x, compiled)): the model's torch network on `device`."""
    import torch

    from textrelu.nn.batches import csr_to_torch
    from textrelu.nn.train import resolve_device

    payload = checkpoint.load(model, kind="model")
    dev = resolve_device(device)
    net, target = checkpoint.build_net(payload).to(dev), Target(**payload["target"])

    def predict(x, compiled: bool = True) -> np.ndarray:
        with torch.inference_mode():
            outputs, _ = net(csr_to_torch(x, dev))
            return target.predict(outputs).cpu().numpy()

    return payload, predict


def small_input(batches, limit: int) -> tuple[list, bool]:
    """(the first batches of the iterator `batches`, whether they are all of it and hold at most
    `limit` reviews): read until more than `limit` reviews are seen or the input ends."""
    head, n = [], 0
    for batch in batches:
        head.append(batch)
        n += len(batch)
        if n > limit:
            return head, False
    return head, True


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

        stream = batches()
        head, small = small_input(stream, PLAIN_MAX_REVIEWS)
        for batch, x in vectorize_batches(
            itertools.chain(head, stream), scorer.vocabulary, workers, compiled=not small
        ):
            f_out.writelines(scorer.lines(batch, x, compiled=not small))
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
