"""Amazon star ratings: the expectation head (the paper's) vs the regression head, and Ridge.

    python benchmarks/amazon_rating.py [--seeds 0 1]

Same split as benchmarks/amazon_sentiment.py (per domain: first 800 positive + 800 negative
reviews to train, last 200 + 200 to test; 5,000 unigram+bigram terms; ratings 1, 2, 4, 5). A
1-layer rectifier network (1000 units) is fine-tuned with each head; scikit-learn RidgeCV on the
same binary vectors, predictions clipped to [1, 5], is the peer. Prints test RMSE and MAE.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from amazon_sentiment import DOMAINS, peer_vectors, split  # noqa: E402 (benchmarks/)
from common import DATA, machine_lines  # noqa: E402
from sklearn.linear_model import RidgeCV

from textrelu.stages.build_vocab import build_vocab
from textrelu.stages.finetune import finetune


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    archive = args.data / "amazon-mds" / "sorted_data_acl.tar.gz"
    work = Path(tempfile.mkdtemp(prefix="textrelu-rating-"))
    rows = []
    for domain in DOMAINS:
        train, test = split(archive, domain)
        vocab = build_vocab(train, work / "vocab.txt", size=5000, ngrams=2, min_df=2, quiet=True)
        result = {}
        for head in ("expectation", "regression"):
            runs = [
                finetune(
                    train,
                    "rating",
                    work / "model.pt",
                    vocab=vocab,
                    test=test,
                    head=head,
                    seed=seed,
                    quiet=True,
                    search=False,  # the settings given, one model
                )["test"]
                for seed in args.seeds
            ]
            result[head] = (statistics.mean(r["rmse"] for r in runs), statistics.mean(r["mae"] for r in runs))
        X_train, tr = peer_vectors(train, vocab)
        X_test, te = peer_vectors(test, vocab)
        ridge = RidgeCV(alphas=np.logspace(-1, 3, 9)).fit(X_train, [r.rating for r in tr])
        pred = np.clip(ridge.predict(X_test), 1, 5)
        err = pred - np.array([r.rating for r in te])
        result["ridge"] = (float(np.sqrt((err**2).mean())), float(np.abs(err).mean()))
        rows.append((domain, result))
        print(domain, result, flush=True)

    print("\n".join(machine_lines()))
    print(f"command: python benchmarks/amazon_rating.py --seeds {' '.join(map(str, args.seeds))}\n")
    print(
        "| domain | expectation head RMSE / MAE | regression head RMSE / MAE | RidgeCV (clipped) RMSE / MAE |"
    )
    print("|---|---|---|---|")
    for domain, r in rows:
        print(
            f"| {domain} | "
            + " | ".join(f"{r[k][0]:.3f} / {r[k][1]:.3f}" for k in ("expectation", "regression", "ridge"))
            + " |"
        )
    avg = {
        k: (statistics.mean(r[k][0] for _, r in rows), statistics.mean(r[k][1] for _, r in rows))
        for k in ("expectation", "regression", "ridge")
    }
    print(
        "| **average** | "
        + " | ".join(f"**{avg[k][0]:.3f}** / {avg[k][1]:.3f}" for k in ("expectation", "regression", "ridge"))
        + " |"
    )


if __name__ == "__main__":
    main()
