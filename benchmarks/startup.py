"""Start-up: wall time and peak RSS of `textrelu --help` and of `textrelu score` on a 10-row file,
this code against an earlier commit (the torch path), each command in a fresh child process.

    python benchmarks/startup.py                       # trains a small model (5,000 terms, 1 x 200)
    python benchmarks/startup.py --models a.pt b.pt    # score with these model files instead
    python benchmarks/startup.py --quick               # 3 repeats, no crossover table

The earlier commit's `textrelu` package (--baseline, default the commit before the torch-free
scoring path) is exported with `git archive` into the work folder and run from there, so both sides
run the same commands on the same files in the same run. Runs are interleaved (new, old, new, ...)
--repeats times after one untimed warm-up round (which also fills each side's numba cache); the
tables give medians and the ratio old / new. Peak RSS is ru_maxrss from os.wait4 on the child
alone (common.run_child). A second table gives the time of scoring files of a few sizes with and
without the compiled loops (numba), the crossover behind score.PLAIN_MAX_REVIEWS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import common

FRESH_CHILD = (
    "import sys\n"
    "from textrelu.stages import score\n"
    "score.PLAIN_MAX_REVIEWS = int(sys.argv[1])\n"
    "from textrelu.cli import app\n"
    "app(sys.argv[2:], prog_name='textrelu')\n"
)


def small_model(work: Path, files: dict) -> Path:
    """A 5,000-term (unigrams+bigrams) 1 x 200 model fine-tuned 1 epoch on 3,000 IMDB train
    reviews: the model of benchmarks/score_memory.py."""
    from textrelu.stages.build_vocab import build_vocab
    from textrelu.stages.finetune import finetune

    train = common.read_jsonl(files["train"][0])
    step = len(train) / 3000
    small_train = work / "small_train.jsonl"
    common.write_jsonl(small_train, [train[int(i * step)] for i in range(3000)])
    vocab = build_vocab([str(small_train)], work / "small.vocab", size=5000, ngrams=2, quiet=True)
    finetune(
        [str(small_train)],
        "sentiment",
        work / "small.pt",
        vocab=vocab,
        layers=1,
        hidden=200,
        epochs=1,
        device="cpu",
        quiet=True,
        search=False,  # the settings given, one model
    )
    return work / "small.pt"


def model_name(path: Path) -> str:
    import numpy as np

    from textrelu import torchfile

    payload = torchfile.read(path)
    args = payload["model_args"]
    hidden = "x".join(str(h) for h in args["hidden"]) or "no hidden layer"
    first = payload["state_dict"]["layers.0.weight"] if args["hidden"] else np.zeros(0)
    return f"{args['n_features']:,} terms, {len(args['hidden'])} x {hidden}, {first.nbytes / 2**20:.0f} MiB first layer"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=Path, nargs="*", default=None, help="model files [default: train one]"
    )
    parser.add_argument(
        "--baseline",
        default=common.TORCH_SCORE_COMMIT,
        help="the commit to compare with [default: common.TORCH_SCORE_COMMIT]",
    )
    parser.add_argument("--repeats", type=int, default=None, help="[default 7; 3 with --quick]")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the files here [default: a temp dir]"
    )
    parser.add_argument("--data", type=Path, default=common.DATA, help="the folder that holds imdb/")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)

    work = common.workdir("textrelu-bench-startup-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "test"), data=args.data)
    test = common.read_jsonl(files["test"][0])
    step = len(test) / 3000
    spread = [test[int(i * step)] for i in range(3000)]
    sizes = {10: work / "rows10.jsonl"} | (
        {}
        if args.quick
        else {300: work / "rows300.jsonl", 1000: work / "rows1000.jsonl", 3000: work / "rows3000.jsonl"}
    )
    for n, path in sizes.items():
        common.write_jsonl(path, spread[:n])
    models = args.models or [small_model(work, files)]
    old = common.export_commit(args.baseline, work)
    sides = {"new": common.REPO, f"old ({args.baseline})": old}

    def textrelu(cwd: Path, *argv) -> dict:
        return common.run_child([common.PYTHON, "-m", "textrelu", *map(str, argv)], cwd=cwd)

    commands = {"textrelu --help": lambda cwd: textrelu(cwd, "--help")}
    for i, model in enumerate(models):
        out = work / f"out{i}.jsonl"
        commands[f"textrelu score (10 rows), model {i + 1}"] = lambda cwd, m=model, o=out: textrelu(
            cwd, "score", m, sizes[10], "--out", o, "--device", "cpu", "-q"
        )
    runs = {(c, s): [] for c in commands for s in sides}
    for rnd in range(repeats + 1):  # round 0 warms up
        for command, run in commands.items():
            for side, cwd in sides.items():
                r = run(cwd)
                if rnd > 0:
                    runs[command, side].append(r)
        print(f"round {rnd}{' (warm-up)' if rnd == 0 else ''} done", file=sys.stderr)

    rows = []
    for command in commands:
        (new_side, old_side) = sides
        new, old_runs = runs[command, new_side], runs[command, old_side]
        wall_new, wall_old = (common.median([r["wall"] for r in x]) for x in (new, old_runs))
        rss_new, rss_old = (common.median([r["maxrss_mib"] for r in x]) for x in (new, old_runs))
        rows.append(
            [
                command,
                common.fmt_times([r["wall"] for r in new]),
                common.fmt_times([r["wall"] for r in old_runs]),
                f"{wall_old / wall_new:.1f}x",
                f"{rss_new:,.0f}",
                f"{rss_old:,.0f}",
                f"{rss_old / rss_new:.1f}x",
            ]
        )

    print(f"\n## Start-up: this code against {args.baseline}, fresh processes\n")
    print("\n".join(common.machine_lines()))
    for i, model in enumerate(models):
        print(f"- model {i + 1}: {model.name}, {model_name(model)}")
    print(f"- {repeats} interleaved rounds after a warm-up round; medians; 10 IMDB test reviews (JSONL)\n")
    print(
        common.table(
            [
                "command",
                "wall s, new, median (min-max)",
                "wall s, old",
                "old / new",
                "peak RSS MiB, new",
                "peak RSS MiB, old",
                "old / new",
            ],
            rows,
        )
    )
    if args.quick:
        return

    # the crossover: files of a few sizes, with and without the compiled loops, the last model
    model = models[-1]
    timing = {(n, way): [] for n in sizes for way in ("plain", "compiled")}
    for _ in range(max(3, repeats // 2)):
        for n, path in sizes.items():
            for way, limit in (("plain", 10**9), ("compiled", 0)):
                argv = ["score", model, path, "--out", work / "x.jsonl", "--device", "cpu", "-q"]
                r = common.run_child(
                    [common.PYTHON, "-c", FRESH_CHILD, str(limit), *map(str, argv)], cwd=common.REPO
                )
                timing[n, way].append(r["wall"])
    rows = []
    for n in sizes:
        plain, compiled = (common.median(timing[n, w]) for w in ("plain", "compiled"))
        rows.append(
            [f"{n:,}", f"{plain:.2f}", f"{compiled:.2f}", "plain" if plain <= compiled else "compiled"]
        )
    print(
        f"\n### Scoring without and with the compiled loops (model: {model.name}; medians, fresh processes)\n"
    )
    print(common.table(["reviews", "plain s", "compiled s", "faster"], rows))
    print(
        f"\n- score.PLAIN_MAX_REVIEWS: inputs up to that many reviews go plain; measured {time.strftime('%H:%M')}"
    )


if __name__ == "__main__":
    main()
