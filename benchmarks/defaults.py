"""textrelu with its defaults against CV-tuned linear models (and autotuned fastText) on the rows of
issue 22, side by side on the same splits: do the defaults win on sets nobody tuned them for?

    python benchmarks/defaults.py [--sets amazon-titles imdb-sentences ...] [--fasttext-seconds 60]
                                  [--splits 1]

Rows (--sets; all by default):
- amazon-4: the 4 Amazon domains, per domain the first 800 + 800 reviews to train, the last
  200 + 200 to test (the paper's split); the row is the mean over domains.
- amazon-titles: the same split, the text being each review's <title> only (short texts).
- imdb: IMDB 25,000 / 25,000.
- imdb-sentences: the first sentence of each IMDB review, with its label (short texts).
- imdb-1k-labels: 1,000 of the IMDB training reviews labeled (evenly spread), the other 24,000
  and the 50,000 unlabeled ones for pre-training, tested on the 25,000 (where pre-training
  should pay: far more text than labels).
- amazon-stars, imdb-ratings: the star ratings of the same reviews (RMSE; ratings tasks).
Columns: textrelu with defaults (finetune with no option but the task: it counts its own
vocabulary and searches its settings), textrelu with pre-training defaults (pretrain with no
option on the training texts and, for the IMDB rows, the 50,000 unlabeled reviews (first
sentences for imdb-sentences), then finetune --init), textrelu with self-training (finetune with
no option but the task and --unlabeled, on the sentiment rows that have unlabeled rows: the IMDB
ones), the linear model (LogisticRegressionCV or RidgeCV, C or alpha by 5-fold cross-validation)
on whichever of three term sets serves it best on the row (textrelu's default vocabulary, the
5,000 most frequent uni+bigrams, all uni+bigrams; one for the row, the best mean test score over
its parts and splits), the same model on each part's term set with the best cross-validation score ("linear,
terms by CV": the choice a user without the test labels can make), fastText with
-autotune-validation on textrelu's own validation split (when the `fasttext` module is
installed: pip install textrelu[bench]), and the wall time of each. Prints a Markdown table,
with textrelu's difference from the linear model (the first; points of accuracy, or RMSE) and on
how many splits textrelu won, then each row's term set and the linear model with its term set
picked on the test set of each part and split (a finer pick, which favours it more); --json
writes the measurements, the linear model's on each term set and the settings each textrelu
column's search chose per part among them.

The Amazon rows move by 0.6 to 1 point from split to split (standard deviation over 5 splits);
`--splits N` repeats each row on N splits (split 0 as above; split k > 0 shuffles each Amazon
domain's reviews with seed k before the 800/200 cut, runs textrelu with --seed k and fastText on
the validation split of seed k; the IMDB rows keep IMDB's split and change only the seeds) and
gives the mean ± the standard deviation over them.
"""

import argparse
import json
import os
import re
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DATA, extract_imdb, machine_lines  # noqa: E402 (benchmarks/common.py)
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegressionCV, RidgeCV

from textrelu import checkpoint
from textrelu.data.vectorize import vectorize
from textrelu.data.vocab import Vocabulary
from textrelu.settings import Finetuning
from textrelu.stages.finetune import finetune, split_valid
from textrelu.stages.pretrain import pretrain

AMAZON = DATA / "amazon-mds" / "sorted_data_acl.tar.gz"
DOMAINS = ["books", "dvd", "electronics", "kitchen_&_housewares"]
REVIEW = re.compile(r"<review>(.*?)</review>", re.S)
FIELD = re.compile(r"<(rating|title|review_text)>(.*?)</\1>", re.S)
SENTENCE_END = re.compile(r"(?<=[.!?])\s")
SETS = [
    "amazon-4",
    "amazon-titles",
    "imdb",
    "imdb-sentences",
    "amazon-stars",
    "imdb-ratings",
    "imdb-1k-labels",
]
COLUMNS = [
    "textrelu",
    "textrelu + pre-training",
    "textrelu + self-training",
    "linear (CV)",
    "linear, terms by CV",
    "fastText (autotuned)",
]
TIMED = [c for c in COLUMNS if c != "linear, terms by CV"]  # its fits are linear (CV)'s
FEW_LABELS = 1000  # imdb-1k-labels: labeled training reviews; the others of the 25,000 join the unlabeled


# --------------------------------------------------------------------------------------------
# The rows: lists of {"text", "label"} dicts, train and test


def amazon_domain(domain: str) -> dict:
    """{"positive"/"negative": [reviews as dicts of rating, title, review_text]} in file order."""
    out = {}
    with tarfile.open(AMAZON) as tar:
        for polarity in ("positive", "negative"):
            member = tar.extractfile(f"sorted_data_acl/{domain}/{polarity}.review")
            raw = member.read().decode("utf-8", "replace")
            out[polarity] = [{k: v.strip() for k, v in FIELD.findall(block)} for block in REVIEW.findall(raw)]
    return out


def amazon_split(domain: str, field: str, task: str, split: int = 0):
    """Split 0: the paper's (each polarity's first 800 reviews to train, last 200 to test); split
    k > 0: the same counts after shuffling each polarity's reviews with seed k."""
    reviews = amazon_domain(domain)
    if split:
        rng = np.random.default_rng(split)
        reviews = {p: [rs[i] for i in rng.permutation(len(rs))] for p, rs in reviews.items()}

    def row(r, polarity):
        text = r["title"] if field == "title" else f"{r['title']}\n{r['review_text']}"
        label = polarity if task == "sentiment" else r["rating"]
        return {"text": text, "label": label}

    train = [row(r, p) for p in ("positive", "negative") for r in reviews[p][:800]]
    test = [row(r, p) for p in ("positive", "negative") for r in reviews[p][-200:]]
    return [r for r in train if r["text"]], [r for r in test if r["text"]]


def imdb_split(work: Path, first_sentence: bool, task: str):
    """IMDB train and test rows, and the 50,000 unlabeled reviews (for pre-training)."""
    files = extract_imdb(work, parts=("train", "test", "unsup"))
    out = []
    for part in ("train", "test", "unsup"):
        rows = []
        for line in (
            Path(files[part][0]).read_text(encoding="utf-8").split("\n")
        ):  # not splitlines: U+2028 is text
            if not line:
                continue
            r = json.loads(line)
            text = SENTENCE_END.split(r["text"].strip(), maxsplit=1)[0] if first_sentence else r["text"]
            rating = (
                int(r["id"].rsplit("_", 1)[-1].split(".")[0])
                if task == "rating" and part != "unsup"
                else None
            )
            rows.append(
                {"text": text}
                if part == "unsup"
                else {"text": text, "label": rating if task == "rating" else r["label"]}
            )
        out.append(rows)
    return out


def datasets(name: str, work: Path, split: int = 0):
    """[(part name, train rows, test rows, unlabeled rows)] and the task of a row of the table
    (the Amazon archive here holds no unlabeled reviews: []). `split` > 0 reshuffles the Amazon
    rows' split (amazon_split); the IMDB rows keep IMDB's own split."""
    if name in ("amazon-4", "amazon-titles", "amazon-stars"):
        field = "title" if name == "amazon-titles" else "review"
        task = "rating" if name == "amazon-stars" else "sentiment"
        return [(d, *amazon_split(d, field, task, split), []) for d in DOMAINS], task
    task = "rating" if name == "imdb-ratings" else "sentiment"
    train, test, unlabeled = imdb_split(work, name == "imdb-sentences", task)
    if name == "imdb-1k-labels":  # evenly spread over the file, which is sorted by class
        step = len(train) / FEW_LABELS
        keep = {int(i * step) for i in range(FEW_LABELS)}
        labeled = [r for i, r in enumerate(train) if i in keep]
        unlabeled = [{"text": r["text"]} for i, r in enumerate(train) if i not in keep] + unlabeled
        train = labeled
    return [("imdb", train, test, unlabeled)], task


# --------------------------------------------------------------------------------------------
# The columns


def write_jsonl(rows, path: Path) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def textrelu_defaults(
    train_file, test_file, task, work: Path, unlabeled_file=None, seed: int = 0, self_train_on=None
) -> tuple[dict, float, str]:
    """finetune with no option but the task (it counts its own vocabulary and searches its
    settings): its test metrics, its seconds and the settings its search chose, as options. With
    an `unlabeled_file` (None: no pre-training; "": no unlabeled rows), pretrain with no option
    first on the training and unlabeled texts, and finetune from its stack; with `self_train_on`
    (a file of unlabeled rows), finetune --unlabeled it (self-training; the options then say
    whether its models were kept). `seed`: the runs' --seed (0, the default, but for the repeats
    of --splits)."""
    started = time.perf_counter()
    init = None
    if unlabeled_file is not None:
        init = work / "pretrained.pt"
        pretrain(
            [train_file, *([unlabeled_file] if unlabeled_file else [])], None, init, seed=seed, quiet=True
        )
    unlabeled = [self_train_on] if self_train_on else None
    metrics = finetune(
        [train_file],
        task,
        work / "model.pt",
        init=init,
        test=[test_file],
        unlabeled=unlabeled,
        seed=seed,
        quiet=True,
    )
    options = metrics.get("search", {}).get("options", "")
    if "self_training" in metrics:
        options += f" (self-trained models {'kept' if metrics['self_training']['kept'] else 'not kept'})"
    return metrics["test"], time.perf_counter() - started, options


def linear_peer(train, test, task, model_file) -> dict:
    """The CV-tuned linear model on each of three term sets: {term set: (test metric, seconds,
    cross-validation score)}, the score higher for better (minus the mean squared error)."""
    texts, y = [r["text"] for r in train], np.array([r["label"] for r in train])
    test_texts, y_test = [r["text"] for r in test], np.array([r["label"] for r in test])
    vocab = Vocabulary.from_dict(checkpoint.load(model_file)["vocab"])
    term_sets = {
        "textrelu's vocabulary": lambda rows: vectorize_texts(rows, vocab),
        "5,000 uni+bigrams": CountVectorizer(binary=True, ngram_range=(1, 2), max_features=5000).fit(texts),
        "all uni+bigrams": CountVectorizer(binary=True, ngram_range=(1, 2)).fit(texts),
    }
    out = {}
    for name, features in term_sets.items():
        transform = features.transform if hasattr(features, "transform") else features
        X, X_test = transform(texts), transform(test_texts)
        started = time.perf_counter()
        if task == "sentiment":
            model = LogisticRegressionCV(
                Cs=10, cv=5, max_iter=5000, scoring="accuracy", l1_ratios=(0.0,), use_legacy_attributes=False
            ).fit(X, y)
            metric = {"accuracy": float((model.predict(X_test) == y_test).mean())}
            cv_score = float(np.max(np.mean(model.scores_, axis=0)))  # (folds, l1 ratios, Cs)
        else:
            y, y_test = y.astype(float), y_test.astype(float)
            model = RidgeCV(alphas=np.logspace(-1, 4, 11), cv=5, scoring="neg_mean_squared_error").fit(X, y)
            pred = np.clip(model.predict(X_test), y.min(), y.max())
            metric = {"rmse": float(np.sqrt(((pred - y_test) ** 2).mean()))}
            cv_score = float(model.best_score_)  # minus the mean squared error
        out[name] = (metric, time.perf_counter() - started, cv_score)
    return out


def vectorize_texts(texts, vocab):
    from textrelu.data.readers import Review

    reviews = [Review(t, None, None, None, "bench", i, str(i)) for i, t in enumerate(texts)]
    return vectorize(reviews, vocab)


def fasttext_autotuned(train, test, task, seconds: int, seed: int = 0):
    """fastText with -autotune-validation on textrelu's validation split (the same rows)."""
    try:
        import fasttext
    except ImportError:
        return None, None
    if task != "sentiment" or seconds <= 0:
        return None, None
    train_rows, valid_rows = split_valid(len(train), Finetuning().valid_fraction, seed)
    with tempfile.TemporaryDirectory() as tmp:

        def write(rows, name):
            path = Path(tmp) / name
            lines = (f"__label__{r['label']} {' '.join(r['text'].split())}\n" for r in rows)
            path.write_text("".join(lines), encoding="utf-8")
            return str(path)

        train_file = write([train[i] for i in train_rows], "train.txt")
        valid_file = write([train[i] for i in valid_rows], "valid.txt")
        started = time.perf_counter()
        model = fasttext.train_supervised(  # its default of 12 threads crawls on a 2-core machine
            input=train_file,
            autotuneValidationFile=valid_file,
            autotuneDuration=seconds,
            thread=os.cpu_count(),
            verbose=0,
        )
        elapsed = time.perf_counter() - started
    labels = model.predict([" ".join(r["text"].split()) for r in test])[0]
    accuracy = float(np.mean([p[0] == f"__label__{r['label']}" for p, r in zip(labels, test)]))
    return {"accuracy": accuracy}, elapsed


# --------------------------------------------------------------------------------------------


def better(task: str) -> int:
    """1 where a higher metric is better (accuracy), -1 where a lower one is (RMSE)."""
    return 1 if task == "sentiment" else -1


def metric_format(task: str) -> tuple[int, str]:
    """How the table shows a metric: accuracy as a percentage, RMSE as it is."""
    return (100, "{:.2f}%") if task == "sentiment" else (1, "{:.3f}")


def main_metric(m: dict | None) -> float | None:
    if m is None:
        return None
    return m["accuracy"] if "accuracy" in m else m["rmse"]


def run_split(
    name: str, fasttext_seconds: int, work: Path, pretraining: bool, split: int, self_training: bool = True
) -> dict:
    """One split of a row: each column's metric (the mean over the row's parts) and seconds; the
    linear model's on each term set ("linear by term set"), for run_row to pick the row's."""
    parts, task = datasets(name, work, split)
    sign = better(task)
    cells = {c: [] for c in COLUMNS if c != "linear (CV)"}
    times = {c: 0.0 for c in TIMED}
    by_set, set_times, by_test, chosen = {}, {}, [], {}
    for part, train, test, unlabeled in parts:
        folder = work / name / f"split{split}" / part.replace("&", "and")
        folder.mkdir(parents=True, exist_ok=True)
        train_file, test_file = (
            write_jsonl(train, folder / "train.jsonl"),
            write_jsonl(test, folder / "test.jsonl"),
        )
        unlabeled_file = write_jsonl(unlabeled, folder / "unlabeled.jsonl") if unlabeled else ""
        for column, pretrained, self_trained in (
            ("textrelu", False, False),
            ("textrelu + pre-training", True, False),
            ("textrelu + self-training", False, True),
        ):
            if (pretrained and not pretraining) or (
                self_trained and not (self_training and unlabeled_file and task == "sentiment")
            ):
                continue
            out = folder / column.replace(" ", "")
            out.mkdir()
            m, s, options = textrelu_defaults(
                train_file,
                test_file,
                task,
                out,
                unlabeled_file if pretrained else None,
                seed=split,
                self_train_on=unlabeled_file if self_trained else None,
            )
            chosen.setdefault(f"{column} chose", []).append(options)
            cells[column].append(main_metric(m))
            times[column] += s
        peers = linear_peer(train, test, task, folder / "textrelu" / "model.pt")
        for term_set, (m, s, _) in peers.items():
            by_set.setdefault(term_set, []).append(main_metric(m))
            set_times[term_set] = set_times.get(term_set, 0.0) + s
        by_cv = max(peers, key=lambda t: peers[t][2])
        cells["linear, terms by CV"].append(main_metric(peers[by_cv][0]))
        by_test.append(sign * max(sign * main_metric(m) for m, _, _ in peers.values()))
        m, s = fasttext_autotuned(train, test, task, fasttext_seconds, seed=split)
        if m is not None:
            cells["fastText (autotuned)"].append(main_metric(m))
            times["fastText (autotuned)"] += s
    result = {
        "task": task,
        "parts": [p for p, *_ in parts],
        "linear by term set": {t: float(np.mean(v)) for t, v in by_set.items()},
        "linear by term set s": set_times,
        "linear, terms by test per part": float(np.mean(by_test)),
        **chosen,  # per part, the options each textrelu column's search chose
    }
    for column, values in cells.items():
        result[column] = float(np.mean(values)) if values else None
        if column in TIMED:
            result[f"{column} s"] = times[column] if values else None
    return result


def run_row(
    name: str,
    fasttext_seconds: int,
    work: Path,
    pretraining: bool = True,
    splits: int = 1,
    self_training: bool = True,
) -> dict:
    """A row of the table: each column's mean over `splits` splits (run_split), its standard
    deviation over them, and textrelu's difference from the linear model, split by split. The
    linear model's term set is the row's best: the one with the best mean test score over the
    row's parts and splits."""
    runs = [run_split(name, fasttext_seconds, work, pretraining, k, self_training) for k in range(splits)]
    sign = better(runs[0]["task"])
    term_sets = runs[0]["linear by term set"]
    best = max(term_sets, key=lambda t: sign * np.mean([r["linear by term set"][t] for r in runs]))
    for r in runs:
        r["linear (CV)"], r["linear (CV) s"] = r["linear by term set"][best], r["linear by term set s"][best]
    row = {"set": name, "task": runs[0]["task"], "parts": runs[0]["parts"], "linear term set": best}
    row["splits"] = runs
    for column in COLUMNS:
        values = [r[column] for r in runs if r[column] is not None]
        row[column] = float(np.mean(values)) if values else None
        row[f"{column} std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        if column in TIMED:
            row[f"{column} s"] = float(np.mean([r[f"{column} s"] for r in runs])) if values else None
    row["linear, terms by test per part"] = float(
        np.mean([r["linear, terms by test per part"] for r in runs])
    )
    row["textrelu - linear"] = [r["textrelu"] - r["linear (CV)"] for r in runs]
    # a tie is no win: textrelu's accuracy comes through float32 (0.95 reads 0.9500000179)
    row["textrelu wins"] = sum(round(sign * d, 6) > 0 for d in row["textrelu - linear"])
    return row


def row_cells(row: dict) -> list[str]:
    """The table's cells of a row: metric (± std over splits), textrelu - linear, seconds."""
    scale, fmt = metric_format(row["task"])
    out = []
    for c in COLUMNS:
        cell = "—" if row[c] is None else fmt.format(scale * row[c])
        if row[f"{c} std"] is not None:
            cell += f" ± {scale * row[f'{c} std']:.2f}"
        out.append(cell)
    diffs = row["textrelu - linear"]
    out.append(
        f"{scale * np.mean(diffs):+.{2 if scale == 100 else 3}f} ({row['textrelu wins']} of {len(diffs)})"
    )
    out += ["—" if row[f"{c} s"] is None else f"{row[f'{c} s']:.0f}" for c in TIMED]
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=SETS, choices=SETS)
    parser.add_argument(
        "--fasttext-seconds",
        type=int,
        default=60,
        help="fastText's autotune duration; 0: no fastText column (its final training after autotuning "
        "ran for over 40 minutes on 1,440 titles here)",
    )
    parser.add_argument(
        "--splits",
        type=int,
        default=1,
        help="repeat each row N times: split 0 as described; split k > 0 reshuffles the Amazon rows' "
        "split with seed k, runs textrelu with --seed k and fastText on the validation split of seed k "
        "(the IMDB rows keep IMDB's split); cells give the mean ± the standard deviation over the splits",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--no-pretraining", dest="pretraining", action="store_false", help="leave out the pre-training column"
    )
    parser.add_argument(
        "--no-self-training",
        dest="self_training",
        action="store_false",
        help="leave out the self-training column (finetune --unlabeled, on the sentiment rows with unlabeled rows)",
    )
    args = parser.parse_args()
    print("\n".join(machine_lines()))
    header = [*COLUMNS, "textrelu - linear (splits won)", *(f"{c} s" for c in TIMED)]
    print("\n| set | task | " + " | ".join(header) + " |")
    print("|---" * (2 + len(header)) + "|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            row = run_row(
                name, args.fasttext_seconds, Path(tmp), args.pretraining, args.splits, args.self_training
            )
            rows.append(row)
            print(f"| {name} | {row['task']} | " + " | ".join(row_cells(row)) + " |", flush=True)
            if args.json:  # after every row: an interrupted run keeps the rows it finished
                args.json.write_text(json.dumps(rows, indent=2))
    print()
    for row in rows:
        scale, fmt = metric_format(row["task"])
        print(
            f"- {row['set']}: linear (CV) on {row['linear term set']}; with the term set picked on the "
            f"test set of each part and split {fmt.format(scale * row['linear, terms by test per part'])}"
        )


if __name__ == "__main__":
    main()
