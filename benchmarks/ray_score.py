"""Scoring throughput of `textrelu score --engine ray` against the local command, on the 25,000
IMDB test reviews as a Parquet folder, and the workers it would take to score 100 million reviews
in an hour (an extrapolation from the measured rate per core).

    python benchmarks/ray_score.py                 # train 1 epoch on 5,000 train reviews, time 2 rounds
    python benchmarks/ray_score.py --quick         # smoke run: 2,000 test reviews, 1 round

The model: build-vocab (unigrams+bigrams, 5,000 terms) and finetune (1 x 1000 relu, 1 epoch) on
--train-limit IMDB train reviews; accuracy is not the point. The test reviews are written as a
folder of --shards Parquet files (id, text, label), and as a second folder holding them
--copies times.

Timed, each in a fresh child process, interleaved round by round (after an untimed warm-up), so
that the noise of the shared machine falls on both engines alike:
- end to end, as a user runs it: `python -m textrelu score model.pt test/ --out ... -q`, local
  (vectorizing threads, one per core) and `--engine ray` (which starts a local Ray on all cores,
  scores, writes the shards and shuts Ray down);
- the steady rate: one child scores the 1x folder (untimed, a warm-up), the 1x folder again and
  then the --copies x folder with the stage function (for Ray, in a Ray it started first);
  (rows of the big run - rows of the 1x run) / (the difference of their times) leaves out what
  a run pays once (starting its actors, loading the model, compiling the featurizer), which a
  long job pays once too.

The per-core rate is the steady Ray rate divided by the cores the Ray instance had; the workers
(cores) for 100 million reviews an hour follow from it, assuming that more nodes score at the
same rate per core, which is an estimate: it leaves out the driver, which writes every shard
itself, and the network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import common

CORES = len(os.sched_getaffinity(0))
TARGET_ROWS, TARGET_SECONDS = 100_000_000, 3600


def parquet_folder(rows: list[dict], folder: Path, shards: int, copies: int = 1) -> int:
    """`rows` (copies times) as `shards` Parquet files in `folder`; the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rows = rows * copies
    per = -(-len(rows) // shards)
    for k in range(shards):
        part = rows[k * per : (k + 1) * per]
        pq.write_table(pa.Table.from_pylist(part), folder / f"part-{k:03d}.parquet")
    return len(rows)


def spread(rows: list, limit: int) -> list:
    """At most `limit` of `rows`, evenly spread (the IMDB files are sorted by class)."""
    step = max(1, len(rows) / limit)
    return [rows[int(i * step)] for i in range(min(limit, len(rows)))]


def train(files: dict, work: Path) -> Path:
    from textrelu.stages.build_vocab import build_vocab
    from textrelu.stages.finetune import finetune

    train_file = str(files["train"][0])
    started = time.perf_counter()
    vocab = build_vocab([train_file], work / "imdb.vocab", size=5000, ngrams=2, quiet=True)
    metrics = finetune(
        [train_file],
        "sentiment",
        work / "imdb.pt",
        vocab=vocab,
        epochs=1,
        device="cpu",
        seed=0,
        quiet=True,
        search=False,
    )
    print(
        f"model: {len(vocab)} terms, 1 x 1000 relu, valid accuracy {metrics['valid']['accuracy']:.4f}, "
        f"trained in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return work / "imdb.pt"


def steady(engine: str, model: str, once: str, more: str, out: str) -> None:
    """Child: score the 1x folder (a warm-up, then timed) and the bigger one in this process;
    print the times and rows as JSON."""
    sys.path.insert(0, str(common.REPO))
    from textrelu.stages.score import score

    if engine == "ray":
        import ray

        from textrelu.stages.ray_engine import shipped

        ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False, runtime_env=shipped())
    times = {}
    for name, folder in (("warm-up", once), ("once", once), ("more", more)):
        started = time.perf_counter()
        target = f"{out}.{name}" + ("" if engine == "ray" else ".jsonl")
        summary = score(model, [folder], target, engine=engine, device="cpu", quiet=True)
        times[name] = (time.perf_counter() - started, summary["scored"])
    if engine == "ray":
        ray.shutdown()
    print(json.dumps(times))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 test reviews, 1 round")
    parser.add_argument(
        "--train-limit", type=int, default=5000, help="IMDB train reviews the model learns from"
    )
    parser.add_argument("--shards", type=int, default=8, help="Parquet files of the test folder")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the files here [default: a temp dir]"
    )
    parser.add_argument("--data", type=Path, default=common.DATA, help="the folder that holds imdb/")
    parser.add_argument(
        "--steady", nargs=5, metavar=("ENGINE", "MODEL", "ONCE", "MORE", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--copies", type=int, default=4, help="copies of the test set in the big folder")
    args = parser.parse_args()
    if args.steady:
        return steady(*args.steady)
    repeats = 1 if args.quick else args.repeats

    work = common.workdir("textrelu-bench-ray-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "test"), data=args.data)
    train_file = work / "train-sample.jsonl"
    common.write_jsonl(train_file, spread(common.read_jsonl(files["train"][0]), args.train_limit))
    model = train({"train": (train_file,)}, work)
    test_rows = common.read_jsonl(files["test"][0])
    if args.quick:
        test_rows = spread(test_rows, 2000)
    once, more = work / "test-1x", work / f"test-{args.copies}x"
    n = parquet_folder(test_rows, once, args.shards)
    parquet_folder(test_rows, more, args.copies * args.shards, copies=args.copies)

    python = [common.PYTHON, "-m", "textrelu"]
    runs = {
        "local, end to end": [
            *python,
            "score",
            str(model),
            str(once),
            "--out",
            str(work / "local.jsonl"),
            "-q",
        ],
        "ray, end to end": [
            *python,
            "score",
            str(model),
            str(once),
            "--out",
            str(work / "ray-out"),
            "--engine",
            "ray",
            "-q",
        ],
    }
    me = [common.PYTHON, str(Path(__file__).resolve()), "--steady"]
    steadies = {
        engine: [*me, engine, str(model), str(once), str(more), str(work / f"steady-{engine}")]
        for engine in ("local", "ray")
    }
    wall = {name: [] for name in runs}
    rate = {engine: [] for engine in steadies}
    for rnd in range(repeats + 1):  # round 0 warms the caches (numba, the file system) and is not counted
        for name, argv in runs.items():
            result = common.run_child(argv, cwd=common.REPO)
            if rnd:
                wall[name].append(result["wall"])
            print(f"round {rnd}: {name} {result['wall']:.1f} s", file=sys.stderr)
        for engine, argv in steadies.items() if rnd else ():  # each child warms itself up
            times = common.child_json(common.run_child(argv, cwd=common.REPO))
            (t1, n1), (t2, n2) = times["once"], times["more"]
            rate[engine].append((n2 - n1) / (t2 - t1))
            print(f"round {rnd}: {engine} steady {t1:.1f} s for {n1}, {t2:.1f} s for {n2}", file=sys.stderr)

    print(
        "\n".join(
            ["## Scoring on Ray against one process, IMDB test set", "", *common.machine_lines(("ray",)), ""]
        )
    )
    print(f"{n:,} reviews in {args.shards} Parquet files; {repeats} timed round(s), medians; {CORES} cores\n")
    local_e2e, ray_e2e = common.median(wall["local, end to end"]), common.median(wall["ray, end to end"])
    local_rate, ray_rate = common.median(rate["local"]), common.median(rate["ray"])
    rows = [
        ["local, end to end", f"{local_e2e:.1f}", f"{n / local_e2e:,.0f}", "1.00"],
        [
            "ray, end to end (starts Ray)",
            f"{ray_e2e:.1f}",
            f"{n / ray_e2e:,.0f}",
            f"{local_e2e / ray_e2e:.2f}",
        ],
        ["local, steady", "", f"{local_rate:,.0f}", "1.00"],
        ["ray, steady", "", f"{ray_rate:,.0f}", f"{ray_rate / local_rate:.2f}"],
    ]
    print(common.table(["run", "seconds", "reviews/s", "vs local"], rows))
    per_core = ray_rate / CORES
    cores = TARGET_ROWS / TARGET_SECONDS / per_core
    print(
        f"\nEstimate: {per_core:,.0f} reviews/s per core on Ray (steady rate / {CORES} cores), so 100 million "
        f"reviews in an hour ({TARGET_ROWS / TARGET_SECONDS:,.0f}/s) take about {cores:,.0f} worker cores "
        f"(nodes of 16 cores: {-(-cores // 16):,.0f}), if the rate per core holds on more nodes."
    )


if __name__ == "__main__":
    main()
