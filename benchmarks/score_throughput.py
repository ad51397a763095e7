"""End-to-end scoring throughput, raw review text to predictions, on the 25,000 IMDB test reviews:
textrelu (3-layer rectifier network) vs a scikit-learn pipeline vs fastText, each run as a user runs
it: a fresh process that starts, loads its model, reads the file, predicts and writes predictions.

    python benchmarks/score_throughput.py            # full: 25,000 train / 25,000 test reviews
    python benchmarks/score_throughput.py --quick    # smoke run: 2,000 / 2,000
    python benchmarks/score_throughput.py --device cuda   # textrelu fine-tunes and scores on the GPU

What is compared (each tool trained on the IMDB train pos+neg reviews, then timed on the test file):
- textrelu: `build_vocab` (unigrams+bigrams, --vocab-size terms, 20,000 by default) on the train
  reviews, `finetune` a 3-layer model (1000 rectifier units a layer, 1 epoch: accuracy is not the
  point, it is reported), then `python -m textrelu score MODEL test.jsonl --out OUT --device cpu -q`:
  read the JSONL, tokenize, vectorize, forward pass, write one JSON line of label+probabilities per
  review (plus the rejects and summary files). As it comes (worker threads vectorize the next
  batches), with --workers 0 (all in one thread), and the same command run by the code of
  common.TORCH_SCORE_COMMIT (the torch model; --baseline), exported with git archive.
- scikit-learn: make_pipeline(CountVectorizer(binary=True, ngram_range=(1, 2),
  max_features=--vocab-size), LogisticRegression(max_iter=1000)), saved with pickle by this script;
  timed: a child (`--child sklearn`) imports scikit-learn, loads it, reads the JSONL (json.loads per
  line), predict_proba on the raw texts, writes one JSON line of label+probabilities per review.
- fastText (package fasttext-numpy2, skipped with a note when not installed): supervised,
  wordNgrams=2, on lowercased train texts (shuffled), saved as .bin; timed: a child (`--child
  fasttext`) loads it, reads the JSONL, lowercases, model.predict(texts), writes one JSON line a
  review.

All tools read the same plain JSONL file (extracted once from the archive with textrelu's reader).
Timed runs are interleaved (one of each tool per round, after an untimed warm-up round), so that
noise from other jobs on the shared machine falls on all of them alike. The table gives the median
reviews/s over --repeats rounds, the ratio to textrelu, the child's CPU time over its wall time,
its peak RSS, and the test accuracy of each model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import common


def textrelu_side(files: dict, work: Path, args):
    from textrelu.stages.build_vocab import build_vocab
    from textrelu.stages.finetune import finetune

    train = str(files["train"][0])
    t0 = time.perf_counter()
    vocab = build_vocab([train], work / "imdb.vocab", size=args.vocab_size, ngrams=2, quiet=True)
    t1 = time.perf_counter()
    metrics = finetune(
        [train],
        "sentiment",
        work / "imdb.pt",
        vocab=vocab,
        layers=3,
        hidden=args.hidden,
        epochs=args.epochs,
        device=args.device,
        seed=0,
        quiet=True,
        search=False,  # the settings given, one model
    )
    t2 = time.perf_counter()
    print(
        f"textrelu: vocabulary {len(vocab)} terms in {t1 - t0:.1f} s, 3x{args.hidden} model fine-tuned "
        f"({args.epochs} epoch) in {t2 - t1:.1f} s, valid accuracy {metrics['valid']['accuracy']:.4f}",
        file=sys.stderr,
    )
    return work / "imdb.pt", f"{len(vocab)} terms, 3x{args.hidden} relu, {args.epochs} epoch"


def textrelu_run(model: Path, test: Path, out: Path, device: str, cwd: Path, *extra):
    """A run of `textrelu score` in a fresh process, from the package in `cwd`."""
    argv = ["-m", "textrelu", "score", model, test, "--out", out, "--device", device, "-q", *extra]
    return lambda: common.run_child([common.PYTHON, *map(str, argv)], cwd=cwd)


def labels_accuracy(test: Path, out: Path) -> float:
    """The share of `out`'s JSON lines (in `test`'s order) whose label is the review's."""
    labels = [r["label"] for r in common.read_jsonl(test)]
    preds = common.read_jsonl(out)
    assert len(preds) == len(labels), (len(preds), len(labels))
    return sum(p["label"] == y for p, y in zip(preds, labels)) / len(labels)


def child(tool: str, model: str, test: str, out: str) -> None:
    """What a user of the peer runs: load the model, read the JSONL, predict, write JSON lines."""
    started = time.perf_counter()
    if tool == "sklearn":
        import pickle

        with open(model, "rb") as f:
            pipe = pickle.load(f)  # the pipeline this script fitted and saved
        texts = [r["text"] for r in common.read_jsonl(Path(test))]
        proba = pipe.predict_proba(texts)
        classes = [str(c) for c in pipe.classes_]
        rows = [
            {"label": classes[p.argmax()], "probabilities": dict(zip(classes, map(float, p)))} for p in proba
        ]
    else:
        import fasttext

        ft = fasttext.load_model(model)
        texts = [fasttext_text(r["text"]) for r in common.read_jsonl(Path(test))]
        labels, probs = ft.predict(texts)
        rows = [
            {"label": lab[0].removeprefix("__label__"), "probability": float(p[0])}
            for lab, p in zip(labels, probs)
        ]
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    print(f"{tool}: {len(rows)} reviews in {time.perf_counter() - started:.2f} s", file=sys.stderr)


def child_run(tool: str, model: Path, test: Path, out: Path):
    argv = [common.PYTHON, str(Path(__file__).resolve()), "--child", tool, str(model), str(test), str(out)]
    return lambda: common.run_child(argv)


def sklearn_side(files: dict, work: Path, args) -> tuple[Path, str]:
    import pickle

    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = common.read_jsonl(files["train"][0])
    t0 = time.perf_counter()
    pipe = make_pipeline(
        CountVectorizer(binary=True, ngram_range=(1, 2), max_features=args.vocab_size),
        LogisticRegression(max_iter=1000),
    )
    pipe.fit([r["text"] for r in train], [r["label"] for r in train])
    print(f"scikit-learn: pipeline fitted in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    path = work / "sklearn.pkl"
    with open(path, "wb") as f:
        pickle.dump(pipe, f)
    return path, f"CountVectorizer {args.vocab_size} + LogisticRegression"


def fasttext_text(text: str) -> str:
    return text.lower().replace("\n", " ").replace("\r", " ")  # predict() refuses newlines


def fasttext_side(files: dict, work: Path, args):
    try:
        import fasttext
    except ImportError:
        print("note: fastText skipped: `pip install fasttext-numpy2` to include it", file=sys.stderr)
        return None
    train_txt = work / "fasttext.train.txt"
    lines = [
        f"__label__{r['label']} {fasttext_text(r['text'])}\n" for r in common.read_jsonl(files["train"][0])
    ]
    random.Random(0).shuffle(lines)  # the file is sorted by class; fastText reads its input in order
    with open(train_txt, "w", encoding="utf-8") as f:
        f.writelines(lines)
    t0 = time.perf_counter()
    model = fasttext.train_supervised(
        str(train_txt), wordNgrams=2, epoch=5, thread=min(os.cpu_count() or 1, 16), seed=0, verbose=0
    )
    print(f"fastText: trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    path = work / "fasttext.bin"
    model.save_model(str(path))
    return path, "supervised, wordNgrams=2, dim 100, 5 epochs"


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        return child(*sys.argv[2:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 train and 2,000 test reviews")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="reviews per split (evenly spread sample) [default: all; 2000 with --quick]",
    )
    parser.add_argument("--vocab-size", type=int, default=20000)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--baseline",
        default=common.TORCH_SCORE_COMMIT,
        help="the earlier commit whose `textrelu score` runs beside ('' for none) [default: common.TORCH_SCORE_COMMIT]",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the files here [default: a temp dir]"
    )
    parser.add_argument("--data", type=Path, default=common.DATA, help="the folder that holds imdb/")
    parser.add_argument("--device", default="cpu", help="where textrelu fine-tunes and scores: cpu or cuda")
    args = parser.parse_args()
    limit = args.limit if args.limit is not None else (2000 if args.quick else None)

    work = common.workdir("textrelu-bench-score-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "test"), limit=limit, data=args.data)
    test, n_test = files["test"]
    try:  # a copy of the checkout without its git history (a lent machine) has no earlier commit
        old = common.export_commit(args.baseline, work) if args.baseline else None
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"note: the {args.baseline} row is skipped: git archive failed ({e})", file=sys.stderr)
        old = None

    tools = {}  # name -> (run, output file, model description)
    model, what = textrelu_side(files, work, args)
    sides = [
        ("textrelu score", common.REPO, ()),
        ("textrelu score --workers 0", common.REPO, ("--workers", "0")),
    ]
    if old is not None:
        sides.append((f"textrelu score at {args.baseline} (torch)", old, ()))
    for name, cwd, extra in sides:
        out = work / f"textrelu{len(tools)}.jsonl"
        tools[name] = (textrelu_run(model, test, out, args.device, cwd, *extra), out, what)
    path, what = sklearn_side(files, work, args)
    tools["scikit-learn pipeline"] = (
        child_run("sklearn", path, test, work / "sklearn.jsonl"),
        work / "sklearn.jsonl",
        what,
    )
    ft = fasttext_side(files, work, args)
    if ft is not None:
        out = work / "fasttext.jsonl"
        tools["fastText"] = (child_run("fasttext", ft[0], test, out), out, ft[1])

    runs = {name: [] for name in tools}
    for rnd in range(args.repeats + 1):  # round 0 is the warm-up, not counted
        for name, (run, _, _) in tools.items():
            r = run()
            if rnd > 0:
                runs[name].append(r)
            print(f"round {rnd}{' (warm-up)' if rnd == 0 else ''}: {name} {r['wall']:.2f} s", file=sys.stderr)

    wall = {name: common.median([r["wall"] for r in rs]) for name, rs in runs.items()}
    base = n_test / wall["textrelu score"]
    rows = []
    for name, (_, out, what) in tools.items():
        rate = n_test / wall[name]
        rows.append(
            [
                name,
                what,
                f"{rate:,.0f}",
                f"{rate / base:.2f}x",
                common.fmt_times([r["wall"] for r in runs[name]]),
                f"{common.median([r['cpu'] / r['wall'] for r in runs[name]]):.2f}",
                f"{common.median([r['maxrss_mib'] for r in runs[name]]):,.0f}",
                f"{labels_accuracy(test, out):.2%}",
            ]
        )
    if ft is None:
        rows.append(
            ["fastText", "skipped: not installed (pip install fasttext-numpy2)", "", "", "", "", "", ""]
        )

    print(
        f"\n## Scoring throughput, whole processes, raw text to predictions, IMDB test ({n_test:,} reviews)\n"
    )
    print("\n".join(common.machine_lines(("fasttext-numpy2",))))
    if args.device != "cpu":
        import torch

        print(
            f"- textrelu on --device {args.device}: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
        )
    print(
        f"- trained on {files['train'][1]:,} IMDB train reviews; timed: {args.repeats} interleaved rounds "
        f"after one warm-up round; each run is a fresh process that loads its model, reads {test.name} "
        "(JSONL) and writes one JSON line of predictions per review\n"
    )
    print(
        common.table(
            [
                "tool",
                "model",
                "reviews/s (median)",
                "ratio to textrelu",
                "wall s, median (min-max)",
                "CPU s / wall s",
                "peak RSS MiB",
                "test accuracy",
            ],
            rows,
        )
    )
    print("\ntextrelu also writes a rejects file and a summary; the peers write their predictions only.")


if __name__ == "__main__":
    main()
