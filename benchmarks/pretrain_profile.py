"""Where a pre-training step's time goes: torch.profiler over textrelu's own loop.

    python benchmarks/pretrain_profile.py [--terms 20000] [--steps 60] [--sample-rate 0.01] [--device cpu]

One layer of 1000 rectifier units on IMDB reviews (the setting of pretrain_throughput.py): the
vocabulary is the top --terms unigrams+bigrams of the first --vocab-reviews IMDB train+unsup
reviews, and --steps batches of 64 are profiled after --warmup untimed ones. Prints the share of the
profiled wall time spent in the optimizer steps and in the backward pass, and the operators with the
most self time (one thread: run it with OMP_NUM_THREADS=1 to match the throughput table). The
compiled loops of the sampled decoder and the first layer show as their autograd functions
(_DecodeEntries, _SparseRowsAffine and their ...Backward).
"""

import argparse
import time
from pathlib import Path

import torch
from common import DATA, imdb_vocab_sample, machine_lines  # noqa: E402  (benchmarks/common.py)
from torch.profiler import ProfilerActivity, profile

from textrelu.data.vectorize import vectorize
from textrelu.nn.batches import ArrayData
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.train import pretrain_layers
from textrelu.settings import Pretraining

BATCH = 64


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--terms", type=int, default=20000)
    parser.add_argument("--vocab-reviews", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sample-rate", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rows", type=int, default=12, help="operators listed")
    args = parser.parse_args()

    reviews, vocabulary = imdb_vocab_sample(args.data, args.vocab_reviews, args.terms)
    vocab = vocabulary(args.terms)
    # the warm-up and the profiled run each start from the first review
    data = ArrayData(vectorize(reviews[: max(args.warmup, args.steps) * BATCH], vocab))

    def run(rows):
        torch.manual_seed(0)
        net = SparseRectifierNet(data.n_features, (1000,))
        pretrain_layers(
            net,
            data.subset(rows),
            Pretraining(epochs=1, batch_size=BATCH, sample_rate=args.sample_rate),
            device=args.device,
            quiet=True,
        )

    run(slice(0, args.warmup * BATCH))  # loads the compiled loops; not profiled
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(slice(0, args.steps * BATCH))
    wall = time.perf_counter() - started
    events = prof.key_averages()

    def share(name):  # inclusive time of the events named `name` (or name*), over the profiled wall time
        match = (lambda k: k.startswith(name[:-1])) if name.endswith("*") else (lambda k: k == name)
        return sum(e.cpu_time_total for e in events if match(e.key)) / 1e6 / wall

    print("\n".join(machine_lines()))
    print(
        f"\n{args.steps} steps of {BATCH} reviews, {len(vocab):,} terms, R = {args.sample_rate}, "
        f"{args.device}: {wall:.1f} s profiled ({args.steps * BATCH / wall:.0f} reviews/s, the "
        f"profiler's own cost and the model's initialization included)\n"
    )
    print("| stage | share of the profiled time |\n|---|---|")
    for label, key in (
        (
            "optimizer steps: RowAdam (the touched rows of the first layer and the decoder)",
            "Optimizer.step#RowAdam.step",
        ),
        ("optimizer steps: Adam (the biases)", "Optimizer.step#Adam.step"),
        ("backward pass, all of it", "autograd::engine::evaluate_function*"),
        ("sampled decoder, forward (compiled loop + block product)", "_DecodeEntries"),
        ("sampled decoder, backward", "_DecodeEntriesBackward"),
        ("first layer, forward (compiled loop)", "_SparseRowsAffine"),
        ("first layer, backward", "_SparseRowsAffineBackward"),
    ):
        print(f"| {label} | {share(key):.0%} |")
    print(f"\ntop {args.rows} operators by self time:\n")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
