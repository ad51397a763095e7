"""Amazon multi-domain polarity: a 1-layer textrelu rectifier network vs a tuned LogisticRegression,
side by side on the same split and the same binary features.

    python benchmarks/amazon_sentiment.py [--seeds 0 1 2] [--pretrain] [--data ../shared/data]

Protocol (issue 2): per domain, train on the first 800 positive + first 800 negative reviews in file
order, test on the last 200 + 200; a 5,000-term unigram+bigram vocabulary from the training reviews.
textrelu holds out 10% of the training reviews for early stopping; LogisticRegressionCV picks C by
5-fold cross-validation on all 1,600. With --pretrain, the layer is first pre-trained as a denoising
autoencoder on the training reviews of all 4 domains (never on test reviews).
Prints a table of test accuracy per domain (mean and spread over seeds) and the average.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import DATA  # noqa: E402 (benchmarks/common.py)
from sklearn.linear_model import LogisticRegressionCV

from textrelu.data.readers import read_reviews
from textrelu.data.vectorize import vectorize
from textrelu.data.vocab import Vocabulary
from textrelu.stages.build_vocab import build_vocab
from textrelu.stages.finetune import finetune
from textrelu.stages.pretrain import pretrain

DOMAINS = ["books", "dvd", "electronics", "kitchen_&_housewares"]


def split(archive: Path, domain: str):
    base = f"{archive}::sorted_data_acl/{domain}/"
    train = [base + "positive.review[:800]", base + "negative.review[:800]"]
    test = [base + "positive.review[-200:]", base + "negative.review[-200:]"]
    return train, test


def peer_vectors(files, vocab):
    """Binary vectors and reviews of `files` for the scikit-learn peer (the same features)."""
    reviews, _ = read_reviews(files)
    return vectorize(reviews, vocab), reviews


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--pretrain", action="store_true", help="pre-train on all 4 domains' training reviews"
    )
    parser.add_argument("--hidden", type=int, default=1000)
    args = parser.parse_args()
    archive = args.data / "amazon-mds" / "sorted_data_acl.tar.gz"
    work = Path(tempfile.mkdtemp(prefix="textrelu-amazon-"))

    rows = []
    for domain in DOMAINS:
        train, test = split(archive, domain)
        vocab = work / f"{domain}.vocab"
        build_vocab(train, vocab, size=5000, ngrams=2, min_df=2, quiet=True)
        init = None
        if args.pretrain:
            all_train = [f for d in DOMAINS for f in split(archive, d)[0]]
            init = work / f"{domain}.pretrained.pt"
            pretrain(all_train, vocab, init, layers=1, hidden=args.hidden, epochs=5, quiet=True)
        accs, zeros, seconds = [], [], []
        for seed in args.seeds:
            started = time.perf_counter()
            m = finetune(
                train,
                "sentiment",
                work / f"{domain}.pt",
                vocab=vocab,
                init=init,
                test=test,
                layers=1,
                hidden=args.hidden,
                seed=seed,
                quiet=True,
                search=False,  # the settings given, one model
            )
            seconds.append(time.perf_counter() - started)
            accs.append(m["test"]["accuracy"])
            zeros.append(m["test"]["sparsity"][0]["exact_zeros"])
        v = Vocabulary.load(vocab)
        X_train, train_reviews = peer_vectors(train, v)
        X_test, test_reviews = peer_vectors(test, v)
        started = time.perf_counter()
        lr = LogisticRegressionCV(
            Cs=10, cv=5, max_iter=5000, l1_ratios=(0.0,), scoring="accuracy", use_legacy_attributes=False
        ).fit(X_train, [r.label for r in train_reviews])
        lr_seconds = time.perf_counter() - started
        lr_acc = lr.score(X_test, [r.label for r in test_reviews])
        rows.append((domain, accs, zeros, statistics.median(seconds), lr_acc, lr_seconds))
        print(f"{domain}: textrelu {statistics.mean(accs):.4f} LR {lr_acc:.4f}", flush=True)

    print(f"\nAmazon 4 domains, test accuracy, seeds {args.seeds}, pretrain={args.pretrain}")
    print(
        "| domain | textrelu 1-layer relu (mean ± sd) | exact zeros | fit s | LogisticRegressionCV | fit s |"
    )
    print("|---|---|---|---|---|---|")
    for domain, accs, zeros, sec, lr_acc, lr_sec in rows:
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"| {domain} | {statistics.mean(accs):.2%} ± {sd:.2%} | {statistics.mean(zeros):.1%} | "
            f"{sec:.1f} | {lr_acc:.2%} | {lr_sec:.1f} |"
        )
    ours = statistics.mean(statistics.mean(r[1]) for r in rows)
    theirs = statistics.mean(r[4] for r in rows)
    print(f"| **average** | **{ours:.2%}** | | | **{theirs:.2%}** | |")


if __name__ == "__main__":
    main()
