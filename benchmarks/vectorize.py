"""Texts to binary bag-of-words vectors, IMDB test reviews: textrelu's compiled featurizer vs its
pure-Python definition vs scikit-learn's CountVectorizer.transform, side by side.

    python benchmarks/vectorize.py            # full: vocabularies from 25,000 train reviews, 25,000 timed
    python benchmarks/vectorize.py --quick    # smoke run: 2,000 / 2,000

Per vocabulary size (--sizes, unigrams+bigrams, fitted on the train reviews by each tool), timed
on the same list of test texts in this process, one thread, interleaved rounds after a warm-up:
- textrelu: `vectorize.vectorize` (the compiled `featurize.Featurizer`: one numba pass per batch
  of 1,024 reviews from code points to sorted ids, then a scipy CSR matrix);
- textrelu, the definition: `tokenize.term_ids` per review (regex tokens, n-gram strings looked up
  in a dict), then the same CSR matrix; the benchmark checks both matrices are equal;
- scikit-learn: CountVectorizer(binary=True, ngram_range=(1, 2), max_features=size), fitted on the
  train texts, `.transform(texts)` (its own tokenizer: the terms differ a little).
Reading the files is not timed. The table gives median reviews/s and the ratio to textrelu.
"""

from __future__ import annotations

import argparse
import sys
import time

import common


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 train / 2,000 test reviews")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1024, help="reviews per featurizer call")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import torch
    from sklearn.feature_extraction.text import CountVectorizer

    from textrelu.data.readers import Review
    from textrelu.data.vectorize import defined_ids, ids_to_csr, vectorize
    from textrelu.stages.build_vocab import build_vocab

    torch.set_num_threads(1)
    work = common.workdir("textrelu-bench-vectorize-", args.workdir)
    files = common.extract_imdb(work, parts=("train", "test"), limit=2000 if args.quick else None)
    train_texts = [r["text"] for r in common.read_jsonl(files["train"][0])]
    test = [
        Review(r["text"], None, None, None, "test", i, str(i))
        for i, r in enumerate(common.read_jsonl(files["test"][0]), 1)
    ]
    texts = [r.text for r in test]
    batches = [test[i : i + args.batch] for i in range(0, len(test), args.batch)]

    rows = []
    for size in args.sizes:
        vocab = build_vocab([files["train"][0]], work / f"vocab{size}.txt", size=size, ngrams=2, quiet=True)
        sk = CountVectorizer(binary=True, ngram_range=(1, 2), max_features=size).fit(train_texts)
        _ = vocab.featurizer  # built (numba loaded) before timing

        def compiled(vocab=vocab):
            return [vectorize(b, vocab) for b in batches]

        def definition(vocab=vocab):
            return [ids_to_csr(*defined_ids(b, vocab), len(vocab)) for b in batches]

        tools = {
            "textrelu (compiled featurizer)": compiled,
            "textrelu, the definition (regex + dict)": definition,
            "scikit-learn CountVectorizer.transform": lambda sk=sk: sk.transform(texts),
        }
        a, b = compiled(), definition()
        assert all((x != y).nnz == 0 for x, y in zip(a, b)), "the featurizer and the definition differ"
        nnz = sum(x.nnz for x in a)
        times = {name: [] for name in tools}
        for rnd in range(args.repeats + 1):
            for name, fn in tools.items():
                t0 = time.perf_counter()
                fn()
                if rnd:
                    times[name].append(time.perf_counter() - t0)
        base = len(texts) / common.median(times["textrelu (compiled featurizer)"])
        for name in tools:
            rate = len(texts) / common.median(times[name])
            rows.append(
                [
                    f"{size:,}",
                    name,
                    f"{rate:,.0f}",
                    f"{rate / base:.2f}x",
                    common.fmt_times(times[name]),
                    f"{1e6 / rate:.0f}",
                ]
            )
        print(f"size {size}: {nnz / len(texts):.0f} terms per review; matrices equal", file=sys.stderr)

    print(f"\n## Vectorizing {len(texts):,} IMDB test reviews (unigrams+bigrams)\n")
    print("\n".join(common.machine_lines()))
    print(
        f"- vocabularies fitted on {len(train_texts):,} train reviews; one thread; {args.repeats} interleaved "
        f"rounds after a warm-up; textrelu in batches of {args.batch:,}\n"
    )
    print(
        common.table(
            [
                "terms",
                "tool",
                "reviews/s (median)",
                "ratio to textrelu",
                "wall s, median (min-max)",
                "us per review",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
