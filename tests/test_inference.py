"""Scoring without torch: nn.inference.ArrayNet against the torch forward, Target.predict_array
against Target.predict, torchfile.read against torch.load(weights_only=True) and its refusals,
the two readers of checkpoint.py, and `score` in a fresh process (no torch imported)."""

import collections
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from corpus import NEGATIVE, NEUTRAL, POSITIVE, invoke, review_text, write_csv

from textrelu import checkpoint, torchfile
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput
from textrelu.nn import inference
from textrelu.nn.inference import ArrayNet
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import Target
from textrelu.stages import score as score_stage

ROOT = Path(__file__).resolve().parents[1]
N_FEATURES = 40
TARGETS = {
    "softmax": Target("sentiment", "softmax", ["negative", "positive"]),
    "expectation": Target("rating", "expectation", [1.0, 2.0, 4.0, 5.0], 3.0, 1.5, 1.0, 5.0),
    "regression": Target("rating", "regression", [], 3.0, 1.5, 1.0, 5.0),
}
WORDS = POSITIVE + NEGATIVE + NEUTRAL


def sparse_batch(n_rows=9, n_features=N_FEATURES, seed=0) -> sp.csr_matrix:
    """Binary float32 rows, about a fifth of them ones, row 3 empty."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_rows, n_features)) < 0.2).astype(np.float32)
    dense[3] = 0
    return sp.csr_matrix(dense)


def make_net(seed=0, **args) -> SparseRectifierNet:
    """A net in eval mode with non-default values everywhere: biases of both signs (so that
    rectifiers give zeros), and a positive weight per feature when input_scale is on."""
    torch.manual_seed(seed)
    net = SparseRectifierNet(**args).eval()
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.normal_(0, 0.5)
        net.output.bias.normal_()
        if net.input_scale is not None:
            net.input_scale.uniform_(0.2, 3.0)
    return net


def state_arrays(net) -> dict:
    return {name: t.detach().numpy() for name, t in net.state_dict().items()}


@pytest.mark.parametrize(
    "activation", ["relu", "softplus", "tanh", "softplus:30", "softplus:0.5", "softplus:inf"]
)
@pytest.mark.parametrize("hidden", [(), (16,), (16, 12)])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("input_scale", [False, True])
def test_array_net_equals_the_torch_forward(activation, hidden, symmetric, input_scale, monkeypatch):
    args = dict(
        n_features=N_FEATURES,
        hidden=list(hidden),
        activation=activation,
        n_outputs=3,
        symmetric=symmetric,
        dropout=0.5,  # off in eval mode, on neither side
        input_scale=input_scale,
    )
    net = make_net(**args)
    x = sparse_batch()
    with torch.inference_mode():
        expected = net(torch.from_numpy(x.toarray()).to_sparse_csr())[0].numpy()
    array_net = ArrayNet.from_state(args, state_arrays(net))
    # each way: plain numpy, and the numba loops with hidden inputs always dense, always skipped
    for compiled, share in ((False, 0.3), (True, 0.0), (True, 1.0)):
        monkeypatch.setattr(inference, "SPARSE_INPUT_MAX_SHARE", share)
        out = array_net.forward(x, compiled)
        assert out.dtype == np.float32 and out.shape == expected.shape
        np.testing.assert_allclose(
            out, expected, rtol=0, atol=1e-6, err_msg=f"compiled={compiled} share={share}"
        )


def test_the_sparse_loop_runs_on_sparse_hidden_inputs_and_matches(monkeypatch):
    """With rectifiers mostly silent, the default threshold takes the loop that skips zeros; the
    loops split the batch into blocks of rows on threads."""
    args = dict(n_features=N_FEATURES, hidden=[32, 32], n_outputs=2)
    net = make_net(**args)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.fill_(-1.0)  # most units silent
    calls = []
    original = inference.kernels

    def counting():
        calls.append(1)
        return original()

    monkeypatch.setattr(inference, "kernels", counting)
    monkeypatch.setattr(inference, "THREADS", 3)  # blocks of 50 rows, on three threads
    x = sparse_batch(n_rows=150)
    with torch.inference_mode():
        expected = net(torch.from_numpy(x.toarray()).to_sparse_csr())[0].numpy()
    out = ArrayNet.from_state(args, state_arrays(net)).forward(x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert len(calls) == 2  # the first layer, and the second one, whose input is mostly zeros


@pytest.mark.parametrize("head", TARGETS)
def test_predict_array_equals_predict(head):
    target = TARGETS[head]
    outputs = torch.randn(50, target.n_outputs, generator=torch.Generator().manual_seed(1)) * 3
    expected = target.predict(outputs).numpy()
    got = target.predict_array(outputs.numpy())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_array_net_refuses_weights_that_do_not_fit():
    args = dict(n_features=N_FEATURES, hidden=[16], n_outputs=2)
    state = state_arrays(make_net(**args))
    with pytest.raises(BadInput, match="layers.0.weight"):
        ArrayNet.from_state(args, {**state, "layers.0.weight": np.zeros((N_FEATURES, 15), np.float32)})
    with pytest.raises(BadInput, match="missing"):
        ArrayNet.from_state(args, {k: v for k, v in state.items() if k != "output.bias"})
    with pytest.raises(BadInput, match="activation"):
        ArrayNet.from_state({**args, "activation": "sigmoid"}, state)


# ---------------------------------------------------------------------------------------------
# torchfile: the reader without torch


def same(read, loaded, where="") -> None:
    """read (torchfile) holds what loaded (torch.load) holds, numpy arrays for tensors."""
    if isinstance(loaded, torch.Tensor):
        assert isinstance(read, np.ndarray), where
        assert read.dtype == loaded.numpy().dtype and read.shape == tuple(loaded.shape), where
        assert np.array_equal(read, loaded.numpy()), where
        return
    assert type(read) is type(loaded), (where, type(read), type(loaded))
    if isinstance(loaded, dict):
        assert list(read) == list(loaded), where
        for key in loaded:
            same(read[key], loaded[key], f"{where}/{key}")
    elif isinstance(loaded, (list, tuple)):
        assert len(read) == len(loaded), where
        for i, (a, b) in enumerate(zip(read, loaded)):
            same(a, b, f"{where}[{i}]")
    else:
        assert read == loaded, where


def test_read_gives_what_torch_load_gives(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "contiguous": base,
        "transposed": base.t(),  # the same storage, other strides
        "offset": base[2:, 1:4],  # the same storage, from element 13
        "float64": torch.linspace(0, 1, 5, dtype=torch.float64),
        "float16": torch.tensor([1.5, -2.0], dtype=torch.float16),
        "int64": torch.arange(7),
        "int32": torch.tensor([[1, -2]], dtype=torch.int32),
        "uint8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 4),
        "plain": [1, "two", 3.5, None, True, {"k": (1, 2)}],
        "ordered": collections.OrderedDict(a=1),
    }
    path = tmp_path / "obj.pt"
    torch.save(obj, path)
    same(torchfile.read(path), torch.load(path, weights_only=True))


def test_read_gives_what_torch_load_gives_for_a_model_file(tmp_path):
    args = dict(n_features=len(WORDS), hidden=[8, 6], n_outputs=2, symmetric=True, input_scale=True)
    path = save_model(tmp_path / "m.pt", args, TARGETS["softmax"])
    loaded = checkpoint.load(path, kind="model")
    read = checkpoint.load_arrays(path, kind="model")
    same(read, loaded)
    assert not read["state_dict"]["layers.0.weight"].flags.writeable  # a view of the file


def evil_zip(path: Path, obj) -> Path:
    """A torch-shaped zip whose data.pkl is the pickle of `obj`."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


class Runs:
    """Unpickles to a call of `fn(*args)`: what a hostile model file would do."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("fn", [os.system, eval])
def test_a_file_that_names_another_callable_is_refused_and_nothing_runs(tmp_path, fn):
    marker = tmp_path / "ran"
    command = f"touch {marker}" if fn is os.system else f"open({str(marker)!r}, 'w')"
    path = evil_zip(tmp_path / "evil.pt", {"format": "textrelu", "kind": "model", "x": Runs(fn, command)})
    with pytest.raises(torchfile.Unreadable, match=r"it names (posix\.system|__builtin__\.eval)"):
        torchfile.read(path)
    assert checkpoint.load_arrays(path) is None  # then torch's reader decides, and refuses
    with pytest.raises(BadInput, match="holds Python objects"):
        checkpoint.load(path)
    texts = write_csv(tmp_path / "r.csv", [("a", "great pan", "positive")])
    result = invoke("score", path, texts, "--out", tmp_path / "p.jsonl", "--device", "cpu", "-q")
    assert result.exit_code == 2 and "not a readable textrelu model" in result.stderr
    assert not marker.exists()


def tensor_pickle(size: int, stride: int, numel: int) -> bytes:
    """The pickle torch writes for a 1-d float tensor over storage "0" (numel elements)."""

    def text(s: str) -> bytes:
        return b"X" + struct.pack("<I", len(s)) + s.encode()

    storage = b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu")
    storage += b"K" + bytes([numel]) + b"tQ"  # the tuple, then BINPERSID
    args = b"K\x00" + b"K" + bytes([size]) + b"\x85" + b"K" + bytes([stride]) + b"\x85" + b"\x89"
    hooks = b"ccollections\nOrderedDict\n)R"
    return b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(" + storage + args + hooks + b"tR."


@pytest.mark.parametrize("size,stride,ok_", [(4, 1, True), (2, 2, True), (5, 1, False), (3, 2, False)])
def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path, size, stride, ok_):
    path = tmp_path / "t.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", tensor_pickle(size, stride, 4))
        z.writestr("archive/data/0", np.arange(4, dtype=np.float32).tobytes())
    if ok_:
        assert torchfile.read(path).tolist() == np.arange(4, dtype=np.float32)[::stride][:size].tolist()
    else:
        with pytest.raises(torchfile.Unreadable, match="reaches element"):
            torchfile.read(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_a_file_that_is_no_torch_zip_is_unreadable(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(torchfile.Unreadable):
        torchfile.read(path)
    assert checkpoint.load_arrays(path) is None


# ---------------------------------------------------------------------------------------------
# score on the arrays: the same rows as on torch, and no torch in the process


def save_model(path: Path, args: dict, target: Target, seed=0) -> Path:
    net = make_net(seed, **args)
    vocab = Vocabulary(list(WORDS), list(range(len(WORDS), 0, -1)), n_documents=60)
    checkpoint.save(path, "model", net, args, {}, {}, vocab=vocab.to_dict(), target=target.to_dict())
    return path


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    rows = [(f"r{i}", review_text(i, i % 3 == 0), "") for i in range(40)]
    rows.append(("r40", "no known word here", ""))  # an empty row of the matrix
    return write_csv(root / "reviews.csv", rows)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("head", TARGETS)
@pytest.mark.parametrize("plain_max", [0, 1000])  # the compiled loops, and plain numpy
def test_score_on_arrays_gives_the_rows_of_score_on_torch(tmp_path, reviews, monkeypatch, head, plain_max):
    args = dict(n_features=len(WORDS), hidden=[12, 10], n_outputs=TARGETS[head].n_outputs, input_scale=True)
    model = save_model(tmp_path / "m.pt", args, TARGETS[head])
    monkeypatch.setattr(score_stage, "PLAIN_MAX_REVIEWS", plain_max)
    arrays = read_rows(
        Path(score_stage.score(model, [reviews], tmp_path / "a.jsonl", device="cpu", quiet=True)["out"])
    )
    monkeypatch.setattr(score_stage, "needs_torch", lambda device: True)
    on_torch = read_rows(
        Path(score_stage.score(model, [reviews], tmp_path / "t.jsonl", device="cpu", quiet=True)["out"])
    )
    assert len(arrays) == len(on_torch) == 41
    for a, t in zip(arrays, on_torch):
        assert list(a) == list(t)  # the same keys in the same order
        assert (a["id"], a["source"], a["row"], a.get("label")) == (
            t["id"],
            t["source"],
            t["row"],
            t.get("label"),
        )
        if head == "softmax":
            assert list(a["probabilities"]) == list(t["probabilities"])
            for c in a["probabilities"]:
                assert abs(a["probabilities"][c] - t["probabilities"][c]) <= 1.5e-6
        else:
            assert abs(a["rating"] - t["rating"]) <= 1.5e-6


HEAVY = ("torch", "numba", "sklearn", "pandas", "pyarrow", "datasets", "matplotlib")


def modules_after_score(model: Path, texts: Path, out: Path, cwd: Path = ROOT, env=None) -> list[str]:
    """The heavy packages a fresh process holds after `textrelu score` on the CPU."""
    args = ["score", str(model), str(texts), "--out", str(out), "--device", "cpu", "-q"]
    code = (
        "import json, sys\n"
        "from textrelu.cli import app\n"
        f"app({args!r}, prog_name='textrelu', standalone_mode=False)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_scoring_a_file_on_the_cpu_imports_no_torch(tmp_path, reviews):
    model = save_model(
        tmp_path / "m.pt", dict(n_features=len(WORDS), hidden=[8], n_outputs=2), TARGETS["softmax"]
    )
    # a small file: no numba either
    assert modules_after_score(model, reviews, tmp_path / "small.jsonl") == []
    many = write_csv(tmp_path / "many.csv", [(f"r{i}", review_text(i, i % 2 == 0), "") for i in range(1001)])
    assert modules_after_score(model, many, tmp_path / "many.jsonl") == ["numba"]
    assert len((tmp_path / "many.jsonl").read_text().splitlines()) == 1001
