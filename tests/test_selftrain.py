"""Self-training on unlabeled reviews (stages/selftrain.py), in the search and through finetune."""

import functools
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from corpus import invoke

from textrelu import checkpoint
from textrelu.nn.batches import ArrayData
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import Target
from textrelu.settings import Finetuning, Net, Search
from textrelu.stages import search as search_module
from textrelu.stages.finetune import finetune_arrays, lines
from textrelu.stages.search import search
from textrelu.stages.selftrain import pseudo_labeled, self_train

TARGET = Target("sentiment", "softmax", ["neg", "pos"])


def one_class_net(n_features: int, cls: int, margin: float) -> SparseRectifierNet:
    """A linear net that puts every row in class `cls`, its logits `margin` apart."""
    net = SparseRectifierNet(n_features, [], n_outputs=2)
    with torch.no_grad():
        net.output.weight.zero_()
        net.output.bias.copy_(torch.tensor([margin, 0.0] if cls == 0 else [0.0, margin]))
    return net


def rows(n: int, n_features: int = 4, y=None) -> ArrayData:
    X = sp.csr_matrix(np.ones((n, n_features), dtype=np.float32))
    return ArrayData(X, None if y is None else torch.as_tensor(y))


def test_pseudo_labels_keep_the_confident_rows_with_their_class():
    data = rows(5)
    sure = pseudo_labeled(one_class_net(4, 1, margin=5.0), data, threshold=0.9)  # p = 0.993
    assert len(sure) == 5 and sure.y.tolist() == [1] * 5
    unsure = pseudo_labeled(one_class_net(4, 0, margin=1.0), data, threshold=0.9)  # p = 0.73
    assert len(unsure) == 0


def run(fold: int, accuracy: float):
    return (
        rows(10, y=[fold] * 10),
        rows(4, y=[fold] * 4),
        one_class_net(4, fold, 5.0),
        {"valid": {"accuracy": accuracy}},
    )


@pytest.mark.parametrize("new_accuracy, kept", [(0.8, True), (0.5, False)])
def test_each_fold_self_trains_on_its_own_models_labels(new_accuracy, kept):
    """Fold k's extra rows are labeled by fold k's model (never by a model that trained on fold
    k's held-out rows); the new models are kept only when the held-out accuracy rises."""
    seen = []

    def retrain(train, valid, fold):
        seen.append((fold, len(train), train.y[10:].tolist(), len(valid)))
        return f"net {fold}", {}, {"valid": {"accuracy": new_accuracy}}

    runs = [run(0, 0.5), run(1, 0.5)]
    nets, metrics, record = self_train(runs, rows(6), retrain, threshold=0.9, quiet=True)
    assert seen == [(0, 16, [0] * 6, 4), (1, 16, [1] * 6, 4)]
    assert record["pseudo_labeled"] == [6, 6] and record["unlabeled"] == 6
    assert record["score_before"] == 0.5 and record["score_after"] == new_accuracy
    assert record["kept"] is kept
    assert nets == (["net 0", "net 1"] if kept else [r[2] for r in runs])


def test_a_fold_with_no_confident_row_is_not_trained_again():
    def retrain(train, valid, fold):
        raise AssertionError("nothing to add, nothing to train")

    unsure = [(*run(0, 0.5)[:2], one_class_net(4, 0, margin=1.0), {"valid": {"accuracy": 0.5}})]
    nets, _, record = self_train(unsure, rows(6), retrain, threshold=0.9, quiet=True)
    assert record["pseudo_labeled"] == [0] and nets == [unsure[0][2]] and not record["kept"]


def words_data(n: int, rng, n_words: int = 200, labeled: bool = True) -> ArrayData:
    """Each row: two words of its class's own `n_words` (features 0..n_words-1 for class 0, the
    next n_words for class 1). A few labeled rows see only some of the words; the unlabeled rows
    that hold one of them carry the class to the other word."""
    y = rng.integers(0, 2, n)
    cols = np.stack([rng.integers(0, n_words, n), rng.integers(0, n_words, n)], 1) + (y * n_words)[:, None]
    X = sp.csr_matrix(
        (np.ones(2 * n, np.float32), (np.repeat(np.arange(n), 2), cols.ravel())), shape=(n, 2 * n_words)
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    return ArrayData(X, torch.as_tensor(y) if labeled else None)


def test_self_training_in_the_search_raises_the_held_out_accuracy(monkeypatch):
    """80 labeled rows cover about a third of each class's words; 3,000 unlabeled rows spread the
    classes to the rest, and the cross-fitted held-out accuracy rises."""
    rng = np.random.default_rng(0)
    labeled, unlabeled = words_data(80, rng), words_data(3000, rng, labeled=False)
    monkeypatch.setattr(search_module, "CANDIDATES", ({"layers": 0},))
    train_one = functools.partial(
        finetune_arrays, target=TARGET, n_features=400, init_payload=None, quiet=True
    )
    training = Finetuning(epochs=100, learning_rate=0.1, dropout=0.0, input_dropout=0.0, patience=100)
    _, _, metrics, _ = search(
        labeled,
        None,
        TARGET,
        train_one,
        Net(),
        training,
        Search(folds=2),
        given={},
        quiet=True,
        unlabeled=unlabeled,
    )
    record = metrics["self_training"]
    assert record["kept"] and record["score_after"] > record["score_before"] + 0.1
    assert min(record["pseudo_labeled"]) > 500
    assert metrics["valid"]["accuracy"] == pytest.approx(record["score_after"], abs=0.02)


def test_finetune_self_trains_on_unlabeled_files(tmp_path):
    rng = np.random.default_rng(1)
    words = {0: [f"bad{i}" for i in range(30)], 1: [f"good{i}" for i in range(30)]}

    def write(name, n, labeled=True):
        with open(tmp_path / name, "w") as f:
            for _ in range(n):
                y = int(rng.integers(0, 2))
                row = {"text": " ".join(rng.choice(words[y], 2))}
                if labeled:
                    row["label"] = ["neg", "pos"][y]
                f.write(json.dumps(row) + "\n")

    write("train.jsonl", 60)
    write("unl.jsonl", 400, labeled=False)
    result = invoke(
        "finetune", str(tmp_path / "train.jsonl"), "--task", "sentiment", "--out", str(tmp_path / "m.pt"),
        "--unlabeled", str(tmp_path / "unl.jsonl"), "--layers", "0", "--folds", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "self-training: held-out accuracy" in result.output
    metrics = checkpoint.load(tmp_path / "m.pt")["metrics"]
    record = metrics["self_training"]
    assert record["unlabeled"] == 400 and len(record["pseudo_labeled"]) == 2 and record["rejected"] == 0
    assert any(line.startswith("finetune: self-training on 400 unlabeled reviews") for line in lines(metrics))
    stars = tmp_path / "stars.jsonl"
    stars.write_text("".join(json.dumps({"text": f"good{i}", "label": 1 + i % 5}) + "\n" for i in range(30)))
    rating = invoke(
        "finetune",
        stars,
        "--task",
        "rating",
        "--out",
        tmp_path / "r.pt",
        "--unlabeled",
        tmp_path / "unl.jsonl",
    )
    assert rating.exit_code == 2 and "--unlabeled self-trains on classes" in rating.output
    assert not (tmp_path / "r.pt").exists()


def test_a_pipeline_gives_unlabeled_files_like_the_others():
    from textrelu.experiments.pipeline import PATH_LISTS
    from textrelu.stages.finetune import STAGE

    args = {"files": "train.jsonl", "unlabeled": "unl.jsonl"}
    STAGE.paths(args, lambda f: f"/run/{f}")
    assert args == {"files": ["/run/train.jsonl"], "unlabeled": ["/run/unl.jsonl"]}
    assert "unlabeled" in PATH_LISTS


def test_a_self_trained_model_that_fails_leaves_the_first_ones():
    from textrelu.errors import Diverged

    def retrain(train, valid, fold):
        raise Diverged("loss became nan")

    runs = [run(0, 0.5)]
    nets, metrics, record = self_train(runs, rows(6), retrain, threshold=0.9, quiet=True)
    assert nets == [runs[0][2]] and metrics == [runs[0][3]]
    assert not record["kept"] and record["score_after"] is None and "nan" in record["failed"]
