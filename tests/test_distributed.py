"""Data-parallel training under torchrun (nn/distributed.py): what the ranks exchange, checked
in two spawned gloo processes, and whole runs of `torchrun -m textrelu pretrain|finetune` with 2
CPU ranks against one process, on the embedded Amazon kitchen reviews (about a minute in all)."""

import gc
import json
import os
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from corpus import invoke, ok, write_csv

from textrelu import checkpoint
from textrelu.nn.distributed import Group, fit_target, mean_metrics, reduce_meter, session
from textrelu.nn.model import SparsityMeter
from textrelu.nn.targets import Target

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ROOT / "data" / "amazon-kitchen"
TRAIN = [f"{KITCHEN / name}[:800]" for name in ("positive.review", "negative.review")]
TEST = [f"{KITCHEN / name}[800:]" for name in ("positive.review", "negative.review")]
RATINGS = [[1.0, 2.0, 5.0, 4.0, 4.0], [5.0, 1.0, 2.0]]  # rank 0's and rank 1's training ratings


def sparse_rows(rows, values, shape):
    return torch.sparse_coo_tensor(torch.tensor([rows]), torch.tensor(values), shape)


def exchange(rank: int, world: int, init_file: str, out: str) -> None:
    """One rank of test_what_ranks_exchange: average gradients, fit a target, reduce metrics."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        group = Group(rank, world, torch.device("cpu"))
        dense = torch.nn.Parameter(torch.zeros(2, 2))
        dense.grad = torch.full((2, 2), float(rank + 1))
        rows = torch.nn.Parameter(torch.zeros(6, 2))
        touched = (
            ([1, 4, 4], [[1.0, 1.0], [2.0, 0.0], [1.0, 0.0]])
            if rank == 0
            else ([4, 5], [[4.0, 4.0], [6.0, 2.0]])
        )
        rows.grad = sparse_rows(*touched, (6, 2))
        group.average_gradients([dense, rows])
        reviews = [
            types.SimpleNamespace(rating=r, label=None, source="s", row=i)
            for i, r in enumerate(RATINGS[rank])
        ]
        target = fit_target("rating", reviews, "regression", group)
        metrics = mean_metrics(group, {"rmse": 1.0 + rank, "accuracy": 0.5 * rank}, n=1 + rank)
        meter = SparsityMeter()
        meter.update([torch.tensor([[0.0, 1.0]]) if rank == 0 else torch.tensor([[0.0, 0.0], [0.0, 0.0]])])
        sparsity = reduce_meter(group, meter).result()
        torch.save(
            {
                "dense": dense.grad,
                "rows": rows.grad.to_dense(),
                "target": target.to_dict(),
                "metrics": metrics,
                "sparsity": sparsity,
            },
            Path(out) / f"{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_what_ranks_exchange(tmp_path):
    mp.spawn(exchange, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    results = [torch.load(tmp_path / f"{rank}.pt", weights_only=True) for rank in (0, 1)]
    expected_rows = torch.zeros(6, 2)
    expected_rows[1] = torch.tensor([1.0, 1.0]) / 2
    expected_rows[4] = torch.tensor([7.0, 4.0]) / 2
    expected_rows[5] = torch.tensor([6.0, 2.0]) / 2
    alone = Target.fit(
        "rating",
        [types.SimpleNamespace(rating=r, label=None, source="s", row=0) for r in sum(RATINGS, [])],
        "regression",
    )
    for got in results:
        assert torch.equal(got["dense"], torch.full((2, 2), 1.5))
        assert torch.allclose(got["rows"], expected_rows)
        for key in ("mean", "std", "low", "high"):
            assert got["target"][key] == pytest.approx(getattr(alone, key), rel=1e-12)
        # rmse over 1 row of error 1 and 2 rows of error 2: sqrt((1 + 8) / 3); accuracy (0 + 1) / 3
        assert got["metrics"]["rmse"] == pytest.approx(3**0.5)
        assert got["metrics"]["accuracy"] == pytest.approx(1 / 3)
        # 5 zeros of 6 activations; unit 2 active on rank 0's row only, unit 1 never
        assert got["sparsity"] == [{"layer": 1, "exact_zeros": pytest.approx(5 / 6), "dead_units": 0.5}]


def leave(rank: int, world: int, port: int, out: str) -> None:
    """One rank of test_leaving_the_session_stops_the_group: a session as torchrun starts it, with
    an optimizer made inside it (its first import pulls in torch.distributed._shard)."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    with session(torch.device("cpu")) as group:
        torch.optim.Adam([torch.nn.Parameter(torch.ones(2))])
        group.sum([1.0])
    gc.collect()
    threads = [
        (Path("/proc/self/task") / t / "comm").read_text().strip() for t in os.listdir("/proc/self/task")
    ]
    (Path(out) / f"{rank}.json").write_text(json.dumps(threads))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the threads from /proc (Linux)")
def test_leaving_the_session_stops_the_group(tmp_path):
    """Nothing keeps the process group alive past the session: gloo threads left running at exit
    abort the process ("terminate called without an active exception") when one of them frees a
    tensor while the interpreter shuts down, which failed 2 of 77 torchrun runs under load."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(leave, args=(2, port, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        threads = json.loads((tmp_path / f"{rank}.json").read_text())
        assert not [t for t in threads if "gloo" in t], threads


def torchrun(*args, timeout=300):
    """`python -m torch.distributed.run --standalone --nproc-per-node 2 -m textrelu ARGS` with
    one thread per rank (a free port: the standalone rendezvous picks one)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, "-m", "textrelu", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    """Unigrams and bigrams, wide enough (12,000 terms) for the first layer's sparse gradients."""
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    ok(invoke("build-vocab", *TRAIN, "--out", path, "--size", 12000, "--ngrams", 2, "--quiet"))
    return path


FINETUNE = ("--task", "sentiment", "--device", "cpu", "--hidden", 100, "--max-epochs", 5, "--batch-size", 32)
SEARCH = ("--task", "sentiment", "--device", "cpu", "--max-epochs", 2, "--batch-size", 32, "--folds", 2)


def test_finetune_on_two_ranks_matches_one_process(tmp_path, vocab):
    tests = [a for t in TEST for a in ("--test", t)]
    args = ("finetune", *TRAIN, *tests, "--vocab", vocab, *FINETUNE, "--no-search", "--quiet")
    ok(invoke(*args, "--out", tmp_path / "one.pt"))
    run = torchrun(*args, "--out", tmp_path / "two.pt")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("model -> ") == 1  # rank 0 reports, rank 1 is silent
    one, two = (checkpoint.load(tmp_path / f"{n}.pt", kind="model") for n in ("one", "two"))
    assert two["config"]["world_size"] == 2 and "world_size" not in one["config"]
    assert two["metrics"]["n_train"] == one["metrics"]["n_train"] == 1440  # each rank holds out its 10%
    assert two["metrics"]["test"]["n"] == one["metrics"]["test"]["n"] == 400
    accuracy = [m["metrics"]["test"]["accuracy"] for m in (one, two)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.005, accuracy
    assert accuracy[1] > 0.8
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


def test_the_search_on_two_ranks_trains_the_same_candidates(tmp_path, vocab):
    """Every rank cuts its share into folds; the scores are over both ranks' rows, so both halve
    the candidates alike, and rank 0 writes the merged fold models."""
    run = torchrun("finetune", *TRAIN, "--vocab", vocab, *SEARCH, "--out", tmp_path / "m.pt")
    assert run.returncode == 0, run.stderr[-3000:]
    model = checkpoint.load(tmp_path / "m.pt", kind="model")
    record = model["metrics"]["search"]
    assert model["config"]["world_size"] == 2 and record["folds"] == 2
    assert sorted(len(c["scores"]) for c in record["candidates"]) == [1, 1, 2, 2, 2]
    assert model["metrics"]["valid"]["n"] == 1600  # both folds of both ranks, held out once each
    config = model["config"]
    assert model["model_args"]["hidden"] == ([] if config["layers"] == 0 else [2 * config["hidden"]])


def test_no_vocabulary_is_counted_under_torchrun(tmp_path):
    """One rank's share of the rows is too few to count a vocabulary: --vocab is asked for."""
    run = torchrun("finetune", *TRAIN, "--task", "sentiment", "--device", "cpu", "--out", tmp_path / "m.pt")
    assert run.returncode != 0 and "under torchrun give --vocab" in run.stderr
    assert not (tmp_path / "m.pt").exists()


def test_pretrain_on_two_ranks(tmp_path, vocab):
    args = ("pretrain", *TRAIN, "--vocab", vocab, "--device", "cpu", "--layers", 1, "--hidden", 50)
    # full reconstruction: the losses of sampled ones vary too much from run to run to compare
    args = (*args, "--epochs", 2, "--batch-size", 32, "--sample-rate", 1, "--quiet")
    ok(invoke(*args, "--out", tmp_path / "one.pt"))
    run = torchrun(*args, "--out", tmp_path / "two.pt")
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = (checkpoint.load(tmp_path / f"{n}.pt", kind="pretrained") for n in ("one", "two"))
    assert two["config"]["world_size"] == 2
    assert two["metrics"]["n_reviews"] == one["metrics"]["n_reviews"] == 1600
    losses = [[row["loss"] for row in m["metrics"]["history"]] for m in (one, two)]
    assert losses[1][1] < losses[1][0]  # it learns
    assert losses[1][-1] == pytest.approx(losses[0][-1], rel=0.05), losses
    # the stack fine-tunes like any pre-trained one
    ok(
        invoke(
            "finetune",
            *TRAIN,
            "--init",
            tmp_path / "two.pt",
            *FINETUNE,
            "--quiet",
            "--out",
            tmp_path / "m.pt",
        )
    )


def test_a_failing_rank_stops_every_rank(tmp_path, vocab):
    # every second row has no text: rank 1 reads rows 2, 4, ... and finds nothing it can use
    rows = [
        (i, "great kettle, love it" if i % 2 else "", "positive" if i % 4 == 1 else "negative")
        for i in range(1, 41)
    ]
    data = write_csv(tmp_path / "half.csv", rows)
    started = time.perf_counter()
    run = torchrun("finetune", data, "--vocab", vocab, *FINETUNE, "--out", tmp_path / "m.pt", timeout=120)
    assert run.returncode != 0
    assert time.perf_counter() - started < 60
    assert "no readable reviews" in run.stderr and "share 1 of 2" in run.stderr
    assert not (tmp_path / "m.pt").exists()


def test_commands_that_do_not_train_refuse_torchrun(tmp_path, monkeypatch):
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    result = invoke("build-vocab", *TRAIN, "--out", tmp_path / "v.txt")
    assert result.exit_code == 2 and "runs in one process" in result.output


PIPELINE = """
name = "dist"
seed = 0
device = "cpu"

[build_vocab]
files = {train}
size = 12000
ngrams = 2

[pretrain]
files = {train}
layers = 1
hidden = 50
epochs = 1
batch_size = 32

[finetune]
files = {train}
task = "sentiment"
epochs = 3
batch_size = 32
"""


def test_a_pipeline_runs_and_resumes_under_torchrun(tmp_path):
    pipeline = tmp_path / "dist.toml"
    pipeline.write_text(PIPELINE.format(train=json.dumps(TRAIN)))
    run = torchrun("run", pipeline, "--runs-dir", tmp_path / "runs")
    assert run.returncode == 0, run.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()  # rank 0 made the one folder, every rank used it
    assert run.stdout.count("finetune validation") == 1
    pretrained = run_dir / "pretrained.pt"
    assert checkpoint.load(pretrained)["config"]["world_size"] == 2
    made = pretrained.stat().st_mtime_ns
    # the run stopped during fine-tuning: its model and metrics are not there
    (run_dir / "model.pt").unlink()
    (run_dir / "metrics.json").unlink()
    run = torchrun("run", "--resume", run_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("pretrain: done before, kept") == 1  # rank 0 says it, once
    assert pretrained.stat().st_mtime_ns == made
    model = checkpoint.load(run_dir / "model.pt", kind="model")
    assert model["config"]["world_size"] == 2 and model["metrics"]["valid"]["accuracy"] > 0.7
    assert json.loads((run_dir / "metrics.json").read_text())["finetune"]["best_epoch"] >= 1
