"""Pre-training throughput of the first autoencoder layer (1000 rectifier units) on IMDB reviews.

    python benchmarks/pretrain_throughput.py [--sizes 5000 20000 100000] [--quick] [--device cuda]

Compares, in one run, at each vocabulary size:
- textrelu, sparse input + sampled reconstruction (`pretrain_layers(..., sample_rate=R)`), with
  the automatic choice of sparse gradients and row-wise updates (RowAdam) for wide inputs;
- textrelu, sparse input + sampled reconstruction, dense gradients forced (what sparse updates buy);
- textrelu, sparse input + full reconstruction (`sample_rate=1`);
- the same model on dense inputs in plain torch: dense (batch, n_terms) inputs with the same
  salt-and-pepper corruption, Linear -> ReLU -> Linear, sigmoid cross-entropy over all terms, Adam.
Each measures training reviews per second in steady state over a timed share of one epoch
(batch 64, or --batch; one-off costs such as initializing the matrices and the optimizer state left out), the
median of --repeats runs. The vocabulary is the top terms (unigrams+bigrams) of the first --vocab-reviews
IMDB train+unsup reviews; the timed reviews are the first --reviews of them. With --device cuda,
every variant runs on the GPU (batches are built on the CPU and copied, as in training) and the
clock is read after the device has finished its queued work.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import DATA, imdb_vocab_sample, machine_lines  # noqa: E402  (benchmarks/common.py)

from textrelu.data.vectorize import vectorize
from textrelu.nn.autoencoder import salt_and_pepper
from textrelu.nn.batches import ArrayData
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.train import pretrain_layers
from textrelu.settings import Pretraining

BATCH = 64  # reviews per step, the protocol's (--batch)
HIDDEN = 1000


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def textrelu_rate(
    data: ArrayData, sample_rate: float, sparse_grad, seconds: float, device: str, batch: int = BATCH
) -> float:
    """Reviews/s of textrelu's own pre-training loop in steady state, over about `seconds`.

    One-off costs (initializing a 100,000 x 1000 matrix and its decoder, the optimizer's state)
    would dominate a short timed run, so the rate is the difference of two runs:
    (n_long - n_short) / (t_long - t_short).
    """

    def timed(n):
        torch.manual_seed(0)
        net = SparseRectifierNet(data.n_features, (HIDDEN,))
        started = time.perf_counter()
        pretrain_layers(
            net,
            data.subset(slice(0, n)),
            Pretraining(epochs=1, batch_size=batch, sample_rate=sample_rate),
            sparse_grad=sparse_grad,
            device=device,
            quiet=True,
        )
        sync(device)
        return time.perf_counter() - started

    timed(batch)  # warm-up: the first step loads RowAdam's compiled loop (numba), a one-off
    n_short = 2 * batch
    t_short = timed(n_short)
    probe = timed(4 * batch)
    rate = 2 * batch / max(probe - t_short, 1e-3)
    n_long = int(min(len(data), max(6 * batch, n_short + rate * seconds)))
    return (n_long - n_short) / max(timed(n_long) - t_short, 1e-3)


def dense_rate(
    data: ArrayData, seconds: float, device: str, batch: int = BATCH, noise: float = 0.25
) -> float:
    """Reviews/s of the same autoencoder on dense inputs in plain torch."""
    torch.manual_seed(0)
    n_in = data.n_features
    encoder, decoder = torch.nn.Linear(n_in, HIDDEN).to(device), torch.nn.Linear(HIDDEN, n_in).to(device)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    seen, started = 0, None
    for x, _ in data.batches(batch, shuffle=True, generator=torch.Generator().manual_seed(0), device=device):
        noisy = salt_and_pepper(x, noise).to_dense()
        h = F.relu(encoder(noisy))
        loss = F.binary_cross_entropy_with_logits(decoder(h), x.to_dense(), reduction="sum") / len(h)
        loss = loss + 1e-4 * h.abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if started is None:  # the first step creates Adam's state: a one-off, not timed
            sync(device)
            started = time.perf_counter()
            continue
        seen += len(h)
        if seen % (16 * batch) == 0:
            sync(device)  # so that the clock below reads finished work, not a queue of launches
        if time.perf_counter() - started > seconds:
            break
    sync(device)
    return seen / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--vocab-reviews", type=int, default=20000)
    parser.add_argument("--reviews", type=int, default=8000)
    parser.add_argument("--sample-rate", type=float, default=0.01)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed training per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sample, one repeat: a smoke run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where every variant runs")
    parser.add_argument("--batch", type=int, default=BATCH, help="reviews per step (the protocol's 64)")
    args = parser.parse_args()
    if args.quick:
        args.vocab_reviews, args.reviews, args.seconds, args.repeats = 2000, 1000, 2.0, 1

    reviews, vocabulary = imdb_vocab_sample(args.data, args.vocab_reviews, max(args.sizes))
    timed_reviews = reviews[: args.reviews]

    print("\n".join(machine_lines()))
    print(
        f"command: python benchmarks/pretrain_throughput.py --sizes {' '.join(map(str, args.sizes))} "
        f"--vocab-reviews {args.vocab_reviews} --reviews {args.reviews} --sample-rate {args.sample_rate} "
        f"--seconds {args.seconds} --repeats {args.repeats} --device {args.device} --batch {args.batch}"
    )
    if args.device.startswith("cuda"):
        print(
            f"- device: {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}, "
            f"CUDA {torch.version.cuda}"
        )
    print(
        f"\nreviews/s, one layer of {HIDDEN} rectifier units, batch {args.batch}, median of {args.repeats}\n"
    )
    print(
        f"| terms | terms/review | sparse + sampled (R={args.sample_rate}) | same, dense gradients | sparse + full | dense torch | "
        "sampled / dense | full / dense |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        data = ArrayData(vectorize(timed_reviews, vocabulary(size)))
        per_review = data.X.nnz / len(data)
        runs = {"sampled": [], "sampled_dense_grad": [], "full": [], "dense": []}
        for _ in range(args.repeats):
            setting = dict(seconds=args.seconds, device=args.device, batch=args.batch)
            runs["sampled"].append(textrelu_rate(data, args.sample_rate, None, **setting))
            runs["sampled_dense_grad"].append(textrelu_rate(data, args.sample_rate, False, **setting))
            runs["full"].append(textrelu_rate(data, 1.0, None, **setting))
            runs["dense"].append(dense_rate(data, **setting))
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(
            f"| {size:,} | {per_review:.0f} | {med['sampled']:.0f} | {med['sampled_dense_grad']:.0f} | "
            f"{med['full']:.0f} | {med['dense']:.0f} | {med['sampled'] / med['dense']:.1f}x | "
            f"{med['full'] / med['dense']:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
