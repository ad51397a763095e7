"""Data-parallel training under torchrun: throughput with 1 and 2 CPU ranks, and how the ranks
average their gradients (textrelu's gather of the touched rows against DistributedDataParallel).

    PYTHONPATH=. python benchmarks/distributed.py [--data ../shared/data] [--device cpu] [--parts 123]

Data: the Amazon multi-domain reviews, all 4 domains pooled: the first 800 positive + 800
negative reviews of each domain for training (6,400), the last 200 + 200 for testing (1,600); a
20,000-term unigram+bigram vocabulary from the training reviews, so that the first layer takes
sparse row gradients (nn/train.py SPARSE_GRAD_MIN_FEATURES).

1. Whole commands, as a user runs them: `finetune` (1 hidden layer of 1000 rectifiers, 5
   epochs, no early stop, total batch 64) and `pretrain` (1 layer of 1000, 2 epochs,
   reconstruction sampling 0.1), each run as
   - one process, one torch thread (OMP_NUM_THREADS=1);
   - one process, two threads;
   - `torchrun --standalone --nproc-per-node 2`, one thread per rank (batch 32 per rank).
   Examples/s = training examples (rows x epochs, x layers for pretrain) over the training
   loop's seconds (the checkpoint's metrics, rank 0's clock; reading and vectorizing left out),
   and the command's wall time beside it. Scaling efficiency = the 2-rank rate over twice the
   rate of one process with one thread. The test accuracy of finetune is printed too: same seed,
   same total batch, one process against two.
2. Gradient averaging alone: two spawned gloo processes (one thread each) take --steps updates
   of the same 20,000 x 1000 first layer on batches of 32 rows each, with
   - textrelu: sparse row gradients, averaged by gathering only each rank's touched rows, RowAdam;
   - DDP: DistributedDataParallel, which needs dense first-layer gradients here (its buckets: the
     whole matrix every step), Adam. DDP takes sparse gradients only from nn.Embedding modules it
     recognizes; over textrelu's layer (F.embedding_bag on its own weight) backward fails with
     "Cannot access storage of SparseTensorImpl", and NCCL has no sparse all-reduce at all;
   - no averaging: each rank updates its own copy (not one model: the floor, which shows what
     the averaging costs beside what the shared cores cost).
   Reported: examples/s (64 per step) and the floats each rank sends per step.
3. Results: the test accuracy of `finetune` with its defaults (1000 units, dropout, early
   stopping; at most 10 epochs) in one process and on 2 ranks, for each of --seeds: the same
   seed and total batch, but not the same rows in a batch, nor the same validation rows.

With --device cuda part 1 also runs `finetune`/`pretrain` on one GPU (`--device cuda`) beside
the CPU ranks (benchmarks/gpu_distributed.sh). The machine this was written on is shared with
other jobs: compare rows of one run, not absolute figures across runs.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from common import DATA, PYTHON, REPO, machine_lines, run_child, table, workdir  # noqa: E402

from textrelu import checkpoint
from textrelu.data.dataset import read_files, to_arrays
from textrelu.data.vocab import Vocabulary
from textrelu.nn.distributed import Group
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import Target
from textrelu.nn.train import Optimizer

DOMAINS = ["books", "dvd", "electronics", "kitchen_&_housewares"]
VOCAB_SIZE = 20_000
HIDDEN = 1000
BATCH = 64  # the total minibatch of every configuration


def split(archive: Path):
    train, test = [], []
    for domain in DOMAINS:
        base = f"{archive}::sorted_data_acl/{domain}/"
        train += [base + "positive.review[:800]", base + "negative.review[:800]"]
        test += [base + "positive.review[-200:]", base + "negative.review[-200:]"]
    return train, test


def command(stage_args: list, ranks: int, threads: int, device: str) -> tuple[list, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if ranks == 1:
        return [PYTHON, "-m", "textrelu", *stage_args], env
    launch = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
    return [*launch, "-m", "textrelu", *stage_args], env


def whole_commands(train, test, vocab: Path, out: Path, quick: bool, device: str) -> list:
    epochs = 2 if quick else 5
    finetune = ["finetune", *train, *[a for t in test for a in ("--test", t)], "--task", "sentiment"]
    finetune += [
        "--vocab",
        vocab,
        "--hidden",
        HIDDEN,
        "--max-epochs",
        epochs,
        "--patience",
        100,
        "--no-search",
    ]
    pretrain = ["pretrain", *train, "--vocab", vocab, "--layers", 1, "--hidden", HIDDEN]
    pretrain += ["--epochs", 1 if quick else 2, "--sample-rate", 0.1]
    setups = [("1 process, 1 thread", 1, 1, "cpu"), ("1 process, 2 threads", 1, 2, "cpu")]
    setups.append(("torchrun, 2 ranks x 1 thread", 2, 1, "cpu"))
    if device == "cuda":
        setups.append(("1 process, 1 GPU", 1, 1, "cuda"))
    rows = []
    for stage, args in (("finetune", finetune), ("pretrain", pretrain)):
        base = None
        for name, ranks, threads, dev in setups:
            path = out / f"{stage}-{ranks}-{threads}-{dev}.pt"
            stage_args = [
                str(a) for a in (*args, "--batch-size", BATCH, "--device", dev, "--quiet", "--out", path)
            ]
            argv, env = command(stage_args, ranks, threads, dev)
            result = run_child(argv, env=env, cwd=REPO)
            m = checkpoint.load(path)["metrics"]
            if stage == "finetune":
                examples = m["n_train"] * len(m["history"])
                accuracy = f"{m['test']['accuracy']:.2%}"
            else:
                examples = m["n_reviews"] * len(m["history"])
                accuracy = "-"
            rate = examples / m["seconds"]
            base = base or rate
            efficiency = f"{rate / (ranks * base):.0%}" if ranks > 1 else "-"
            rows.append(
                [
                    stage,
                    name,
                    f"{rate:,.0f}",
                    f"{rate / base:.2f}x",
                    efficiency,
                    f"{result['wall']:.1f}",
                    accuracy,
                ]
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def sync_worker(rank: int, world: int, init: str, data_file: str, mode: str, steps: int, out: str):
    """One rank of part 2: `steps` timed updates (after 5 untimed) under `mode`."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        from torch.nn.parallel import DistributedDataParallel

        saved = torch.load(data_file, weights_only=True)
        x_all = saved["x"]  # CSR parts of the training rows, this rank takes every world-th
        torch.manual_seed(0)
        net = SparseRectifierNet(saved["n_features"], [HIDDEN], n_outputs=2, head="softmax")
        first = net.layers[0]
        first.sparse_grad = mode != "ddp"
        sparse = [first.weight] if first.sparse_grad else []
        group = Group(rank, world, torch.device("cpu")) if mode == "textrelu" else None
        model = DistributedDataParallel(net) if mode == "ddp" else net
        opt = Optimizer("adam", net.parameters(), 1e-3, sparse_params=sparse, group=group)
        per_rank = BATCH // world
        rows = torch.arange(rank, x_all.shape[0], world)
        touched, started = [], 0.0
        for step in range(steps + 5):
            if step == 5:
                dist.barrier()
                started = time.perf_counter()
            pick = rows[(step * per_rank + torch.arange(per_rank)) % len(rows)]
            x = x_all.index_select(0, pick).to_sparse_csr()
            y = saved["y"][pick]
            out_, _ = model(x)
            loss = torch.nn.functional.cross_entropy(out_, y)
            opt.zero_grad()
            loss.backward()
            if first.sparse_grad:
                touched.append(len(first.weight.grad.coalesce().indices()[0]))
            opt.step()
        dist.barrier()
        seconds = time.perf_counter() - started
        if rank == 0:
            Path(out).write_text(json.dumps({"seconds": seconds, "touched": touched}))
    finally:
        dist.destroy_process_group()


def gradient_sync(train_data, steps: int, tmp: Path) -> list:
    data_file = tmp / "rows.pt"
    x = train_data.X.tocoo()
    torch.save(
        {
            "x": torch.sparse_coo_tensor(
                torch.from_numpy(np.stack([x.row, x.col]).astype(np.int64)),
                torch.from_numpy(x.data),
                x.shape,
                check_invariants=False,
            ).coalesce(),
            "y": train_data.y,
            "n_features": train_data.n_features,
        },
        data_file,
    )
    rows = []
    for mode, name in (
        ("textrelu", "textrelu: gather touched rows, RowAdam"),
        ("ddp", "DDP, dense gradients, Adam"),
        ("none", "no averaging (floor), RowAdam"),
    ):
        out = tmp / f"{mode}.json"
        mp.spawn(
            sync_worker, args=(2, str(tmp / f"init-{mode}"), str(data_file), mode, steps, str(out)), nprocs=2
        )
        result = json.loads(out.read_text())
        rate = steps * BATCH / result["seconds"]
        matrix = train_data.n_features * HIDDEN
        sent = matrix if mode == "ddp" else sum(result["touched"]) / len(result["touched"]) * HIDDEN
        rows.append([name, f"{rate:,.0f}", f"{sent / 1e6:.2f} M" if mode != "none" else "0"])
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def accuracy(train, test, vocab: Path, out: Path, seeds: list) -> list:
    """Part 3: test accuracy of finetune (its defaults, at most 10 epochs) in one process and on 2
    ranks, for each seed: the same seed and total batch."""
    rows, gaps = [], []
    for seed in seeds:
        args = ["finetune", *train, *[a for t in test for a in ("--test", t)], "--task", "sentiment"]
        args += ["--vocab", vocab, "--hidden", HIDDEN, "--max-epochs", 10, "--seed", seed, "--device", "cpu"]
        args += ["--no-search"]
        found = []
        for ranks in (1, 2):
            path = out / f"accuracy-{seed}-{ranks}.pt"
            argv, env = command([str(a) for a in (*args, "--quiet", "--out", path)], ranks, 1, "cpu")
            run_child(argv, env=env, cwd=REPO)
            found.append(checkpoint.load(path)["metrics"]["test"]["accuracy"])
        gaps.append(found[1] - found[0])
        rows.append([seed, f"{found[0]:.2%}", f"{found[1]:.2%}", f"{100 * gaps[-1]:+.2f}"])
        print(rows[-1], file=sys.stderr, flush=True)
    mean = sum(gaps) / len(gaps)
    rows.append(["mean", "", "", f"{100 * mean:+.2f} (largest {100 * max(gaps, key=abs):+.2f})"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="fewer epochs and steps (a smoke run)")
    parser.add_argument("--steps", type=int, default=200, help="timed updates of part 2")
    parser.add_argument("--keep", type=Path, help="keep the vocabulary and models here")
    parser.add_argument("--parts", default="123", help="which parts to run, e.g. 123 (all) or 3")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of part 3")
    args = parser.parse_args()
    archive = args.data / "amazon-mds" / "sorted_data_acl.tar.gz"
    if not archive.is_file():
        sys.exit(f"{archive} not found (expected ../shared/data beside the repository)")
    tmp = workdir("textrelu-distributed-", args.keep)
    train, test = split(archive)
    vocab = tmp / "vocab.txt"
    from textrelu.stages.build_vocab import build_vocab

    build_vocab(train, vocab, size=VOCAB_SIZE, ngrams=2, quiet=True)

    print("# Data-parallel training with torchrun\n")
    print("\n".join(machine_lines()))
    print(
        f"- data: Amazon 4 domains, {len(DOMAINS) * 1600} training and {len(DOMAINS) * 400} test reviews, "
        f"{VOCAB_SIZE:,}-term unigram+bigram vocabulary; total batch {BATCH}\n"
    )
    if "1" in args.parts:
        print("## Whole commands (examples/s of the training loop)\n")
        header = [
            "stage",
            "run",
            "examples/s",
            "vs 1 thread",
            "scaling efficiency",
            "wall s",
            "test accuracy",
        ]
        print(table(header, whole_commands(train, test, vocab, tmp, args.quick, args.device)), flush=True)

    if "2" in args.parts:
        reviews, _ = read_files(train, quiet=True)
        data = to_arrays(reviews, Vocabulary.load(vocab), Target.fit("sentiment", reviews))
        steps = 30 if args.quick else args.steps
        print(f"\n## Gradient averaging, 2 gloo ranks x 1 thread, {steps} updates of batch {BATCH}\n")
        header = ["averaging", "examples/s", "first-layer floats sent per rank per step"]
        print(table(header, gradient_sync(data, steps, tmp)), flush=True)
    if "3" in args.parts:
        print("\n## Test accuracy, 1 process and 2 ranks (finetune defaults, at most 10 epochs)\n")
        header = ["seed", "1 process", "torchrun, 2 ranks", "difference (points)"]
        print(table(header, accuracy(train, test, vocab, tmp, args.seeds)))


if __name__ == "__main__":
    main()
