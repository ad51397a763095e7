"""End-to-end scoring throughput, raw review text to predictions, on the 25,000 IMDB test reviews:
textrelu (3-layer rectifier network) vs a scikit-learn pipeline vs fastText, side by side.

    python benchmarks/score_throughput.py            # full: 25,000 train / 25,000 test reviews
    python benchmarks/score_throughput.py --quick    # smoke run: 2,000 / 2,000
    python benchmarks/score_throughput.py --device cuda   # textrelu fine-tunes and scores on the GPU

What is compared (each tool trained on the IMDB train pos+neg reviews, then timed on the test file):
- textrelu: `build_vocab` (unigrams+bigrams, --vocab-size terms) on the train reviews, `finetune`
  a 3-layer model (1000 rectifier units a layer, 1 epoch: accuracy is not the point, it is
  reported), then `textrelu.stages.score.score(model, [test.jsonl], out, quiet=True)`: read the JSONL,
  tokenize, vectorize, forward pass, write one JSON line of label+probabilities per review. As it
  comes (a worker thread vectorizes the next batches) and with workers=0 (all in one thread).
- scikit-learn: make_pipeline(CountVectorizer(binary=True, ngram_range=(1, 2),
  max_features=--vocab-size), LogisticRegression(max_iter=1000)); timed: read the JSONL
  (json.loads per line) and predict_proba on the raw texts.
- fastText (package fasttext-numpy2, skipped with a note when not installed): supervised,
  wordNgrams=2, on lowercased train texts (shuffled); timed: read the JSONL, lowercase, model.predict(texts).

All tools read the same plain JSONL file (extracted once from the archive with textrelu's reader).
Timed runs are interleaved (one of each tool per round, after an untimed warm-up round), so that
noise from other jobs on the shared machine falls on all of them alike. The table gives the median
reviews/s over --repeats rounds, the ratio to textrelu, and the test accuracy of each model.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import sys
import time
from pathlib import Path

import common


def textrelu_side(files: dict, work: Path, args):
    from textrelu.stages.build_vocab import build_vocab
    from textrelu.stages.finetune import finetune
    from textrelu.stages.score import score

    train, test = str(files["train"][0]), str(files["test"][0])
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
    )
    t2 = time.perf_counter()
    print(
        f"textrelu: vocabulary {len(vocab)} terms in {t1 - t0:.1f} s, 3x{args.hidden} model fine-tuned "
        f"({args.epochs} epoch) in {t2 - t1:.1f} s, valid accuracy {metrics['valid']['accuracy']:.4f}",
        file=sys.stderr,
    )
    out = work / "textrelu.predictions.jsonl"

    def run(workers=None):
        score(work / "imdb.pt", [test], out, workers=workers, device=args.device, quiet=True)

    def accuracy():
        labels = {r["id"]: r["label"] for r in common.read_jsonl(Path(test))}
        preds = common.read_jsonl(out)
        assert len(preds) == len(labels), (len(preds), len(labels))
        return sum(p["label"] == labels[p["id"]] for p in preds) / len(preds)

    return run, accuracy, f"{len(vocab)} terms, 3x{args.hidden} relu, {args.epochs} epoch"


def sklearn_side(files: dict, args):
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
    test_path = files["test"][0]
    result = {}

    def run():
        texts = [r["text"] for r in common.read_jsonl(test_path)]
        result["proba"] = pipe.predict_proba(texts)

    def accuracy():
        labels = [r["label"] for r in common.read_jsonl(test_path)]
        pred = pipe.classes_[result["proba"].argmax(1)]
        return sum(p == y for p, y in zip(pred, labels)) / len(labels)

    return run, accuracy, f"CountVectorizer {args.vocab_size} + LogisticRegression"


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
    test_path = files["test"][0]
    result = {}

    def run():
        texts = [fasttext_text(r["text"]) for r in common.read_jsonl(test_path)]
        result["labels"], _ = model.predict(texts)

    def accuracy():
        labels = [r["label"] for r in common.read_jsonl(test_path)]
        return sum(p[0] == f"__label__{y}" for p, y in zip(result["labels"], labels)) / len(labels)

    return run, accuracy, "supervised, wordNgrams=2, dim 100, 5 epochs"


def main():
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
    parser.add_argument("--vocab-size", type=int, default=5000)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the files here [default: a temp dir]"
    )
    parser.add_argument("--data", type=Path, default=common.DATA, help="the folder that holds imdb/")
    parser.add_argument("--device", default="cpu", help="where textrelu fine-tunes and scores: cpu or cuda")
    args = parser.parse_args()
    limit = args.limit if args.limit is not None else (2000 if args.quick else None)

    import torch

    torch.set_num_threads(torch.get_num_threads())  # the default: all cores; reported in the header

    work = common.workdir("textrelu-bench-score-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "test"), limit=limit, data=args.data)
    n_test = files["test"][1]

    tools = {}
    run, acc, what = textrelu_side(files, work, args)
    tools["textrelu score"] = (run, acc, what)
    tools["textrelu score --workers 0"] = (
        functools.partial(run, workers=0),
        acc,
        what + ", all in one thread",
    )
    run, acc, what = sklearn_side(files, args)
    tools["scikit-learn pipeline"] = (run, acc, what)
    ft = fasttext_side(files, work, args)
    if ft is not None:
        tools["fastText"] = ft

    wall = {name: [] for name in tools}
    cpu = {name: [] for name in tools}
    for rnd in range(args.repeats + 1):  # round 0 is the warm-up, not counted
        for name, (run, _, _) in tools.items():
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            if rnd > 0:
                wall[name].append(w)
                cpu[name].append(c)
            print(f"round {rnd}{' (warm-up)' if rnd == 0 else ''}: {name} {w:.2f} s", file=sys.stderr)

    base = n_test / common.median(wall["textrelu score"])
    rows = []
    for name, (_, accuracy, what) in tools.items():
        rate = n_test / common.median(wall[name])
        rows.append(
            [
                name,
                what,
                f"{rate:,.0f}",
                f"{rate / base:.2f}x",
                common.fmt_times(wall[name]),
                f"{common.median(cpu[name]) / common.median(wall[name]):.2f}",
                f"{accuracy():.2%}",
            ]
        )
    if ft is None:
        rows.append(["fastText", "skipped: not installed (pip install fasttext-numpy2)", "", "", "", "", ""])

    print(f"\n## Scoring throughput, raw text to predictions, IMDB test ({n_test:,} reviews)\n")
    print("\n".join(common.machine_lines(("fasttext-numpy2",))))
    if args.device != "cpu":
        print(
            f"- textrelu on --device {args.device}: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
        )
    print(
        f"- trained on {files['train'][1]:,} IMDB train reviews; timed: {args.repeats} interleaved rounds "
        f"after one warm-up round; each run reads {files['test'][0].name} (JSONL) from disk\n"
    )
    print(
        common.table(
            [
                "tool",
                "model",
                "reviews/s (median)",
                "ratio to textrelu",
                "wall s, median (min-max)",
                "CPU s / wall s (this process)",
                "test accuracy",
            ],
            rows,
        )
    )
    print(
        "\ntextrelu's time includes loading the model file and writing a predictions JSONL (id, source, "
        "row, label, probabilities) plus summary and rejects files; the peers keep their predictions "
        "in memory."
    )


if __name__ == "__main__":
    main()
