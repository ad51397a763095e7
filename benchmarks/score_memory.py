"""Peak memory of `textrelu score` (the command line, in a fresh child process) on a file and on a file
ten times larger: streaming scoring should keep memory flat (ratio within 1.10).

    python benchmarks/score_memory.py            # full: 25,000 IMDB test reviews vs the same 10x (250,000)
    python benchmarks/score_memory.py --quick    # smoke run: 2,000 vs 20,000

A small model is fine-tuned first, in this process (vocabulary of --vocab-size unigrams+bigrams and
one layer of --hidden rectifier units, 1 epoch, on --train-reviews IMDB train reviews): its size
does not grow with the input. The inputs are JSON Lines: `base.jsonl` (--base IMDB test reviews)
and `x10.jsonl` (the same reviews written 10 times over); a third, `tiny.jsonl` (10 reviews),
gives the floor that any run pays (interpreter, torch, model). Each child runs

    python -m textrelu score MODEL FILE --out OUT --device cpu --quiet

and its peak RSS is ru_maxrss from os.wait4 (that child alone). Runs are interleaved
(tiny, base, x10, tiny, ...) --repeats times; the table gives medians, the ratio x10/base of the
peak RSS and of the growth above the tiny run, and the scoring time (the child's wall time) with
reviews/s, to see that time grows linearly while memory does not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import common


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 vs 20,000 reviews, 2 repeats")
    parser.add_argument(
        "--base", type=int, default=None, help="reviews in the base file [default 25000; 2000 with --quick]"
    )
    parser.add_argument("--train-reviews", type=int, default=3000)
    parser.add_argument("--vocab-size", type=int, default=5000)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=None, help="[default 3; 2 with --quick]")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the files here [default: a temp dir]"
    )
    args = parser.parse_args()
    # more than score.PLAIN_MAX_REVIEWS (1,000), so that base and x10 both take the compiled loops
    n_base = args.base or (2000 if args.quick else 25000)
    repeats = args.repeats or (2 if args.quick else 3)

    from textrelu.stages.build_vocab import build_vocab
    from textrelu.stages.finetune import finetune

    work = common.workdir("textrelu-bench-memory-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "test"))
    train = common.read_jsonl(files["train"][0])
    test = common.read_jsonl(files["test"][0])

    def spread(items, n):
        step = len(items) / n
        return [items[int(i * step)] for i in range(min(n, len(items)))]

    small_train = work / "small_train.jsonl"
    common.write_jsonl(small_train, spread(train, args.train_reviews))
    t0 = time.perf_counter()
    vocab = build_vocab([str(small_train)], work / "small.vocab", size=args.vocab_size, ngrams=2, quiet=True)
    metrics = finetune(
        [str(small_train)],
        "sentiment",
        work / "small.pt",
        vocab=vocab,
        layers=1,
        hidden=args.hidden,
        epochs=1,
        device="cpu",
        quiet=True,
        search=False,  # the settings given, one model
    )
    print(
        f"small model: {len(vocab)} terms, 1x{args.hidden} relu, valid accuracy "
        f"{metrics['valid']['accuracy']:.4f}, built in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )

    base_items = spread(test, n_base)
    inputs = {
        "tiny": (work / "tiny.jsonl", 10),
        "base": (work / "base.jsonl", len(base_items)),
        "x10": (work / "x10.jsonl", 10 * len(base_items)),
    }
    common.write_jsonl(inputs["tiny"][0], base_items[:10])
    common.write_jsonl(inputs["base"][0], base_items)
    common.write_jsonl(inputs["x10"][0], base_items, copies=10)
    del train, test

    runs = {k: [] for k in inputs}
    for rep in range(repeats):
        for name, (path, n) in inputs.items():
            out = work / f"{name}.predictions.jsonl"
            r = common.run_child(
                [
                    common.PYTHON,
                    "-m",
                    "textrelu",
                    "score",
                    str(work / "small.pt"),
                    str(path),
                    "--out",
                    str(out),
                    "--device",
                    "cpu",
                    "--quiet",
                ],
                cwd=common.REPO,  # this checkout's textrelu, not an installed one
            )
            with open(out, "rb") as f:
                lines = sum(1 for _ in f)
            if lines != n:
                sys.exit(f"{out}: {lines} predictions for {n} reviews")
            runs[name].append(r)
            print(
                f"repeat {rep + 1}: {name} ({n} reviews) peak RSS {r['maxrss_mib']:.0f} MiB, "
                f"{r['wall']:.1f} s",
                file=sys.stderr,
            )

    rss = {k: common.median([r["maxrss_mib"] for r in v]) for k, v in runs.items()}
    wall = {k: common.median([r["wall"] for r in v]) for k, v in runs.items()}
    rows = []
    for name, (path, n) in inputs.items():
        rows.append(
            [
                f"{name} ({path.name})",
                f"{n:,}",
                f"{path.stat().st_size / 2**20:,.0f}",
                f"{rss[name]:,.0f}",
                f"{rss[name] - rss['tiny']:,.0f}",
                common.fmt_times([r["wall"] for r in runs[name]]),
                f"{n / wall[name]:,.0f}",
                f"{n / (wall[name] - wall['tiny']):,.0f}" if name != "tiny" else "",
            ]
        )
    ratio = rss["x10"] / rss["base"]
    growth = (rss["x10"] - rss["tiny"]) / max(rss["base"] - rss["tiny"], 1e-9)
    time_ratio = (wall["x10"] - wall["tiny"]) / (wall["base"] - wall["tiny"])

    print(f"\n## Peak memory of `textrelu score`: {n_base:,} reviews vs the same 10x ({10 * n_base:,})\n")
    print("\n".join(common.machine_lines()))
    print(
        f"- model: {len(vocab)} terms (unigrams+bigrams), 1x{args.hidden} relu, fine-tuned 1 epoch on "
        f"{args.train_reviews:,} IMDB train reviews; inputs from the IMDB test reviews, JSONL"
    )
    print(
        f"- each run: `python -m textrelu score MODEL FILE --out OUT --device cpu --quiet` in a fresh "
        f"child process; {repeats} interleaved repeats, medians\n"
    )
    print(
        common.table(
            [
                "input",
                "reviews",
                "file MiB",
                "peak RSS MiB (median)",
                "above the tiny run MiB",
                "child wall s, median (min-max)",
                "reviews/s (whole child)",
                "reviews/s (time above the tiny run)",
            ],
            rows,
        )
    )
    verdict = "within" if ratio <= 1.10 else "NOT within"
    print(
        f"\n- peak RSS ratio x10 / base: **{ratio:.3f}** ({verdict} 1.10); growth above the tiny run, "
        f"x10 / base: {growth:.2f}"
    )
    print(f"- time ratio x10 / base (minus the tiny run's start-up): {time_ratio:.2f} (10 = linear)")


if __name__ == "__main__":
    main()
