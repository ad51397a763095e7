"""The Ray engine of score and build-vocab (`--engine ray`): the same rows, on a Ray cluster.

    textrelu score model.pt reviews/ --out scored/ --engine ray [--address auto] [--format parquet]
    textrelu build-vocab reviews/ --out vocab.txt --engine ray

Reading. The driver cuts the inputs into pieces (`readers.parts`: a folder's files, each on its
own; a file, an archive or a slice whole; below a URI of a file system pyarrow reaches, s3://,
gs://, hdfs://, file://, each file of a known format) and Ray Data hands each piece to a task
that reads it with textrelu's own reader (a remote file copied to the worker's scratch first).
So every row gets the source, row number, id and reject reason that `textrelu score` gives it
on one machine, edge cases included, which a second parser (ray.data.read_csv and the like)
would not promise. A piece that cannot be read at all (a cut
Parquet file) fails the job with the reader's message, which names the file; a bad row is a
reject row, as on one machine.

Scoring. Actors (map_batches over a callable class) load the model once, from the bytes the
driver put in the object store, and score batches of `batch_size` rows with score's own Scorer
(passed in: this module does not import the score stage, which calls it). One GPU an actor when
the cluster has GPUs (and --device is not cpu), else one CPU an actor.

Writing. The driver streams the scored lines into shards of `SHARD_ROWS` rows, `part-*.jsonl`
(the local command's lines, byte for byte) or `part-*.parquet`, plus `rejects-*.jsonl` and
`manifest.json` (read = scored + rejected, per input and per file), in a temporary folder that
becomes `--out` at the end (io.atomic_folder). So `--out` needs no file system shared with the
workers.

Counting. build-vocab's pieces are counted by tasks (`workers.document_frequencies`, as the local
workers count), summed per term on the cluster (a groupby) and cut to `min_df` there; the driver
selects and writes the vocabulary as the local command does.

Ray is an extra (`pip install 'textrelu[ray]'`); without it the engine says so (exit 2). With no
`address`, a local Ray instance is started for the run and shut down after; a Ray already
initialized in this process (a test, a notebook) is used as it is and left running.
"""

import functools
import json
import logging
import os
import posixpath
import re
import shutil
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager

import numpy as np
import orjson

from textrelu.data.readers import Reject, Review, iter_records, named_format, parts
from textrelu.data.workers import document_frequencies, pairs
from textrelu.errors import BadInput, TextreluError
from textrelu.io import atomic_folder, check_output_folder
from textrelu.progress import say
from textrelu.settings import Reading

EXTRA = "pip install 'textrelu[ray]'"
MANIFEST = "manifest.json"
CHUNK = 1024  # records a reading task puts in one block
SHARD_ROWS = 100_000  # rows per output shard (the last of a run holds the rest)
URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$")  # scheme:/... or scheme://...


def need_ray():
    """The ray module, or BadInput saying how to get it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is part of the extra
    except ImportError:
        raise BadInput(f"--engine ray needs Ray Data, which is not installed: {EXTRA}") from None
    return ray


@contextmanager
def cluster(address: str | None, quiet: bool):
    """Ray, connected: to `address`, to a Ray this process already started, or to a local
    instance started now and shut down at the end. `quiet` silences Ray's logs and bars."""
    ray = need_ray()
    level = logging.ERROR if quiet else logging.INFO
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    context = ray.data.DataContext.get_current()
    shown = context.enable_progress_bars, context.print_on_execution_start
    started = not ray.is_initialized()
    with stderr_closed(quiet):
        if started:
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=not quiet,
                    configure_logging=not quiet,
                    logging_level=level,
                    runtime_env=shipped(),
                )
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise BadInput(f"cannot reach the Ray cluster {address or '(local)'}: {error}") from None
        context.enable_progress_bars = context.print_on_execution_start = not quiet
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()
            context.enable_progress_bars, context.print_on_execution_start = shown
            for logger, was in zip(loggers, levels):
                logger.setLevel(was)


@contextmanager
def stderr_closed(closed: bool):
    """With `closed`, the process's stderr (file descriptor 2) goes to /dev/null: Ray's C++ core
    writes a few lines there, past Python's logging. Errors still reach the user: the CLI
    reports them after this has ended."""
    if not closed:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def failure(error: BaseException) -> TextreluError | None:
    """The innermost textrelu error (BadInput naming a file...) in the chain of the error that
    Ray raised, if any (Ray's own wraps it, with the remote traceback in its message)."""
    found, seen = None, set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, TextreluError):
            found = error
        error = getattr(error, "cause", None) or error.__cause__
    return found


@contextmanager
def textrelu_errors():
    """A textrelu error raised in a task or an actor, raised here as itself (BadInput: exit 2)."""
    try:
        yield
    except Exception as error:
        found = failure(error)
        if found is None or found is error:
            raise
        # Ray appends its retry advice to the message: textrelu's messages are one line
        raise type(found)(*(a.split("\n", 1)[0] if isinstance(a, str) else a for a in found.args)) from None


# ---------------------------------------------------------------------------------------------
# Reading: one piece (a file, or a path read whole) a task, with textrelu's reader


@functools.cache
def block_schema():
    """The columns of a block of records (pyarrow is imported with Ray, so here, not above)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("piece", pa.int32()),
            ("source", pa.string()),
            ("row", pa.int64()),
            ("id", pa.string()),
            ("text", pa.string()),
            ("terms", pa.list_(pa.string())),
            ("reason", pa.string()),  # a Reject's; null for a review
        ]
    )


def as_uri(spec) -> str | None:
    """`spec` as the URI of a pyarrow file system (s3://, gs://, hdfs://, file://), or None for
    a local path. A path typed as a Path has lost one of its slashes (s3:/bucket): given back."""
    text = os.fspath(spec)
    match = URI.match(text)
    if match is None or os.path.exists(text):
        return None
    scheme, rest = match[1], match[2]
    return f"file:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


def remote_parts(uri: str) -> list[str]:
    """The data files of a URI (itself, or the files below it whose names say a known format,
    in sorted order): each a piece."""
    from pyarrow import fs

    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.File:
            return [uri]
        if info.type != fs.FileType.Directory:
            raise BadInput(f"{uri}: not found")
        below = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise BadInput(f"{uri}: cannot list it: {error}") from None
    found = []
    for entry in sorted(below, key=lambda e: e.path):
        rel = posixpath.relpath(entry.path, root)
        if entry.type == fs.FileType.File and not any(p.startswith(".") for p in rel.split("/")):
            if named_format(rel) is not None:
                found.append(f"{uri.rstrip('/')}/{rel}")
    if not found:
        raise BadInput(f"no files of a known format in {uri}")
    return found


def pieces(files) -> list[tuple[int, str]]:
    """(input index, path or URI) of every piece of `files`, in order."""
    found = []
    for i, spec in enumerate(files):
        if os.fspath(spec) == "-":
            raise BadInput("--engine ray reads files that the cluster can reach, not stdin (-)")
        uri = as_uri(spec)
        found += [(i, piece) for piece in (parts(spec) if uri is None else remote_parts(uri))]
    return found


def piece_records(path: str, reading: Reading, with_labels: bool = True):
    """The records of one piece as textrelu's reader gives them: a local path read in place, a
    file of a pyarrow file system (a URI) copied to a scratch folder first, its records then
    named by the URI (source, and an id made of it)."""
    options = dict(
        text_column=reading.text_column,
        label_column=reading.label_column if with_labels else None,
        id_column=reading.id_column,
        max_record_bytes=reading.max_record_bytes,
    )
    if as_uri(path) is None:
        yield from iter_records(path, **options)
        return
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    with tempfile.TemporaryDirectory(prefix="textrelu-") as scratch:
        local = os.path.join(scratch, posixpath.basename(inner))
        with filesystem.open_input_stream(inner, compression=None) as remote, open(local, "wb") as f:
            shutil.copyfileobj(remote, f)
        for rec in iter_records(local, **options):
            if isinstance(rec, Review) and rec.id == f"{rec.source}:{rec.row}":
                rec.id = f"{path}:{rec.row}"
            rec.source = path + rec.source[len(local) :]  # an archive's members keep their ::name
            yield rec


def read_pieces(batch: dict, reading: Reading):
    """Blocks of the records of each piece in `batch` (its "piece" index and "path")."""
    import pyarrow as pa

    for index, path in zip(batch["piece"], batch["path"]):
        columns = {name: [] for name in block_schema().names}
        for rec in piece_records(str(path), reading):
            review = isinstance(rec, Review)
            columns["piece"].append(int(index))
            columns["source"].append(rec.source)
            columns["row"].append(rec.row)
            columns["id"].append(rec.id if review else None)
            columns["text"].append(rec.text if review else None)
            columns["terms"].append(rec.terms if review else None)
            columns["reason"].append(None if review else rec.reason)
            if len(columns["piece"]) == CHUNK:
                yield pa.table(columns, schema=block_schema())
                columns = {name: [] for name in block_schema().names}
        if columns["piece"]:
            yield pa.table(columns, schema=block_schema())


def pieces_dataset(ray, found: list):
    """A Ray Dataset of the pieces `found` ("piece": index, "path"), one block each."""
    items = [{"piece": k, "path": path} for k, (_, path) in enumerate(found)]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))


def records_dataset(ray, found: list, reading: Reading):
    """The Ray Dataset of every record of the pieces `found`, read as `reading` says."""
    return pieces_dataset(ray, found).map_batches(read_pieces, batch_size=1, fn_kwargs={"reading": reading})


# ---------------------------------------------------------------------------------------------
# Scoring: actors that load the model once


class ScoreRecords:
    """An actor: a model loaded once (score's Scorer, from the model file's bytes), turning
    blocks of records into their output lines ("line"), rejects flagged ("rejected")."""

    def __init__(self, scorer_class, model_bytes: list, device: str):
        import ray

        self.scorer = load_scorer(scorer_class, ray.get(model_bytes[0]), device)

    def __call__(self, batch):
        import pyarrow as pa

        cols = batch.to_pydict()
        n = len(cols["piece"])
        lines, reviews, slots = [None] * n, [], []
        for i in range(n):
            if cols["reason"][i] is not None:
                lines[i] = self.scorer.reject_line(
                    Reject(cols["source"][i], cols["row"][i], cols["reason"][i])
                )
            else:
                reviews.append(
                    Review(
                        cols["text"][i],
                        cols["terms"][i],
                        None,
                        None,
                        cols["source"][i],
                        cols["row"][i],
                        cols["id"][i],
                    )
                )
                slots.append(i)
        for i, line in zip(slots, self.scorer(reviews) if reviews else []):
            lines[i] = line
        rejected = [reason is not None for reason in cols["reason"]]
        return pa.table(
            {
                "piece": pa.array(cols["piece"], pa.int32()),
                "rejected": pa.array(rejected, pa.bool_()),
                "line": pa.array(lines, pa.binary()),
            }
        )


def load_scorer(scorer_class, model_bytes: bytes, device: str):
    """A Scorer of a model file's bytes (loaded as a file is: torch.load with weights_only)."""
    with tempfile.TemporaryDirectory(prefix="textrelu-") as scratch:
        path = os.path.join(scratch, "model.pt")
        with open(path, "wb") as f:
            f.write(model_bytes)
        return scorer_class(path, device)


def shipped() -> dict:
    """The runtime_env that ships this textrelu package to the workers of a job (a py_module),
    so that they run the driver's code, whatever textrelu a node may have installed; they need
    only its dependencies (torch, numba, orjson...)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"py_modules": [package], "excludes": ["__pycache__"]}


def actor_options(ray, device: str, most: int | None = None) -> dict:
    """One actor a GPU when the cluster has GPUs (and `device` allows), else one a CPU, at most
    `most`, all started at once: a pool that grows with its queue scored a 25,000-row run on one
    actor for most of it (benchmarks/ray_score.py)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if device != "cpu" else 0
    size = gpus or max(1, int(resources.get("CPU", 1)))
    size = size if most is None else max(1, min(size, most))
    kind = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    return {"compute": ray.data.ActorPoolStrategy(size=size), **kind}


def model_bytes(ray, model) -> list:
    """The model file's bytes in the object store, for every actor to load (in a list, so that
    Ray hands the actors the reference, not the bytes, as a constructor argument)."""
    with open(model, "rb") as f:
        return [ray.put(f.read())]


def scored_lines(ray, ds, scorer_class, model, device: str, batch_size: int, n_pieces: int):
    """`ds` (blocks of records) scored by actors into blocks of lines. Ray runs the reading in
    the actors (the two steps fuse), so a piece is one actor's: no more actors than pieces."""
    return ds.map_batches(
        ScoreRecords,
        batch_size=batch_size,
        batch_format="pyarrow",
        fn_constructor_args=(scorer_class, model_bytes(ray, model), device),
        **actor_options(ray, device, n_pieces),
    )


def parquet_schema(target):
    """The Parquet columns of score's rows: id, source, row, then label and probabilities (a
    struct of the classes) or rating."""
    import pyarrow as pa

    fields = [("id", pa.string()), ("source", pa.string()), ("row", pa.int64())]
    if target.head == "softmax":
        fields += [
            ("label", pa.string()),
            ("probabilities", pa.struct([(str(c), pa.float64()) for c in target.classes])),
        ]
    else:
        fields.append(("rating", pa.float64()))
    return pa.schema(fields)


def write_shard(folder, name: str, lines: list[bytes], schema=None) -> None:
    """JSON lines as they are, or (with a schema) the same rows as a Parquet file."""
    path = os.path.join(folder, name)
    if schema is None:
        with open(path, "wb") as f:
            f.writelines(lines)
        return
    import io

    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    table = pa_json.read_json(io.BytesIO(b"".join(lines)), parse_options=options)
    pq.write_table(table, path)


def input_counts(spec, found: list, i: int, per_piece) -> dict:
    """The manifest's counts of input `i` (`spec`) and of each of its files (pieces)."""
    files = [
        {
            "path": path,
            "read": int(per_piece[k].sum()),
            "scored": int(per_piece[k, 0]),
            "rejected": int(per_piece[k, 1]),
        }
        for k, (j, path) in enumerate(found)
        if j == i
    ]
    totals = {key: sum(f[key] for f in files) for key in ("read", "scored", "rejected")}
    return {"path": os.fspath(spec), **totals, "files": files}


def score(
    files: list,
    out,
    scorer_class,
    model,
    target,
    reading: Reading,
    batch_size: int,
    shard_format: str,
    address: str | None,
    device: str,
    quiet: bool,
    config: dict,
) -> dict:
    """Score `files` on Ray into the folder `out`; the counts, as manifest.json records them."""
    check_output_folder("--out", out, MANIFEST, [*files, model])
    schema = parquet_schema(target) if shard_format == "parquet" else None
    counts = {"read": 0, "scored": 0, "rejected": 0}
    found = pieces(files)
    with cluster(address, quiet) as ray, atomic_folder(out, MANIFEST) as folder:
        lines = scored_lines(
            ray, records_dataset(ray, found, reading), scorer_class, model, device, batch_size, len(found)
        )
        per_piece = np.zeros((len(found), 2), dtype=np.int64)  # scored, rejected
        shards, reject_shards = {}, {}
        with textrelu_errors():
            blocks = lines.iter_batches(batch_size=SHARD_ROWS, batch_format="pyarrow", prefetch_batches=1)
            for k, block in enumerate(blocks):
                rejected = block["rejected"].to_numpy(zero_copy_only=False)
                piece = block["piece"].to_numpy()
                line = block["line"].to_pylist()
                np.add.at(per_piece, (piece, rejected.astype(np.int64)), 1)
                kept = [x for x, r in zip(line, rejected) if not r]
                dropped = [x for x, r in zip(line, rejected) if r]
                if kept:
                    name = f"part-{k:05d}.{shard_format}"
                    write_shard(folder, name, kept, schema)
                    shards[name] = len(kept)
                if dropped:
                    name = f"rejects-{k:05d}.jsonl"
                    write_shard(folder, name, dropped)
                    reject_shards[name] = len(dropped)
                counts["scored"] += len(kept)
                counts["rejected"] += len(dropped)
                say(f"scored {counts['scored']:,}, rejected {counts['rejected']:,}", quiet)
        counts["read"] = counts["scored"] + counts["rejected"]
        inputs = [input_counts(spec, found, i, per_piece) for i, spec in enumerate(files)]
        manifest = {
            **counts,
            "inputs": inputs,
            "parts": shards,
            "rejects": reject_shards,
            "format": shard_format,
            "config": config,
        }
        with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
    return manifest


# ---------------------------------------------------------------------------------------------
# Scoring a Ray Dataset a user holds (textrelu.ray.score)


class ScoreTexts:
    """An actor: a model loaded once, adding the prediction of each row's text to its row
    (label and probabilities, or rating); a row whose text is missing or empty gets none, and
    `reason` says why, as score's rejects do."""

    def __init__(self, scorer_class, model_bytes: list, device: str, text_column: str):
        import ray

        self.scorer = load_scorer(scorer_class, ray.get(model_bytes[0]), device)
        self.text_column = text_column

    def __call__(self, batch):
        import pyarrow as pa

        texts = batch[self.text_column].to_pylist()
        reasons = [text_problem(text) for text in texts]
        reviews = [Review(t, None, None, None, "", 0, "") for t, r in zip(texts, reasons) if r is None]
        scored = iter(orjson.loads(line) for line in (self.scorer(reviews) if reviews else []))
        rows = [next(scored) if r is None else {} for r in reasons]
        if self.scorer.target.head == "softmax":
            batch = batch.append_column("label", pa.array([r.get("label") for r in rows], pa.string()))
            kind = pa.struct([(str(c), pa.float64()) for c in self.scorer.target.classes])
            batch = batch.append_column(
                "probabilities", pa.array([r.get("probabilities") for r in rows], kind)
            )
        else:
            batch = batch.append_column("rating", pa.array([r.get("rating") for r in rows], pa.float64()))
        return batch.append_column("reason", pa.array(reasons, pa.string()))


def text_problem(text) -> str | None:
    """Why a text cannot be scored (the readers' reasons), or None."""
    if text is None:
        return "missing text"
    if not isinstance(text, str):
        return f"text is not a string (found {type(text).__name__})"
    return "empty text" if not text.strip() else None


def score_texts(dataset, scorer_class, model, text_column: str, batch_size: int, device: str):
    """`dataset` with each row's prediction added (ScoreTexts), lazily, as Ray Datasets are."""
    ray = need_ray()
    return dataset.map_batches(
        ScoreTexts,
        batch_size=batch_size,
        batch_format="pyarrow",
        fn_constructor_args=(scorer_class, model_bytes(ray, model), device, text_column),
        **actor_options(ray, device),
    )


# ---------------------------------------------------------------------------------------------
# Counting document frequencies for build-vocab


def count_piece(batch: dict, reading: Reading, ngrams: int):
    """A block per piece of `batch`: each term's document frequency in it, and its rejects and
    review count as rows without a term."""
    import pyarrow as pa

    for index, path in zip(batch["piece"], batch["path"]):
        chunk, df, rejects, n_documents = [], Counter(), [], 0
        for rec in piece_records(str(path), reading, with_labels=False):
            if isinstance(rec, Reject):
                rejects.append(rec)
                continue
            chunk.append(rec)
            if len(chunk) == CHUNK:
                df.update(document_frequencies((ngrams, pairs(chunk))))
                n_documents += len(chunk)
                chunk = []
        df.update(document_frequencies((ngrams, pairs(chunk))))
        n_documents += len(chunk)
        rows = len(df) + len(rejects) + 1
        yield pa.table(
            {
                "term": [*df, *([None] * (len(rejects) + 1))],
                "df": [*df.values(), *([0] * len(rejects)), n_documents],
                "piece": [int(index)] * rows,
                "source": [None] * len(df) + [r.source for r in rejects] + [None],
                "row": [None] * len(df) + [r.row for r in rejects] + [None],
                "reason": [None] * len(df) + [r.reason for r in rejects] + [None],
            }
        )


def terms_only(table, keep: bool):
    """The rows of a count block that hold a term (keep) or do not (the reviews and rejects)."""
    import pyarrow.compute as pc

    has_term = pc.is_valid(table["term"])
    return table.filter(has_term if keep else pc.invert(has_term))


def frequent(table, min_df: int):
    """The rows of summed counts with a document frequency of at least `min_df`."""
    import pyarrow.compute as pc

    return table.filter(pc.greater_equal(table["sum(df)"], min_df))


def count_terms(files: list, reading: Reading, ngrams: int, min_df: int, address: str | None, quiet: bool):
    """(document frequency of each term with df >= min_df, distinct terms, reviews, rejects) of
    `files`, counted on Ray: what vocab.count_terms gives, already cut to min_df."""
    found = pieces(files)
    with cluster(address, quiet) as ray, textrelu_errors():
        counted = pieces_dataset(ray, found).map_batches(
            count_piece, batch_size=1, fn_kwargs={"reading": reading, "ngrams": ngrams}
        )
        counted = counted.materialize()
        others = counted.map_batches(
            terms_only, batch_format="pyarrow", fn_kwargs={"keep": False}
        ).to_pandas()
        terms = counted.map_batches(terms_only, batch_format="pyarrow", fn_kwargs={"keep": True})
        totals = terms.groupby("term").sum("df").materialize()
        distinct = totals.count()
        kept = totals.map_batches(frequent, batch_format="pyarrow", fn_kwargs={"min_df": min_df}).to_pandas()
    df = Counter(dict(zip(kept["term"], (int(n) for n in kept["sum(df)"]))))
    n_documents = int(others.loc[others["reason"].isna(), "df"].sum())
    bad = others[others["reason"].notna()].sort_values("piece", kind="stable")  # read order in a piece
    rejects = [Reject(s, int(r), why) for s, r, why in zip(bad["source"], bad["row"], bad["reason"])]
    return df, distinct, n_documents, rejects
