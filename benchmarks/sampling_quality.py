"""Does reconstruction sampling learn as good a representation as full reconstruction, faster?

    python benchmarks/sampling_quality.py [--size 20000] [--epochs 3] [--sample-rates 1 0.05 0.01]

Amazon multi-domain reviews, the protocol of issue 2: the training reviews (first 800 positive +
800 negative in file order) of all 4 domains pre-train one layer of 1000 rectifier units as a
denoising autoencoder, once per --sample-rates value (1 = full reconstruction), on a
unigram+bigram vocabulary of up to --size terms from those training reviews. Each pre-trained
layer is then fine-tuned per domain (seeds 0 and 1) and tested on the last 200 + 200 reviews.
Prints pre-training time, the speed-up over full reconstruction and the mean test accuracy.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from amazon_sentiment import DOMAINS, split  # noqa: E402 (benchmarks/)
from common import DATA, machine_lines  # noqa: E402

from textrelu.stages.build_vocab import build_vocab
from textrelu.stages.finetune import finetune
from textrelu.stages.pretrain import pretrain


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sample-rates", type=float, nargs="+", default=[1.0, 0.05, 0.01])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    archive = args.data / "amazon-mds" / "sorted_data_acl.tar.gz"
    work = Path(tempfile.mkdtemp(prefix="textrelu-sampling-"))
    all_train = [f for d in DOMAINS for f in split(archive, d)[0]]
    vocab = work / "vocab.txt"
    v = build_vocab(all_train, vocab, size=args.size, ngrams=2, min_df=2, quiet=True)

    rows = []
    for rate in args.sample_rates:
        init = work / f"pretrained-{rate}.pt"
        m = pretrain(
            all_train, vocab, init, layers=1, hidden=1000, epochs=args.epochs, sample_rate=rate, quiet=True
        )
        accs = []
        for domain in DOMAINS:
            train, test = split(archive, domain)
            for seed in args.seeds:
                f = finetune(
                    train,
                    "sentiment",
                    work / "model.pt",
                    vocab=vocab,
                    init=init,
                    test=test,
                    seed=seed,
                    quiet=True,
                    search=False,  # the settings given, one model
                )
                accs.append(f["test"]["accuracy"])
        rows.append(
            (
                rate,
                m["seconds"],
                m["history"][-1]["loss"],
                statistics.mean(accs),
                statistics.stdev(accs) / len(accs) ** 0.5,
            )
        )
        print(f"sample rate {rate}: {m['seconds']:.0f}s, accuracy {statistics.mean(accs):.4f}", flush=True)

    print("\n".join(machine_lines()))
    print(
        f"command: python benchmarks/sampling_quality.py --size {args.size} --epochs {args.epochs} "
        f"--sample-rates {' '.join(map(str, args.sample_rates))} --seeds {' '.join(map(str, args.seeds))}"
    )
    print(
        f"\n{len(v)} terms, {len(DOMAINS) * 1600} pre-training reviews, {args.epochs} epochs; "
        f"then fine-tuning per domain, seeds {args.seeds}\n"
    )
    full_seconds = next((r[1] for r in rows if r[0] == 1.0), None)
    print("| reconstruction | pre-training s | speed-up | final loss | mean test accuracy (± s.e.) |")
    print("|---|---|---|---|---|")
    for rate, seconds, loss, acc, se in rows:
        name = "full" if rate == 1.0 else f"sampled, rate {rate}"
        speed = f"{full_seconds / seconds:.1f}x" if full_seconds else "-"
        print(f"| {name} | {seconds:.0f} | {speed} | {loss:.1f} | {acc:.2%} ± {se:.2%} |")


if __name__ == "__main__":
    main()
