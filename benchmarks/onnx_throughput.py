"""The network on the CPU: torch (sparse CSR batch, embedding_bag) against onnxruntime (the graph
of `textrelu export`, padded term ids), on the same reviews, in the same run.

    python benchmarks/onnx_throughput.py                       # trains a kitchen model first
    python benchmarks/onnx_throughput.py --model model.pt      # any model file of finetune
    python benchmarks/onnx_throughput.py --threads 1 --repeats 7

What is timed: the network alone, from the vectorized reviews to predictions, for each batch
size: torch runs `Model`'s forward on the CSR rows (csr_to_torch, SparseRectifierNet under
inference_mode, Target.predict); onnxruntime runs the exported graph on the same rows as padded
ids (`ids_matrix`, made outside the timing, as a runtime would receive them). Vectorizing is the
same for both and left out. Both use --threads threads. Runs are interleaved (torch, then
onnxruntime, per round, after an untimed warm-up), and the table gives the median reviews/s,
the ratio onnxruntime/torch and the largest difference between their predictions.

Without --model: the Amazon kitchen demo split (data/amazon-kitchen, 1600 train), 5,000
unigram+bigram terms, one hidden layer of 1,000 rectifiers, 3 epochs; timed on the 400 test
reviews repeated to --reviews. Needs the extra: pip install 'textrelu[onnx]'.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ROOT / "data" / "amazon-kitchen"


def kitchen_model(folder: Path) -> tuple[Path, list[str]]:
    from sklearn.pipeline import make_pipeline

    import textrelu
    from textrelu.data.readers import read_reviews

    train, _ = read_reviews([f"{KITCHEN}/positive.review[:800]", f"{KITCHEN}/negative.review[:800]"])
    test, _ = read_reviews([f"{KITCHEN}/positive.review[-200:]", f"{KITCHEN}/negative.review[-200:]"])
    pipe = make_pipeline(
        textrelu.BagOfWords(size=5000, ngrams=2),
        textrelu.RectifierClassifier(hidden=1000, epochs=3, random_state=0, device="cpu"),
    ).fit([r.text for r in train], [r.label for r in train])
    path = folder / "kitchen.pt"
    textrelu.save(pipe, path)
    return path, [r.text for r in test]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a model file [default: train the kitchen demo model]")
    p.add_argument("--texts", type=Path, help="review texts, one a line [default: the kitchen test reviews]")
    p.add_argument("--reviews", type=int, default=4000, help="reviews scored per timed run")
    p.add_argument("--batch-sizes", default="1,64,1024")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()

    from textrelu.api.onnx import export, ids_matrix, missing_packages

    if missing_packages():
        sys.exit(f"needs {', '.join(missing_packages())}: pip install 'textrelu[onnx]'")
    import onnxruntime

    import textrelu
    from textrelu.nn.batches import csr_to_torch

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_path, texts = (a.model, None) if a.model else kitchen_model(tmp)
        if a.texts:
            texts = a.texts.read_text(encoding="utf-8").splitlines()
        m = textrelu.load(model_path)
        info = export(m, tmp / "model.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = a.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(tmp / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
    texts = (texts * (a.reviews // len(texts) + 1))[: a.reviews]
    X = m.vectorize(texts)
    pad = info["input"]["pad_id"]
    hidden = [layer.n_out for layer in m.net.layers]
    print(
        f"{len(texts)} reviews, {len(m.vocabulary)} terms, {X.nnz / X.shape[0]:.0f} ids a review, "
        f"hidden {hidden}, {m.target.head} head; {a.threads} thread(s); torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )
    print("\n| batch | torch reviews/s | onnxruntime reviews/s | onnxruntime / torch | max abs difference |")
    print("|---|---|---|---|---|")
    for batch_size in [int(b) for b in a.batch_sizes.split(",")]:
        starts = range(0, X.shape[0], batch_size)
        csr_batches = [X[s : s + batch_size] for s in starts]
        id_batches = [ids_matrix(x, pad) for x in csr_batches]

        def run_torch(csr_batches=csr_batches):
            with torch.inference_mode():
                return [m.target.predict(m.net(csr_to_torch(x))[0]).numpy() for x in csr_batches]

        def run_onnx(id_batches=id_batches):
            return [session.run(None, {"ids": ids})[0] for ids in id_batches]

        diff = max(float(np.abs(t - o).max()) for t, o in zip(run_torch(), run_onnx()))  # also a warm-up
        times = {"torch": [], "onnx": []}
        for _ in range(a.repeats):
            for name, fn in (("torch", run_torch), ("onnx", run_onnx)):
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
        rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
        print(
            f"| {batch_size} | {rate['torch']:,.0f} | {rate['onnx']:,.0f} | "
            f"{rate['onnx'] / rate['torch']:.2f} | {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
