"""Tests of targets (labels, heads, metrics) and the training loops, on tiny fixed-seed problems."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import textrelu.nn.train as train_module
from textrelu.data.readers import Review
from textrelu.errors import BadInput, Diverged
from textrelu.nn.autoencoder import DenoisingAutoencoder, sample_rate_for
from textrelu.nn.batches import ArrayData
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import MAX_EXPECTATION_VALUES, Target
from textrelu.nn.train import (
    Optimizer,
    RowAdam,
    check_finite,
    evaluate_model,
    fit,
    pretrain_layers,
    resolve_device,
)
from textrelu.settings import Finetuning, Pretraining


def rv(label=None, rating=None, row=1, source="train.csv"):
    return Review("some text", None, label, rating, source, row, f"{source}:{row}")


# ---------------------------------------------------------------------------------------------
# targets


def test_sentiment_target_sorted_classes():
    t = Target.fit("sentiment", [rv("pos"), rv("neg"), rv("pos"), rv("mixed")])
    assert (t.task, t.head, t.classes, t.n_outputs) == ("sentiment", "softmax", ["mixed", "neg", "pos"], 3)
    assert t.encode([rv("pos"), rv("mixed"), rv("neg")]).tolist() == [2, 0, 1]
    assert t.encode([rv("pos")]).dtype == torch.long
    assert Target(**t.to_dict()) == t


def test_sentiment_needs_two_classes_and_labels():
    with pytest.raises(BadInput, match="two classes"):
        Target.fit("sentiment", [rv("pos"), rv("pos")])
    with pytest.raises(BadInput, match="two classes"):
        Target.fit("sentiment", [])
    with pytest.raises(BadInput, match="train.csv, row 9: no label"):
        Target.fit("sentiment", [rv("pos"), rv(None, row=9)])


def test_encode_unknown_label_names_source_and_row():
    t = Target.fit("sentiment", [rv("pos"), rv("neg")])
    with pytest.raises(BadInput) as err:
        t.encode([rv("pos"), rv("neutral", row=7, source="valid.csv")])
    assert "valid.csv, row 7" in str(err.value) and "'neutral'" in str(err.value)


def test_bad_task_and_head():
    with pytest.raises(BadInput, match="task must be one of"):
        Target.fit("topic", [rv("a"), rv("b")])
    with pytest.raises(BadInput, match="head must be one of"):
        Target.fit("rating", [rv("1"), rv("2")], head="softmax")


def test_rating_target_expectation_and_regression():
    reviews = [rv(rating=1.0), rv(rating=2.0), rv("2"), rv("5", rating=None)]  # labels as numbers too
    t = Target.fit("rating", reviews)
    assert (t.task, t.head) == ("rating", "expectation")
    assert t.classes == [1.0, 2.0, 5.0] and t.n_outputs == 3
    assert t.mean == pytest.approx(2.5) and t.std == pytest.approx(math.sqrt(3))  # sample std
    assert (t.low, t.high) == (1.0, 5.0)
    assert t.encode(reviews).tolist() == [1.0, 2.0, 2.0, 5.0]
    r = Target.fit("rating", reviews, head="regression")
    assert (r.head, r.classes, r.n_outputs) == ("regression", [], 1)
    assert (r.mean, r.low, r.high) == (t.mean, t.low, t.high)


def test_rating_errors():
    with pytest.raises(BadInput, match=r"data.csv, row 3: rating 'great' is not a number"):
        Target.fit("rating", [rv("4"), rv("great", row=3, source="data.csv")])
    with pytest.raises(BadInput, match="not finite"):
        Target.fit("rating", [rv("4"), rv("nan")])
    with pytest.raises(BadInput, match="two distinct"):
        Target.fit("rating", [rv("4"), rv("4.0")])
    many = [rv(rating=float(i)) for i in range(MAX_EXPECTATION_VALUES + 1)]
    with pytest.raises(BadInput, match="the regression head"):
        Target.fit("rating", many, head="expectation")
    assert Target.fit("rating", many, head="regression").high == MAX_EXPECTATION_VALUES


def test_the_rating_head_unset_follows_the_labels():
    stars = [rv(rating=float(i % 5 + 1)) for i in range(40)]
    half_stars = [rv(rating=0.5 * (i % 10 + 1)) for i in range(40)]
    scores = [rv(rating=i / 997) for i in range(0, 997, 7)]  # a continuous score in [0, 1]
    assert Target.fit("rating", stars).head == "expectation"
    assert Target.fit("rating", half_stars).classes == [0.5 * k for k in range(1, 11)]
    target = Target.fit("rating", scores)
    assert target.head == "regression" and (target.low, target.high) == (0.0, 994 / 997)


def test_regression_predictions_stay_inside_the_training_range():
    t = Target("rating", "regression", [], mean=3.0, std=2.0, low=1.0, high=5.0)
    pred = t.predict(torch.tensor([[-100.0], [0.0], [0.5], [100.0]]))
    assert pred.tolist() == [1.0, 3.0, 4.0, 5.0]
    y = torch.tensor([3.0, 5.0])
    torch.testing.assert_close(t.loss(torch.tensor([[0.0], [1.0]]), y), torch.tensor(0.0))


def test_expectation_prediction_is_the_expected_value():
    t = Target("rating", "expectation", [1.0, 2.0, 4.0, 5.0], low=1.0, high=5.0)
    outputs = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 3.0], [-50.0, -50.0, -50.0, 50.0]])
    p = outputs.softmax(-1)
    expected = (p * torch.tensor([1.0, 2.0, 4.0, 5.0])).sum(1)
    pred = t.predict(outputs)
    torch.testing.assert_close(pred, expected)
    assert pred[0].item() == pytest.approx(3.0) and pred[2].item() == pytest.approx(5.0)
    assert torch.all((pred >= 1.0) & (pred <= 5.0))
    # the loss is the cross-entropy against the index of each rating value
    y = torch.tensor([4.0, 1.0, 5.0])
    torch.testing.assert_close(t.loss(outputs, y), F.cross_entropy(outputs, torch.tensor([2, 0, 3])))


def test_metrics_and_scores_on_hand_made_outputs():
    s = Target("sentiment", "softmax", ["neg", "pos"])
    outputs = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert s.metrics(outputs, torch.tensor([0, 1, 1, 1])) == {"accuracy": 0.75}
    assert s.score({"accuracy": 0.75, "loss": 0.5}) == pytest.approx(0.75 - 5e-7)
    assert s.score({"accuracy": 0.75, "loss": 0.4}) > s.score({"accuracy": 0.75, "loss": 0.5})
    r = Target("rating", "regression", [], mean=3.0, std=1.0, low=1.0, high=5.0)
    m = r.metrics(torch.tensor([[0.0], [1.0], [-1.0]]), torch.tensor([3.0, 5.0, 1.0]))  # preds 3, 4, 2
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 3)) and m["mae"] == pytest.approx(2 / 3)
    assert r.score(m) == pytest.approx(-math.sqrt(2 / 3))


# ---------------------------------------------------------------------------------------------
# devices, optimizers, batches


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_without_cuda():
    with pytest.raises(BadInput, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(BadInput, match="no CUDA device"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(BadInput, match="auto, cpu or cuda"):
        resolve_device("tpu")


def test_optimizer_pairs_a_row_wise_twin_for_sparse_parameters():
    dense, sparse = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(5, 2))
    (sgd,) = Optimizer("sgd", [dense, sparse], 0.1).optimizers
    assert isinstance(sgd, torch.optim.SGD)
    adam, sparse_adam = Optimizer("adam", [dense, sparse], 0.1, 0.01, sparse_params=[sparse]).optimizers
    assert isinstance(adam, torch.optim.Adam) and isinstance(sparse_adam, RowAdam)
    assert adam.param_groups[0]["params"] == [dense] and sparse_adam.param_groups[0]["params"] == [sparse]
    with pytest.raises(BadInput, match="optimizer must be one of"):
        Optimizer("lbfgs", [dense], 0.1)


def numbered_data(n=23, sparse=True):
    """Row i holds the value i + 1 in column i % 3, so a batch row tells which data row it is."""
    X = np.zeros((n, 3), dtype=np.float32)
    X[np.arange(n), np.arange(n) % 3] = np.arange(n) + 1
    return ArrayData(sp.csr_matrix(X) if sparse else X, np.arange(n) * 10)


def epoch_rows(data, batch_size, **kwargs):
    rows, sizes = [], []
    for x, y in data.batches(batch_size, **kwargs):
        dense = x.to_dense() if x.layout == torch.sparse_csr else x
        ids = dense.sum(1).long() - 1
        assert torch.equal(ids * 10, y)  # inputs and targets stay paired
        rows += ids.tolist()
        sizes.append(len(ids))
    return rows, sizes


@pytest.mark.parametrize("sparse", [True, False])
def test_batches_cover_every_row_once_per_epoch(sparse):
    data = numbered_data(sparse=sparse)
    assert len(data) == 23 and data.n_features == 3
    rows, sizes = epoch_rows(data, 5)
    assert rows == list(range(23)) and sizes == [5, 5, 5, 5, 3]
    g = torch.Generator().manual_seed(0)
    first, sizes = epoch_rows(data, 5, shuffle=True, generator=g)
    second, _ = epoch_rows(data, 5, shuffle=True, generator=g)
    assert sorted(first) == list(range(23)) and sorted(second) == list(range(23))
    assert sizes == [5, 5, 5, 5, 3]
    assert first != list(range(23)) and first != second  # shuffled afresh every epoch
    again, _ = epoch_rows(data, 5, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert again == first  # same seed, same order
    other, _ = epoch_rows(data, 5, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert other != first


def test_array_data_checks_and_subset():
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        ArrayData(np.zeros((3, 2)), [0, 1])
    data = numbered_data()
    sub = data.subset(np.array([4, 2]))
    assert len(sub) == 2 and sub.y.tolist() == [40, 20]
    assert epoch_rows(sub, 10)[0] == [4, 2]
    assert ArrayData(np.zeros((2, 2))).y is None


# ---------------------------------------------------------------------------------------------
# fine-tuning


def separable(n, seed, flip=False, n_features=30):
    """Each row holds feature 0 (class 0) or feature 1 (class 1) and a few random noise features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (rng.random((n, n_features)) < 0.1).astype(np.float32)
    X[:, :2] = 0
    X[np.arange(n), y] = 1
    return ArrayData(sp.csr_matrix(X), torch.as_tensor(1 - y if flip else y))


SENTIMENT = Target("sentiment", "softmax", ["neg", "pos"])


def small_net(seed=0, **kwargs):
    torch.manual_seed(seed)
    return SparseRectifierNet(30, (16,), n_outputs=2, **kwargs)


def test_fit_learns_a_separable_problem():
    net = small_net()
    before = evaluate_model(net, SENTIMENT, separable(100, 2))
    history, best_epoch = fit(
        net,
        SENTIMENT,
        separable(200, 1),
        separable(100, 2),
        Finetuning(epochs=15, learning_rate=1e-2, batch_size=32, patience=15),
        quiet=True,
    )
    after = evaluate_model(net, SENTIMENT, separable(100, 2))
    assert after["accuracy"] >= 0.97 and after["loss"] < before["loss"]
    assert len(history) == 15 and set(history[0]) == {"epoch", "train_loss", "valid_loss", "valid_accuracy"}
    accuracies = [h["valid_accuracy"] for h in history]
    assert history[best_epoch - 1]["valid_accuracy"] == max(accuracies)
    assert after["accuracy"] == history[best_epoch - 1]["valid_accuracy"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert after["n"] == 100 and after["sparsity"][0]["layer"] == 1
    assert 0 <= after["sparsity"][0]["exact_zeros"] <= 1


@pytest.mark.parametrize(
    "batch_size, n_epochs",
    [
        (2, 4),  # 100 updates an epoch: `patience` (3) epochs after the best
        (32, 16),  # 7 updates an epoch: 15 epochs after the best, the first with >= 100 updates
    ],
)
def test_fit_keeps_the_best_epoch_and_stops_early(batch_size, n_epochs):
    """The validation labels are the opposite of the training ones: the more the net learns, the
    worse it validates, so the first epoch is the best, training stops after `patience` more
    epochs (and at least MIN_PATIENCE_STEPS updates), and the net ends with its first-epoch weights."""
    from textrelu.nn.train import MIN_PATIENCE_STEPS

    assert MIN_PATIENCE_STEPS == 100
    net = small_net()
    valid = separable(100, 2, flip=True)
    history, best_epoch = fit(
        net,
        SENTIMENT,
        separable(200, 1),
        valid,
        Finetuning(epochs=20, learning_rate=1e-2, batch_size=batch_size, patience=3),
        quiet=True,
    )
    assert best_epoch == 1 and len(history) == n_epochs
    assert history[0]["valid_loss"] < history[-1]["valid_loss"]
    final = evaluate_model(net, SENTIMENT, valid)
    assert final["loss"] == pytest.approx(history[0]["valid_loss"], rel=1e-6)
    assert final["accuracy"] == history[0]["valid_accuracy"]


def test_fit_without_validation_keeps_the_last_epoch():
    history, best_epoch = fit(
        small_net(), SENTIMENT, separable(64, 1), None, Finetuning(epochs=3, batch_size=32), quiet=True
    )
    assert best_epoch == 3 and [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "train_loss"}


def test_fit_is_reproducible():
    def run(seed):
        net = small_net(dropout=0.5, input_dropout=0.2)
        fit(
            net,
            SENTIMENT,
            separable(96, 1),
            separable(32, 2),
            Finetuning(epochs=3, batch_size=16),
            seed=seed,
            quiet=True,
        )
        return net.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fit_rating_regression():
    rng = np.random.default_rng(0)
    X = (rng.random((150, 30)) < 0.2).astype(np.float32)
    ratings = 1 + 4 * X[:, :4].mean(1)  # 1..5 from four features
    target = Target(
        "rating", "regression", [], mean=float(ratings.mean()), std=float(ratings.std()), low=1.0, high=5.0
    )
    data = ArrayData(sp.csr_matrix(X), torch.as_tensor(ratings, dtype=torch.float32))
    net = small_net()
    net.output = torch.nn.Linear(16, 1)
    net.head = "regression"
    before = evaluate_model(net, target, data)["rmse"]
    fit(
        net,
        target,
        data,
        data,
        Finetuning(epochs=20, learning_rate=1e-2, batch_size=32, patience=20),
        quiet=True,
    )
    assert evaluate_model(net, target, data)["rmse"] < 0.5 * before


# ---------------------------------------------------------------------------------------------
# pre-training


def topic_data(n=240, n_features=40, seed=0):
    """Two topics, each with its own 10 frequent words, plus rare noise words."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    X = (rng.random((n, n_features)) < 0.03).astype(np.float32)
    for i, t in enumerate(topic):
        words = rng.choice(10, 5, replace=False) + 10 * t
        X[i, words] = 1
    return ArrayData(sp.csr_matrix(X))


class Spy:
    """Records what the denoising autoencoders are given: a layer and its targets, call by call."""

    def __init__(self, monkeypatch):
        self.calls, self.masked = [], 0
        spy = self

        class RecordingDAE(DenoisingAutoencoder):
            def forward(self, x_clean, x_noisy, sample_rate=1.0, generator=None):
                dense = x_clean.to_dense() if x_clean.layout == torch.sparse_csr else x_clean
                spy.calls.append(
                    (
                        self.encoder.n_in,
                        x_clean.layout == torch.sparse_csr,
                        float(dense.min()),
                        float(dense.max()),
                    )
                )
                return super().forward(x_clean, x_noisy, sample_rate, generator)

        real_masking = train_module.masking

        def masking(x, noise, generator=None):
            spy.masked += 1
            return real_masking(x, noise, generator)

        monkeypatch.setattr(train_module, "DenoisingAutoencoder", RecordingDAE)
        monkeypatch.setattr(train_module, "masking", masking)


def test_pretrain_two_layers_reduces_the_loss(monkeypatch):
    spy = Spy(monkeypatch)
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (16, 8))
    data = topic_data()
    training = Pretraining(epochs=6, batch_size=32, learning_rate=1e-2, valid_fraction=0)
    history = pretrain_layers(net, data, training, quiet=True)
    assert [(h["layer"], h["epoch"]) for h in history] == [(1, e) for e in range(1, 7)] + [
        (2, e) for e in range(1, 7)
    ]
    for layer in (1, 2):
        losses = [h["loss"] for h in history if h["layer"] == layer]
        assert all(math.isfinite(v) for v in losses)
        assert losses[-1] < 0.9 * losses[0], (layer, losses)
    n_batches = 6 * math.ceil(240 / 32)
    first = [c for c in spy.calls if c[0] == 40]
    second = [c for c in spy.calls if c[0] == 16]
    assert len(first) == len(second) == n_batches
    assert all(sparse for _, sparse, _, _ in first)  # salt-and-pepper on sparse inputs
    assert not any(sparse for _, sparse, _, _ in second)  # dense hidden codes ...
    assert spy.masked == n_batches  # ... corrupted by masking
    # sigmoid-ce targets of layer 2 are the codes scaled into [0, 1] by their range over the data
    assert min(c[2] for c in second) == 0.0
    assert max(c[3] for c in second) == pytest.approx(1.0, abs=1e-6)


def test_symmetric_softplus_pretraining_reconstructs_the_codes_before_the_flip(monkeypatch):
    """Softplus outputs are non-negative: under the symmetry trick, layer 2's target is layer 1's
    code before its sign flip (reconstructing the flipped half made MNIST pre-training diverge)."""
    spy = Spy(monkeypatch)
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (16, 8), symmetric=True)
    data = ArrayData(topic_data().X.toarray())
    history = pretrain_layers(
        net,
        data,
        Pretraining(epochs=2, batch_size=32, learning_rate=1e-2, reconstruction="softplus-mse"),
        quiet=True,
    )
    second = [c for c in spy.calls if c[0] == 16]
    assert second and min(c[2] for c in second) >= 0.0 and max(c[3] for c in second) > 0.0
    assert all(math.isfinite(h["loss"]) for h in history)
    with torch.no_grad():  # what layer 2 reads still holds the flipped half
        assert (net.represent(torch.as_tensor(data.X), 1) < 0).any()


@pytest.mark.parametrize("tied", [False, True])
def test_symmetric_pretraining_is_plain_pretraining_with_the_rows_below_negated(tied):
    """The symmetry trick only renames what layer 2 reads: pre-training and fine-tuning must match,
    step for step, a network without the trick whose layer-2 rows under the flipped units are
    negated (so with weights drawn symmetrically about 0 the trick changes nothing on average)."""
    data = ArrayData(topic_data().X.toarray())
    nets = []
    for symmetric in (True, False):
        torch.manual_seed(0)
        nets.append(SparseRectifierNet(40, (16, 8), symmetric=symmetric))
    flipped, plain = nets
    sign = flipped.layers[0].sign[:, None]  # (16, 1): -1 under the flipped half
    with torch.no_grad():
        plain.layers[1].weight.mul_(sign)
    for net in nets:
        pretrain_layers(
            net,
            data,
            Pretraining(
                epochs=2,
                batch_size=32,
                learning_rate=1e-2,
                optimizer="sgd",
                reconstruction="softplus-mse",
                tied=tied,
            ),
            quiet=True,
        )
    torch.testing.assert_close(flipped.layers[0].weight, plain.layers[0].weight)
    torch.testing.assert_close(flipped.layers[1].weight * sign, plain.layers[1].weight)
    torch.testing.assert_close(flipped.layers[1].bias, plain.layers[1].bias)
    # the output layer reads layer 2's flipped half: its columns there are negated likewise
    sign_2 = flipped.layers[1].sign[None, :]  # (1, 8)
    with torch.no_grad():
        plain.output.weight.mul_(sign_2)
    labeled = separable(96, 1, n_features=40)
    labeled = ArrayData(labeled.X.toarray(), labeled.y)
    for net in nets:
        fit(
            net,
            SENTIMENT,
            labeled,
            None,
            Finetuning(epochs=2, batch_size=16, learning_rate=0.05, l1=1e-3, optimizer="sgd"),
            quiet=True,
        )
    torch.testing.assert_close(flipped.layers[1].weight * sign, plain.layers[1].weight)
    torch.testing.assert_close(flipped.output.weight * sign_2, plain.output.weight)
    for name in ("layers.0.weight", "layers.1.bias", "output.bias"):
        torch.testing.assert_close(flipped.state_dict()[name], plain.state_dict()[name])


def test_pretrain_sampled_softplus_mse_runs_and_learns():
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (16,))
    history = pretrain_layers(
        net,
        topic_data(),
        Pretraining(
            epochs=4, batch_size=32, learning_rate=1e-2, reconstruction="softplus-mse", sample_rate=0.5
        ),
        quiet=True,
    )
    assert history[-1]["loss"] < history[0]["loss"]


def test_pretrain_is_reproducible():
    def run(seed):
        torch.manual_seed(0)
        net = SparseRectifierNet(40, (12, 6))
        pretrain_layers(
            net, topic_data(96), Pretraining(epochs=2, batch_size=32, sample_rate=0.5), seed=seed, quiet=True
        )
        return net.state_dict()

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.weight"], c["layers.0.weight"])


@pytest.mark.parametrize("sample_rate", [1.0, 0.5])
def test_sparse_gradients_give_the_same_sgd_steps_as_dense_ones(sample_rate):
    """With plain SGD a sparse gradient must move the touched rows exactly as the dense one does."""

    def run(sparse_grad):
        torch.manual_seed(0)
        net = SparseRectifierNet(40, (12,))
        pretrain_layers(
            net,
            topic_data(64),
            Pretraining(
                epochs=2, batch_size=16, optimizer="sgd", learning_rate=0.05, sample_rate=sample_rate
            ),
            sparse_grad=sparse_grad,
            quiet=True,
        )
        fit(
            net,
            SENTIMENT_40,
            labeled_topics(),
            None,
            Finetuning(epochs=2, optimizer="sgd", learning_rate=0.05),
            sparse_grad=sparse_grad,
            quiet=True,
        )
        assert net.layers[0].sparse_grad is sparse_grad
        return net.state_dict()

    dense, sparse = run(False), run(True)
    for k in dense:
        torch.testing.assert_close(sparse[k], dense[k], rtol=1e-5, atol=1e-6)


SENTIMENT_40 = Target("sentiment", "softmax", ["a", "b"])


def labeled_topics():
    data = topic_data(64)
    topic = torch.as_tensor(np.asarray(data.X[:, 10:20].sum(1)).ravel() > 0).long()
    return ArrayData(data.X, topic)


def test_sparse_adam_path_learns():
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (12,))
    history = pretrain_layers(
        net,
        topic_data(),
        Pretraining(epochs=4, batch_size=32, learning_rate=1e-2, sample_rate=0.3),
        sparse_grad=True,
        quiet=True,
    )
    assert history[-1]["loss"] < 0.9 * history[0]["loss"]
    assert net.layers[0].weight.grad is None or net.layers[0].weight.grad.is_sparse
    # 20 epochs of 4 steps: at 5 steps (the default batch holds all 64 rows) the accuracy swung
    # from 0.25 to 0.91 over seeds; at 80 it was 0.98-1.0 over 10 seeds
    _, _ = fit(
        net,
        SENTIMENT_40,
        labeled_topics(),
        labeled_topics(),
        Finetuning(epochs=20, batch_size=16, patience=20, learning_rate=1e-2),
        sparse_grad=True,
        quiet=True,
    )
    assert evaluate_model(net, SENTIMENT_40, labeled_topics())["accuracy"] > 0.9


def test_check_finite():
    torch.manual_seed(0)
    net = SparseRectifierNet(5, (3,))
    check_finite(net)
    with torch.no_grad():
        net.layers[0].bias[1] = float("nan")
    with pytest.raises(Diverged, match="layers.0.bias"):
        check_finite(net)
    with torch.no_grad():
        net.layers[0].bias[1] = 0.0
        net.output.weight[0, 0] = float("inf")
    with pytest.raises(Diverged, match="output.weight"):
        check_finite(net)


def test_fit_stops_in_the_epoch_where_the_loss_blows_up():
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (8,))
    with torch.no_grad():
        net.layers[0].weight[12, 0] = float("nan")  # a frequent word of topic 1: the loss is NaN
    with pytest.raises(Diverged, match="fine-tuning diverged in epoch 1 .*lower the learning rate"):
        fit(net, SENTIMENT_40, labeled_topics(), labeled_topics(), Finetuning(epochs=50), quiet=True)


def test_pretraining_stops_in_the_epoch_where_the_loss_blows_up():
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (16, 8))
    with torch.no_grad():
        net.layers[0].weight[12, 0] = float("inf")
    with pytest.raises(Diverged, match="pre-training layer 1 diverged in epoch 1"):
        pretrain_layers(net, topic_data(), Pretraining(epochs=50, batch_size=32), quiet=True)


@pytest.mark.parametrize("compiled", [True, False])
def test_row_adam_matches_torch_sparse_adam(compiled):
    """RowAdam is lazy Adam done row by row: the same steps as torch's SparseAdam, duplicate rows
    in a gradient summed first, on both its paths (the numba loop and torch ops). The gradient
    itself is left as it was (it may be shared)."""
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(30, 4))
    b = torch.nn.Parameter(a.detach().clone())
    start = a.detach().clone()
    ours, theirs = RowAdam([a], lr=0.01, compiled=compiled), torch.optim.SparseAdam([b], lr=0.01)
    touched = torch.zeros(30, dtype=torch.bool)
    for _ in range(5):
        rows = torch.randint(0, 20, (12,))  # duplicates included; rows 20-29 never touched
        touched[rows] = True
        values = torch.randn(12, 4)
        kept = values.clone()
        for p in (a, b):
            p.grad = torch.sparse_coo_tensor(rows.unsqueeze(0), values, (30, 4), check_invariants=True)
        ours.step()
        assert torch.equal(values, kept)
        theirs.step()
    torch.testing.assert_close(a, b)
    assert torch.equal(a.detach()[~touched], start[~touched])
    assert not torch.isclose(a.detach()[touched], start[touched]).any()


def test_row_adam_paths_agree_on_an_embedding_bag_gradient():
    """The numba loop and the torch ops give the same weights and moments on the gradient that
    the first layer really produces (one row per non-zero, many duplicates)."""
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(500, 16)) for _ in range(2)]
    weights[1].data.copy_(weights[0].data)
    opts = [RowAdam([weights[0]], lr=0.01, compiled=True), RowAdam([weights[1]], lr=0.01, compiled=False)]
    for _ in range(4):
        cols = torch.randint(0, 100, (300,))
        offsets = torch.arange(0, 300, 10)
        for w, opt in zip(weights, opts):
            opt.zero_grad()
            F.embedding_bag(cols, w, offsets, mode="sum", sparse=True).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(weights[0], weights[1])
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(opts[0].state[weights[0]][key], opts[1].state[weights[1]][key])
    assert opts[0]._workspace[id(weights[0])]["pos"].max() == -1  # bookkeeping reset for the next step
    assert set(opts[0].state[weights[0]]) == {"step", "exp_avg", "exp_avg_sq"}


def test_label_smoothing_softens_the_training_loss_only():
    """Finetuning(label_smoothing=s) trains on targets with s spread over the classes: the
    confident network of a separable set is pulled back from probability 1, and the validation
    loss (plain cross-entropy) is what it was measured as before."""
    data = separable(200, 1)
    probabilities = {}
    for smoothing in (0.0, 0.2):
        net = small_net()
        fit(
            net,
            SENTIMENT,
            data,
            None,
            Finetuning(epochs=30, learning_rate=1e-2, batch_size=32, l1=0.0, label_smoothing=smoothing),
            quiet=True,
        )
        x, y = next(data.batches(len(data)))
        with torch.no_grad():
            p = net.eval()(x)[0].softmax(-1)
        probabilities[smoothing] = float(p[torch.arange(len(y)), y].mean())
    assert probabilities[0.0] > 0.97
    assert 0.85 < probabilities[0.2] < 0.95  # the smoothed target of the true class is 0.9
    with pytest.raises(BadInput, match="label_smoothing must be in"):
        Finetuning(label_smoothing=1.0)


def test_pretraining_stops_a_layer_on_its_validation_loss_and_keeps_its_best_epoch(monkeypatch):
    """With rows held out, a layer stops after `patience` epochs without a lower validation loss,
    and keeps the weights of its best epoch (the losses scripted: layer 1 stops after epoch 4)."""
    scripted = {1: [5.0, 4.0, 6.0, 7.0, 1.0], 2: [3.0, 2.0, 1.0, 1.5, 1.2]}
    weights = {1: [], 2: []}

    def validation_loss(held_out, step, batch_size, device, group, seed, depth, epoch):
        assert len(held_out) == 24  # 10% of 240
        weights[depth + 1].append(net.layers[depth].weight.detach().clone())
        return scripted[depth + 1][epoch - 1]

    monkeypatch.setattr(train_module, "validation_loss", validation_loss)
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (16, 8))
    training = Pretraining(epochs=5, batch_size=32, learning_rate=1e-2, patience=2, valid_fraction=0.1)
    history = pretrain_layers(net, topic_data(), training, quiet=True)
    assert [(h["layer"], h["epoch"]) for h in history] == [(1, 1), (1, 2), (1, 3), (1, 4)] + [
        (2, e) for e in range(1, 6)
    ]
    assert [h["valid_loss"] for h in history] == [5.0, 4.0, 6.0, 7.0, 3.0, 2.0, 1.0, 1.5, 1.2]
    assert not torch.equal(weights[1][1], weights[1][3])
    torch.testing.assert_close(net.layers[0].weight, weights[1][1])  # epoch 2's
    torch.testing.assert_close(net.layers[1].weight, weights[2][2])  # epoch 3's


def test_pretraining_validation_loss_compares_epochs_on_the_same_draws():
    """The held-out loss is measured with the same corruption and sampling each epoch: twice on
    an unchanged network it is the same number, and it falls as the layer learns."""
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (16,))
    training = Pretraining(epochs=8, batch_size=32, learning_rate=1e-2, sample_rate=0.5, patience=8)
    history = pretrain_layers(net, topic_data(), training, quiet=True)
    losses = [h["valid_loss"] for h in history]
    assert len(losses) == 8 and losses[-1] < 0.9 * losses[0]
    data, held_out = train_module.hold_out(topic_data(), 0.1, 0, None)
    assert len(data) == 216 and len(held_out) == 24
    step = train_module.layer_autoencoder(net, 0, data, training, True, 0.5, None, "cpu", None)
    twice = [train_module.validation_loss(held_out, step, 32, "cpu", None, 0, 0, 1) for _ in range(2)]
    assert twice[0] == twice[1]


@pytest.mark.parametrize(
    "n_in, given, rate",
    [(100, None, 1.0), (5000, None, 0.04), (20000, None, 0.01), (10**5, None, 0.01), (10**5, 0.3, 0.3)],
)
def test_default_sample_rate_reconstructs_one_percent_and_at_least_200_columns(n_in, given, rate):
    assert sample_rate_for(n_in, given) == pytest.approx(rate)


def test_a_sparse_layers_decoder_starts_at_each_columns_log_odds(monkeypatch):
    """The sigmoid-ce decoder of a sparse first layer starts at the add-one smoothed log-odds of
    each column over the training rows (not at 0, which predicts 0.5 for every column); the
    layers above keep theirs at 0."""
    starts = {}  # per layer (by its inputs): the decoder bias at its first step

    class RecordingDAE(DenoisingAutoencoder):
        def forward(self, *args, **kwargs):
            starts.setdefault(self.encoder.n_in, self.decoder_bias.detach().clone())
            return super().forward(*args, **kwargs)

    monkeypatch.setattr(train_module, "DenoisingAutoencoder", RecordingDAE)
    net = SparseRectifierNet(40, (16, 8))
    data = topic_data()
    pretrain_layers(net, data, Pretraining(epochs=1, batch_size=32, valid_fraction=0), quiet=True)
    assert set(starts) == {40, 16}
    counts = np.asarray(data.X.sum(0)).ravel()
    p = (counts + 1) / (len(data) + 2)
    torch.testing.assert_close(starts[40], torch.tensor(np.log(p / (1 - p)), dtype=torch.float32))
    assert torch.all(starts[16] == 0)
