"""The candidates for the sparse first layer, side by side: one training step of x @ W (forward,
backward and Adam update) on batches of real IMDB reviews.

    python benchmarks/first_layer.py [--sizes 20000 100000] [--steps 20] [--quick]

W is (n_terms, 1000); a step is forward (x @ W, then a rectifier and a fixed random linear
readout, so that the gradient is dense in the hidden units as in training), backward, and the
optimizer's update of W. The candidates:
- `csr mm + Adam`: torch.sparse.mm on the CSR batch, dense gradient, torch.optim.Adam;
- `coo mm + Adam`: the same with the batch as a COO tensor;
- `embedding_bag + Adam`: embedding_bag summing the batch's rows of W, dense gradient;
- `embedding_bag sparse + SparseAdam`: sparse gradient with one row per non-zero, torch's SparseAdam;
- `custom autograd + RowAdam`: embedding_bag forward, a backward written here that sums the
  gradient into one row per distinct term, textrelu's RowAdam;
- `textrelu (embedding of distinct rows + embedding_bag) + RowAdam`: what `model.sparse_affine`
  does with sparse gradients (textrelu's choice).
Steps are timed round-robin (one step of each candidate per round, after two warm-up rounds), and
the table gives the median milliseconds per step and the ratio to textrelu's.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import DATA, imdb_vocab_sample, machine_lines  # noqa: E402  (benchmarks/common.py)

from textrelu.data.vectorize import vectorize
from textrelu.nn.batches import csr_to_torch
from textrelu.nn.model import sparse_affine
from textrelu.nn.rowadam import RowAdam

HIDDEN = 1000
BATCH = 64


class DistinctRowsGrad(torch.autograd.Function):
    """x @ W by embedding_bag; W's gradient as a sparse tensor of one row per distinct term."""

    @staticmethod
    def forward(ctx, weight, col, offsets, values, row):
        ctx.save_for_backward(col, values, row)
        ctx.shape = weight.shape
        return F.embedding_bag(col, weight, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx, grad_out):
        col, values, row = ctx.saved_tensors
        rows, position = col.unique(return_inverse=True)
        grad_rows = torch.zeros(len(rows), grad_out.shape[1])
        grad_rows.index_add_(0, position, grad_out.index_select(0, row) * values.unsqueeze(1))
        return (
            torch.sparse_coo_tensor(rows.unsqueeze(0), grad_rows, ctx.shape, check_invariants=False),
            None,
            None,
            None,
            None,
        )


def candidates(n_terms: int):
    """name -> (weight, optimizer, x_of(csr batch) -> model input, forward(weight, input))."""

    def make(optimizer_cls):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.empty(n_terms, HIDDEN).uniform_(-0.01, 0.01))
        return w, optimizer_cls([w], lr=1e-3)

    def bag_input(x):
        return x.col_indices(), x.crow_indices()[:-1], x.values()

    def row_of(x):
        crow = x.crow_indices()
        return torch.repeat_interleave(torch.arange(len(crow) - 1), crow.diff())

    return {
        "csr mm + Adam": (*make(torch.optim.Adam), lambda x: x, lambda w, x: torch.sparse.mm(x, w)),
        "coo mm + Adam": (
            *make(torch.optim.Adam),
            lambda x: x.to_sparse_coo(),
            lambda w, x: torch.sparse.mm(x, w),
        ),
        "embedding_bag + Adam": (
            *make(torch.optim.Adam),
            bag_input,
            lambda w, x: F.embedding_bag(x[0], w, x[1], mode="sum", per_sample_weights=x[2]),
        ),
        "embedding_bag sparse + SparseAdam": (
            *make(torch.optim.SparseAdam),
            bag_input,
            lambda w, x: F.embedding_bag(x[0], w, x[1], mode="sum", per_sample_weights=x[2], sparse=True),
        ),
        "custom autograd + RowAdam": (
            *make(RowAdam),
            lambda x: (*bag_input(x), row_of(x)),
            lambda w, x: DistinctRowsGrad.apply(w, *x),
        ),
        "textrelu (distinct rows) + RowAdam": (
            *make(RowAdam),
            lambda x: x,
            lambda w, x: sparse_affine(x, w, torch.zeros(HIDDEN), True),
        ),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--vocab-reviews", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each candidate")
    parser.add_argument(
        "--quick", action="store_true", help="small vocabulary sample and 3 steps: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        args.vocab_reviews, args.steps = 2000, 3

    reviews, vocabulary = imdb_vocab_sample(args.data, args.vocab_reviews, max(args.sizes))
    readout = torch.randn(HIDDEN, generator=torch.Generator().manual_seed(1))

    print("\n".join(machine_lines()))
    print(
        f"\nms per training step of the first layer ({HIDDEN} units, batch {BATCH}), median of "
        f"{args.steps} steps\n"
    )
    names = list(candidates(10))
    print("| terms | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for size in args.sizes:
        X = vectorize(reviews[: BATCH * (args.steps + 2)], vocabulary(size))
        batches = [csr_to_torch(X[i : i + BATCH]) for i in range(0, X.shape[0], BATCH)]
        cands = candidates(size)
        times = {name: [] for name in cands}
        for i, x in enumerate(batches):
            for name, (w, opt, x_of, forward) in cands.items():
                started = time.perf_counter()
                inp = x_of(x)
                loss = (F.relu(forward(w, inp)) @ readout).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i >= 2:  # two warm-up rounds: Adam's state, the compiled loop
                    times[name].append(time.perf_counter() - started)
        ref = statistics.median(times[names[-1]])
        cells = [
            f"{statistics.median(times[n]) * 1000:.1f} ({statistics.median(times[n]) / ref:.1f}x)"
            for n in names
        ]
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)
        # The same function, trained the same way: dense Adam's three candidates agree with each
        # other, and lazy Adam's three (which leave rows absent from a batch alone) with each other.
        w = {n: cands[n][0].detach() for n in names}
        dense = max(float((w[n] - w[names[0]]).abs().max()) for n in names[1:3])
        lazy = max(float((w[n] - w[names[-1]]).abs().max()) for n in names[3:5])
        print(
            f"(weights after the same steps, largest difference: {dense:.1g} among the dense-Adam "
            f"candidates, {lazy:.1g} among the lazy-Adam ones)",
            flush=True,
        )


if __name__ == "__main__":
    main()
