"""Peak memory of finetune's search against the estimate that decides whether a candidate may
train (stages/search.py `too_big`, nn/memory.py): the estimate must not fall below what the run
really takes, or a candidate it lets through is killed by the system instead of left out.

    python benchmarks/search_memory.py                     # 200,000 terms x 1000 units, 5 folds
    python benchmarks/search_memory.py --terms 20000 --hidden 200 --rows 1000   # smoke run

The reviews are synthetic (words drawn from a Zipf law over 400,000 made-up words, 150 a
review), so that the vocabulary reaches --terms whatever data is at hand; the network's size,
not the data, is what is measured. Each row is `textrelu finetune` in a fresh child process
(common.run_child: its own peak RSS), with the width and depth given and 2 epochs a fold:

- "floor": one hidden unit, no search: the interpreter, torch, the data and the vocabulary;
- "no search": one model (`--no-search`): the estimate counts 4 training copies + 2;
- "search, NB weights" and "search, plain inputs": 5 fold models averaged into one network
  (nn.model.merge), the estimate 4 training copies + 2 per fold.

The estimate is the search's own (`nn.memory.search_bytes`, which `stages/search.py` checks each
candidate with).

The table gives the peak RSS, the peak above the floor and the estimate; the last column is
their ratio, which must stay below 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import common
import numpy as np

from textrelu.nn import memory


def write_reviews(path: Path, n: int, seed: int = 0) -> None:
    """n JSON Lines reviews of 150 Zipf-drawn words; the positive ones share a few common words."""
    rng = np.random.default_rng(seed)
    words = 400_000
    p = 1.0 / np.arange(1, words + 1) ** 0.8
    p /= p.sum()
    with open(path, "w") as f:
        for i in range(n):
            tokens = rng.choice(words, 150, p=p)
            if i % 2:
                tokens[:5] = rng.integers(0, 50, 5)
            text = " ".join(f"w{t}" for t in tokens)
            f.write(json.dumps({"text": text, "label": "positive" if i % 2 else "negative"}) + "\n")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--terms", type=int, default=200_000)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="keep the work files in this folder")
    args = parser.parse_args()

    work = common.workdir("search_memory", args.keep)
    reviews = work / "reviews.jsonl"
    write_reviews(reviews, args.rows)
    base = [sys.executable, "-m", "textrelu", "finetune", str(reviews), "--task", "sentiment"]
    base += ["--size", str(args.terms), "--ngrams", "1", "--min-df", "1", "--size-per-review", "1000"]
    base += ["--layers", "1", "--max-epochs", "2", "--device", "cpu", "--quiet", "--out", str(work / "m.pt")]
    # one candidate (the search's other settings given): what is measured is its folds
    fixed = ["--input-dropout", "0.2", "--label-smoothing", "0"]
    runs = {
        "floor": (["--hidden", "1", "--no-search"], None),
        "no search": ([*fixed, "--hidden", str(args.hidden), "--no-search", "--nb-weights"], 1),
        "search, NB weights": (
            [*fixed, "--hidden", str(args.hidden), "--nb-weights", "--folds", str(args.folds)],
            args.folds,
        ),
        "search, plain inputs": (
            [*fixed, "--hidden", str(args.hidden), "--no-nb-weights", "--folds", str(args.folds)],
            args.folds,
        ),
    }
    weights = memory.n_weights(args.terms, [args.hidden], 2)
    rows, floor = [], None
    for name, (options, folds) in runs.items():
        peak = common.run_child([*base, *options])["maxrss_mib"]
        if folds is None:
            floor = peak
            rows.append([name, f"{peak:,.0f}", "", "", ""])
            continue
        estimate = memory.search_bytes(weights, folds) / 2**20  # the search's own estimate
        above = peak - floor
        rows.append([name, f"{peak:,.0f}", f"{above:,.0f}", f"{estimate:,.0f}", f"{above / estimate:.2f}"])
    print("\n".join(common.machine_lines()))
    print(
        f"- network: {args.terms:,} terms x [{args.hidden}] x 2 outputs, {args.rows:,} reviews, {args.folds} folds"
    )
    print()
    header = ["run", "peak RSS MiB", "above the floor MiB", "estimate MiB", "above floor / estimate"]
    print(common.table(header, rows))


if __name__ == "__main__":
    main()
