"""Tests of model files: round trips, clear errors for every wrong file, atomic writes."""

import os
import pickle

import pytest
import torch

from textrelu import checkpoint
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput
from textrelu.io import atomic_path
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import Target

MODEL_ARGS = {
    "n_features": 12,
    "hidden": [8, 6],
    "activation": "relu",
    "n_outputs": 2,
    "head": "softmax",
    "symmetric": True,
    "dropout": 0.5,
    "input_dropout": 0.2,
}
TARGET = Target("sentiment", "softmax", ["neg", "pos"])
VOCAB = Vocabulary([f"w{i}" for i in range(12)], list(range(24, 12, -1)), n_documents=30)


def make_net(seed=0):
    torch.manual_seed(seed)
    net = SparseRectifierNet(**MODEL_ARGS)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.normal_()  # non-default values everywhere, so a lost tensor shows
    return net


def save_model(path, net=None, kind="model", target=TARGET):
    net = net or make_net()
    checkpoint.save(
        path,
        kind=kind,
        net=net,
        model_args=MODEL_ARGS,
        config={"epochs": 3, "seed": 0},
        metrics={"best_epoch": 2, "history": [{"epoch": 1, "train_loss": 0.5}]},
        vocab=VOCAB.to_dict(),
        target=None if target is None else target.to_dict(),
    )
    return net


def batch():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(5, 12, generator=g) < 0.4).float()


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.pt"
    net = save_model(path)
    return path, net


def test_round_trip_gives_identical_predictions(model_file):
    path, net = model_file
    payload = checkpoint.load(path, kind="model", task="sentiment")
    assert payload["format"] == "textrelu" and payload["kind"] == "model"
    loaded = checkpoint.build_net(payload)
    assert not loaded.training
    net.eval()
    x = batch()
    for inputs in (x, x.to_sparse_csr()):
        out_a, hid_a = net(inputs)
        out_b, hid_b = loaded(inputs)
        assert torch.equal(out_a, out_b)
        assert all(torch.equal(a, b) for a, b in zip(hid_a, hid_b))
    assert torch.equal(loaded.layers[0].sign, net.layers[0].sign)
    assert Target(**payload["target"]) == TARGET
    assert Vocabulary.from_dict(payload["vocab"]).to_dict() == VOCAB.to_dict()
    assert payload["config"] == {"epochs": 3, "seed": 0}
    assert payload["metrics"]["history"] == [{"epoch": 1, "train_loss": 0.5}]
    assert all(not t.requires_grad for t in payload["state_dict"].values())


def test_atomic_write_leaves_no_temp_file(tmp_path):
    path = tmp_path / "deep" / "model.pt"
    save_model(path)
    save_model(path, make_net(1))  # overwriting is atomic too
    assert os.listdir(path.parent) == ["model.pt"]
    loaded = checkpoint.build_net(checkpoint.load(path))
    assert torch.equal(loaded.layers[0].weight, make_net(1).layers[0].weight)


def test_failed_write_keeps_the_old_file_and_no_temp(model_file):
    path, net = model_file
    with pytest.raises((pickle.PicklingError, AttributeError)):  # an unpicklable value
        checkpoint.save(
            path,
            kind="model",
            net=make_net(1),
            model_args=MODEL_ARGS,
            config={},
            metrics={"unpicklable": lambda: None},
            vocab=None,
            target=None,
        )
    assert os.listdir(path.parent) == ["model.pt"]
    assert torch.equal(checkpoint.build_net(checkpoint.load(path)).layers[0].weight, net.layers[0].weight)


def test_atomic_path_removes_the_temp_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise KeyError("interrupted")
    assert os.listdir(tmp_path) == []


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(BadInput, match="not found"):
        checkpoint.load(tmp_path)  # a folder is not a model file


@pytest.mark.parametrize(
    "content",
    [
        "id,text,label\n1,great,pos\n",
        "# textrelu vocabulary (version 0.1.0)\ngood\t3\n",
        '{"text": "good"}\n',
        "hello world\n",
        "term\t5\n",
        "",
    ],
    ids=["csv", "vocabulary", "jsonl", "hello-world", "term-tab-count", "empty"],
)
def test_text_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInput) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value) and "not a readable textrelu model" in str(err.value)


@pytest.mark.parametrize(
    "fraction",
    [
        0.5,
        0.1,
        0.6,
        0.9,
        0.99,
    ],
)
def test_truncated_checkpoint_is_a_clear_error(model_file, fraction):
    path, _ = model_file
    data = path.read_bytes()
    assert 4096 / 0.9 < len(data) < 4096 / 0.6  # the cuts fall on both sides of 4096 bytes
    cut = path.with_name("cut.pt")
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(BadInput, match="truncated") as err:
        checkpoint.load(cut)
    assert str(cut) in str(err.value)


@pytest.mark.parametrize(
    "obj",
    [{"state_dict": {"w": torch.zeros(2)}}, torch.zeros(3), {"format": "other", "kind": "model"}, [1, 2]],
    ids=["dict", "tensor", "other-format", "list"],
)
def test_torch_file_that_is_not_a_textrelu_model(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(BadInput, match="is a torch file but not a textrelu model"):
        checkpoint.load(path)


def test_wrong_kind(tmp_path, model_file):
    path, _ = model_file
    with pytest.raises(BadInput) as err:
        checkpoint.load(path, kind="pretrained")
    assert "is a model file, not a pretrained one" in str(err.value)
    assert "textrelu pretrain" in str(err.value)
    pre = tmp_path / "pre.pt"
    save_model(pre, kind="pretrained", target=None)
    with pytest.raises(BadInput, match="textrelu finetune"):
        checkpoint.load(pre, kind="model")
    assert checkpoint.load(pre, kind="pretrained", task="rating")["target"] is None  # no task to check


def test_wrong_task(tmp_path, model_file):
    path, _ = model_file
    with pytest.raises(BadInput, match="trained for --task sentiment, not rating"):
        checkpoint.load(path, kind="model", task="rating")
    rating = tmp_path / "rating.pt"
    save_model(rating, target=Target("rating", "expectation", [1.0, 5.0], 3.0, 2.0, 1.0, 5.0))
    with pytest.raises(BadInput, match="trained for --task rating, not sentiment"):
        checkpoint.load(rating, task="sentiment")
    assert checkpoint.load(rating, task="rating")["target"]["classes"] == [1.0, 5.0]
