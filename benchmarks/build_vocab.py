"""Vocabulary building on the 75,000 IMDB train reviews (pos + neg + unsup), unigrams + bigrams:
textrelu's `build_vocab` vs scikit-learn's `CountVectorizer(binary=True, ngram_range=(1, 2),
max_features=N).fit`, side by side: wall time, peak memory, and how far the two top-N agree.

    python benchmarks/build_vocab.py              # full: 75,000 reviews, N=50,000, 3 repeats
    python benchmarks/build_vocab.py --quick      # smoke run: 5,000 reviews, N=5,000, 2 repeats

textrelu runs twice: as it comes (tokenizing on worker processes, one per core)
and with workers=0 (all in one process). All read the same JSONL files (train.jsonl and
unsup.jsonl, extracted once from the archive): textrelu through its own reader, scikit-learn from
a generator of json.loads(line)["text"], so that it streams the texts too rather than holding a
list of them. Each run is a fresh child process (interleaved: textrelu, textrelu in one process,
scikit-learn, textrelu, ...), so its peak RSS (ru_maxrss from os.wait4) is its own; a child that
only imports the same modules gives the import baseline, subtracted in the "above imports"
column, to which the largest worker's peak RSS is added (forked workers count pages shared with
the main process, so that sum is an upper bound). "fit s" is timed inside the child around the
call alone (reading and tokenizing included, interpreter start and imports not); "child wall s"
is the whole child; "CPU / wall" above 1 is the workers' share.

Both keep the N terms of highest document frequency (with binary=True, CountVectorizer's
max_features ranks by the column sums of the binarized matrix, i.e. document frequency), but the
tokenizers differ: textrelu strips HTML tags, keeps inner apostrophes ("don't"), one-letter words
and "!"/"?" as tokens; CountVectorizer's default token_pattern r"(?u)\\b\\w\\w+\\b" keeps words of
2+ word characters only, splits "don't" into "don", and reads "<br />" as the word "br". The
agreement table counts shared terms among the top 1,000, 10,000 and N of each side (ranked by
document frequency) and sorts the disagreements by those causes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import common

SCRIPT = Path(__file__).resolve()


# --------------------------------------------------------------------------------------------
# Child side: one build in this process, result as one JSON line on stdout


def child(args) -> None:
    if args.child in ("textrelu", "textrelu-here", "baseline-textrelu"):
        import resource

        from textrelu.stages.build_vocab import build_vocab

        if args.child == "baseline-textrelu":
            print(json.dumps({"seconds": 0.0}))
            return
        started = time.perf_counter()
        vocab = build_vocab(
            [str(f) for f in args.files],
            args.out,
            size=args.size,
            ngrams=2,
            workers=0 if args.child == "textrelu-here" else None,
            quiet=True,
        )
        seconds = time.perf_counter() - started
        # the largest worker process's peak RSS (workers are forked: it counts pages shared
        # with this process at the fork, so main + worker is an upper bound of the total)
        workers_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "n_terms": len(vocab),
                    "n_documents": vocab.n_documents,
                    "worker_maxrss_mib": workers_kib / 1024,
                }
            )
        )
        return
    from sklearn.feature_extraction.text import CountVectorizer

    if args.child == "baseline-sklearn":
        print(json.dumps({"seconds": 0.0}))
        return

    def texts():
        for path in args.files:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)["text"]

    cv = CountVectorizer(binary=True, ngram_range=(1, 2), max_features=args.size)
    started = time.perf_counter()
    X = cv.fit_transform(texts())  # what .fit runs; the matrix gives the document frequencies
    seconds = time.perf_counter() - started
    df = X.sum(axis=0).A1 if hasattr(X.sum(axis=0), "A1") else X.sum(axis=0).ravel()
    names = cv.get_feature_names_out()
    with open(args.out, "w", encoding="utf-8") as f:
        for term, n in zip(names, df):
            f.write(f"{term}\t{int(n)}\n")
    print(json.dumps({"seconds": seconds, "n_terms": len(names), "n_documents": X.shape[0]}))


# --------------------------------------------------------------------------------------------
# Parent side


def read_terms(path: Path) -> list[tuple[str, int]]:
    """(term, df) from a textrelu vocabulary file or the child's term<TAB>df dump, by df then term."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# "):
                continue
            term, _, df = line.rstrip("\n").rpartition("\t")
            out.append((term, int(df)))
    out.sort(key=lambda t: (-t[1], t[0]))
    return out


def why_textrelu_only(term: str) -> str:
    words = term.split(" ")
    if any(w in ("!", "?") for w in words):
        return "has ! or ?"
    if any("'" in w or "’" in w for w in words):
        return "inner apostrophe"
    if any(len(w) == 1 for w in words):
        return "one-letter word"
    return "other: a bigram across a <br /> tag, or a df difference"


# what CountVectorizer's pattern leaves of "don't", "haven't", "I've", "we'll", "you're"
_FRAGMENTS = {
    "don",
    "didn",
    "doesn",
    "isn",
    "wasn",
    "weren",
    "aren",
    "couldn",
    "wouldn",
    "shouldn",
    "haven",
    "hasn",
    "hadn",
    "ain",
    "ve",
    "ll",
    "re",
}


def why_sklearn_only(term: str) -> str:
    words = term.split(" ")
    if "br" in words:
        return "'br' from <br /> tags"
    if any(w in _FRAGMENTS for w in words):
        return "a fragment of an apostrophe word"
    return "other: a bigram across a dropped token (it's not -> `it not`), or a df difference"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 reviews, N=5,000, 2 repeats")
    parser.add_argument(
        "--size", type=int, default=None, help="N, terms kept [default 50000; 5000 with --quick]"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="reviews per part (train 25,000 labeled, unsup 50,000), evenly spread sample "
        "[default: all; 2500 each with --quick]",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs of each tool [default 3; 2 with --quick]"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the files here [default: a temp dir]"
    )
    parser.add_argument(
        "--child",
        choices=["textrelu", "textrelu-here", "sklearn", "baseline-textrelu", "baseline-sklearn"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--files", type=Path, nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = args.size or (5000 if args.quick else 50000)
    if args.child:
        args.size = size
        child(args)
        return
    limit = args.limit if args.limit is not None else (2500 if args.quick else None)
    repeats = args.repeats or (2 if args.quick else 3)

    work = common.workdir("textrelu-bench-vocab-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "unsup"), limit=limit)
    inputs = [str(files["train"][0]), str(files["unsup"][0])]
    n_docs = files["train"][1] + files["unsup"][1]

    def argv(kind, out=None):
        a = [common.PYTHON, str(SCRIPT), "--child", kind, "--size", str(size), "--files", *inputs]
        return a + (["--out", str(out)] if out else [])

    kinds = ("textrelu", "textrelu-here", "sklearn")
    outs = {
        "textrelu": work / "textrelu.data.vocab",
        "textrelu-here": work / "textrelu-here.vocab",
        "sklearn": work / "sklearn.terms",
    }
    runs = {kind: [] for kind in kinds}
    baseline = {"textrelu": [], "sklearn": []}
    for kind in ("textrelu", "sklearn"):  # import baselines
        for _ in range(2):
            baseline[kind].append(common.run_child(argv(f"baseline-{kind}"))["maxrss_mib"])
    for rep in range(repeats):
        for kind in kinds:
            r = common.run_child(argv(kind, outs[kind]))
            r.update({"worker_maxrss_mib": 0.0, **common.child_json(r)})
            runs[kind].append(r)
            print(
                f"repeat {rep + 1}: {kind} fit {r['seconds']:.1f} s, child wall {r['wall']:.1f} s, "
                f"peak RSS {r['maxrss_mib']:.0f} MiB",
                file=sys.stderr,
            )

    med = {
        k: {
            f: common.median([r[f] for r in v])
            for f in ("seconds", "wall", "maxrss_mib", "worker_maxrss_mib", "cpu")
        }
        for k, v in runs.items()
    }
    base = {k: common.median(v) for k, v in baseline.items()}
    base["textrelu-here"] = base["textrelu"]
    names = {
        "textrelu": "textrelu build_vocab (tokenizing on workers)",
        "textrelu-here": "textrelu build_vocab --workers 0 (one process)",
        "sklearn": "scikit-learn CountVectorizer.fit",
    }

    def above(k):  # main process above its imports, plus the largest worker (an upper bound)
        return med[k]["maxrss_mib"] - base[k] + med[k]["worker_maxrss_mib"]

    rows = []
    for k in kinds:
        m = med[k]
        rows.append(
            [
                names[k],
                common.fmt_times([r["seconds"] for r in runs[k]]),
                f"{m['seconds'] / med['textrelu']['seconds']:.2f}x",
                f"{n_docs / m['seconds']:,.0f}",
                common.fmt_times([r["wall"] for r in runs[k]]),
                f"{m['cpu'] / m['wall']:.2f}",
                f"{m['maxrss_mib']:,.0f}",
                f"{m['worker_maxrss_mib']:,.0f}",
                f"{base[k]:,.0f}",
                f"{above(k):,.0f}",
                f"{above(k) / max(above('textrelu'), 1e-9):.2f}x",
            ]
        )

    ours, theirs = read_terms(outs["textrelu"]), read_terms(outs["sklearn"])
    agree_rows = []
    for n in sorted({1000, 10000, size}):
        if n > min(len(ours), len(theirs)):
            continue
        a, b = {t for t, _ in ours[:n]}, {t for t, _ in theirs[:n]}
        agree_rows.append([f"top {n:,}", f"{len(a & b):,}", f"{len(a & b) / n:.1%}"])
    a, b = {t for t, _ in ours}, {t for t, _ in theirs}
    causes_ours, causes_theirs = {}, {}
    for t in a - b:
        causes_ours.setdefault(why_textrelu_only(t), []).append(t)
    for t in b - a:
        causes_theirs.setdefault(why_sklearn_only(t), []).append(t)
    rank_ours = {t: i for i, (t, _) in enumerate(ours)}
    rank_theirs = {t: i for i, (t, _) in enumerate(theirs)}
    cause_rows = []
    for side, causes, rank in (
        ("textrelu only", causes_ours, rank_ours),
        ("scikit-learn only", causes_theirs, rank_theirs),
    ):
        for cause, terms in sorted(causes.items(), key=lambda kv: -len(kv[1])):
            top = sorted(terms, key=rank.get)[:4]
            cause_rows.append([side, cause, f"{len(terms):,}", ", ".join(f"`{t}`" for t in top)])

    print(
        f"\n## Vocabulary building, IMDB train + unsup ({n_docs:,} reviews), unigrams+bigrams, N={size:,}\n"
    )
    print("\n".join(common.machine_lines()))
    print(
        f"- {repeats} runs of each, interleaved, each in a fresh child process; document frequency cut-off "
        f"(df of the N-th term): textrelu {ours[-1][1]}, scikit-learn {theirs[-1][1]}\n"
    )
    print(
        common.table(
            [
                "tool",
                "fit s, median (min-max)",
                "time ratio to textrelu",
                "reviews/s",
                "child wall s, median (min-max)",
                "CPU / wall",
                "peak RSS MiB (median)",
                "largest worker's peak RSS MiB",
                "import-only RSS MiB",
                "RSS above imports MiB (+ worker)",
                "memory ratio to textrelu",
            ],
            rows,
        )
    )
    print("\nTop-N agreement (the tokenizers differ, see the module docstring):\n")
    print(common.table(["terms compared", "in both", "share"], agree_rows))
    print(f"\nTerms in one top-{size:,} only, by cause:\n")
    print(common.table(["side", "cause", "terms", "most frequent examples"], cause_rows))


if __name__ == "__main__":
    main()
