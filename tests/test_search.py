"""finetune's search (stages/search.py) and the merged network of a cross-fitted ensemble."""

import functools
import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from corpus import invoke, ok  # noqa: E402

from textrelu import checkpoint
from textrelu.errors import Diverged, TooLarge
from textrelu.nn import memory
from textrelu.nn.batches import ArrayData, csr_to_torch
from textrelu.nn.model import SparseRectifierNet, merge
from textrelu.nn.targets import Target
from textrelu.settings import Finetuning, Net, Search
from textrelu.stages import search as search_module
from textrelu.stages.finetune import finetune_arrays
from textrelu.stages.search import SEARCHED, candidates, options, pooled, search


@pytest.mark.parametrize(
    "hidden, scaled, symmetric",
    [((), True, False), ((12,), True, False), ((12,), False, True), ((12, 6), True, False)],
)
def test_merge_gives_the_mean_of_the_nets_outputs(hidden, scaled, symmetric):
    torch.manual_seed(0)
    nets = []
    for _ in range(3):
        net = SparseRectifierNet(30, hidden, n_outputs=3, symmetric=symmetric, input_scale=scaled).eval()
        if scaled:
            net.input_scale.uniform_(-2, 2)
        with torch.no_grad():
            for layer in net.layers:
                layer.bias.uniform_(-0.5, 0.5)
        nets.append(net)
    merged = merge(nets).eval()
    x = sp.random(8, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    x.data[:] = 1.0
    for batch in (csr_to_torch(x), torch.from_numpy(x.toarray())):
        expected = torch.stack([net(batch)[0] for net in nets]).mean(0)
        torch.testing.assert_close(merged(batch)[0], expected, rtol=1e-5, atol=1e-5)
    assert [layer.n_out for layer in merged.layers] == [3 * h for h in hidden]


def xor_data(n=400, seed=0):
    """Label = a XOR b over two binary features (and a constant one): no linear model gets more
    than 3 in 4 right; one hidden layer gets them all."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    X = sp.csr_matrix(np.stack([a, b, np.ones(n)], 1).astype(np.float32))
    return ArrayData(X, torch.as_tensor(a ^ b))


def train_one(target):
    return functools.partial(finetune_arrays, target=target, n_features=3, init_payload=None, quiet=True)


XOR_TARGET = Target("sentiment", "softmax", ["0", "1"])


def search_xor(monkeypatch, candidates):
    """search among `candidates` on the XOR data, 2 folds, with training that can fit it."""
    monkeypatch.setattr(search_module, "CANDIDATES", candidates)
    training = Finetuning(epochs=30, dropout=0.0, input_dropout=0.0, l1=0.0, patience=30)
    return search(
        xor_data(),
        None,
        XOR_TARGET,
        train_one(XOR_TARGET),
        Net(),
        training,
        Search(folds=2),
        given={},
        quiet=True,
    )


def test_search_picks_the_obviously_better_candidate(monkeypatch):
    """The linear candidate comes first, and loses: the search keeps the hidden layer."""
    model, args, metrics, chosen = search_xor(
        monkeypatch, ({"layers": 0}, {"layers": 1, "hidden": 16, "learning_rate": 0.03})
    )
    assert chosen == {"layers": 1, "hidden": 16, "learning_rate": 0.03}
    linear, hidden = metrics["search"]["candidates"]
    assert max(linear["scores"]) < 0.8 and min(hidden["scores"]) > 0.95
    assert args["hidden"] == [32] and metrics["search"]["folds"] == 2  # two fold models side by side
    test = xor_data(seed=1)
    assert XOR_TARGET.metrics(model.eval()(csr_to_torch(test.X))[0], test.y)["accuracy"] == 1.0


def test_successive_halving_and_the_budget(monkeypatch):
    monkeypatch.setattr(
        search_module, "CANDIDATES", tuple({"learning_rate": r} for r in (1e-3, 2e-3, 3e-3, 4e-3))
    )
    target = Target("sentiment", "softmax", ["0", "1"])
    training = Finetuning(epochs=2)
    data = xor_data(100)
    _, _, metrics, _ = search(
        data, None, target, train_one(target), Net(hidden=8), training, Search(folds=3), given={}, quiet=True
    )
    folds_done = sorted(len(c["scores"]) for c in metrics["search"]["candidates"])
    assert folds_done == [1, 1, 2, 3]  # 4 on fold 1, the best 2 on fold 2, the best on fold 3
    _, _, metrics, _ = search(
        data,
        None,
        target,
        train_one(target),
        Net(hidden=8),
        training,
        Search(budget=1e-9),
        given={},
        quiet=True,
    )
    # no time for the others: the first candidate alone, through every fold
    assert [len(c["scores"]) for c in metrics["search"]["candidates"]] == [5, 0, 0, 0]
    assert metrics["search"]["folds"] == 5


def test_a_candidate_that_fails_is_out_and_the_search_goes_on(monkeypatch):
    """A candidate whose training diverges (here: a learning rate of 1e30) is recorded as failed
    and left out; the search keeps the others. When every candidate fails, the error is raised."""
    _, _, metrics, chosen = search_xor(
        monkeypatch, ({"learning_rate": 1e30}, {"layers": 1, "hidden": 16, "learning_rate": 0.03})
    )
    assert chosen == {"layers": 1, "hidden": 16, "learning_rate": 0.03}
    failed, kept = metrics["search"]["candidates"]
    assert "diverged" in failed["failed"] and failed["scores"] == [] and "failed" not in kept
    json.dumps(metrics["search"])  # the record stays plain data
    with pytest.raises(Diverged):
        search_xor(monkeypatch, ({"learning_rate": 1e30},))


def test_a_candidate_too_big_for_the_memory_is_left_out(monkeypatch):
    """A candidate whose fold models would not fit in the memory left is not trained (on IMDB at
    1,000,000 terms the 1000-unit one was killed at 24 GB); when none fits, a clear error."""
    monkeypatch.setattr(memory, "available", lambda device: 2**20)  # 1 MB
    huge = {"layers": 1, "hidden": 100_000}  # 500,000 weights: 16 MB for 2 folds
    _, _, metrics, chosen = search_xor(
        monkeypatch, (huge, {"layers": 1, "hidden": 16, "learning_rate": 0.03})
    )
    assert chosen == {"layers": 1, "hidden": 16, "learning_rate": 0.03}
    left_out, kept = metrics["search"]["candidates"]
    assert left_out["scores"] == [] and left_out["seconds"] == 0.0
    assert left_out["failed"] == (
        "left out: 2 fold models of 3 inputs x [100000] need about 15 MB of memory, 1 MB is available"
    )
    with pytest.raises(TooLarge, match=r"need about 15 MB .*: give fewer terms \(--size\)"):
        search_xor(monkeypatch, (huge,))


def test_available_memory_on_each_kind_of_machine(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   17000000 kB\n")
    assert memory.available("cpu", str(meminfo)) == 17_000_000 * 1024
    physical = memory.available("cpu", str(tmp_path / "none"))  # elsewhere than Linux: all of the memory
    assert physical > 0
    monkeypatch.delattr(memory.os, "sysconf")  # Windows has neither: no bound, no crash
    assert memory.available("cpu", str(tmp_path / "none")) == sys.maxsize
    # on a CUDA device, its free memory, where the networks train and stay (no GPU here: faked)
    monkeypatch.setattr(memory.torch.cuda, "mem_get_info", lambda device: (3 * 2**30, 80 * 2**30))
    assert memory.available("cuda") == 3 * 2**30
    assert memory.too_big(4 * 2**30, "it needs", device="cuda:0") == (
        "it needs about 4.0 GB of GPU memory, 3.0 GB is available"
    )


def test_finetune_refuses_a_model_too_big_for_the_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda device: 2**30)
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": f"w{i} x", "label": i % 2}) + "\n" for i in range(40)))
    result = invoke("finetune", train, "--task", "sentiment", "--out", tmp_path / "m.pt", "--no-search",
                    "--hidden", 10**7)  # fmt: skip
    assert result.exit_code == 2, (result.stdout, result.stderr)
    # 81 terms (40 words, "x" and 40 bigrams) x 10,000,000 units x 2 outputs, 6 copies of 4 bytes
    assert (
        "a model of 81 inputs x [10000000] needs about 18.6 GB of memory, 1.0 GB is available"
        in result.stderr
    )
    assert not (tmp_path / "m.pt").exists()


def test_pretrain_refuses_a_stack_too_big_for_the_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available", lambda device: 2**30)
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": f"w{i} x"}) + "\n" for i in range(40)))
    result = invoke("pretrain", texts, "--out", tmp_path / "s.pt", "--hidden", 10**7)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    # (81 x 10,000,000 + 10,000,000 x 2) weights + 8 copies of the 81 x 10,000,000 autoencoder
    assert (
        "pre-training 81 inputs x [10000000] needs about 27.2 GB of memory, 1.0 GB is available"
        in result.stderr
    )
    assert not (tmp_path / "s.pt").exists()


def test_candidates_leave_the_given_settings_alone():
    assert all("hidden" not in c and "layers" not in c for c in candidates({"hidden": 50}, True, False))
    # from a stack: its width and depth, fine-tuned at a lower rate, NB weights searched
    assert candidates({}, True, pretrained=True) == [
        {"nb_weights": True, "learning_rate": 1e-4},
        {"nb_weights": False, "learning_rate": 1e-4},
    ]
    assert candidates({"learning_rate": 0.01, "hidden": 9}, True, pretrained=True) == [
        {"nb_weights": True},
        {"nb_weights": False},
    ]
    assert candidates({}, False, pretrained=True) == [{"learning_rate": 1e-4}]
    assert all("nb_weights" not in c for c in candidates({}, two_classes=False, pretrained=False))
    assert all("input_dropout" not in c for c in candidates({"input_dropout": 0.1}, True, False))
    assert candidates(set(SEARCHED), True, False) == [{}]  # the given settings alone
    # label smoothing on the short texts' candidate, for classes only; a given one is kept
    short = {"hidden": 100, "layers": 1, "nb_weights": True, "input_dropout": 0.0, "label_smoothing": 0.1}
    assert short in candidates({}, True, False)
    assert {"hidden": 100, "layers": 1, "input_dropout": 0.0} in candidates({}, False, False, ratings=True)
    assert not any("label_smoothing" in c for c in candidates({}, False, False, ratings=True))
    assert not any("label_smoothing" in c for c in candidates({"label_smoothing": 0.0}, True, False))


def test_options_read_back_as_cli_flags():
    assert (
        options({"hidden": 100, "nb_weights": False, "layers": 0})
        == "--hidden 100 --no-nb-weights --layers 0"
    )


def test_pooled_metrics_weigh_folds_by_rows():
    folds = [
        {
            "rmse": 1.0,
            "mae": 1.0,
            "loss": 1.0,
            "n": 1,
            "sparsity": [{"layer": 1, "exact_zeros": 0.2, "dead_units": 0.0}],
        },
        {
            "rmse": 3.0,
            "mae": 2.0,
            "loss": 3.0,
            "n": 3,
            "sparsity": [{"layer": 1, "exact_zeros": 0.6, "dead_units": 0.0}],
        },
    ]
    out = pooled(folds)
    assert out["n"] == 4 and out["mae"] == 1.75 and out["rmse"] == pytest.approx(np.sqrt(28 / 4))
    assert out["sparsity"] == [{"layer": 1, "exact_zeros": pytest.approx(0.5), "dead_units": 0.0}]


def test_finetune_searches_by_default_and_records_it(tmp_path):
    rows = [
        {
            "text": f"{'great fine' if i % 2 else 'awful poor'} item {i % 7}",
            "label": "pos" if i % 2 else "neg",
        }
        for i in range(80)
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "m.pt"
    result = ok(invoke("finetune", train, "--task", "sentiment", "--out", out, "--epochs", 2, "--folds", 2))
    payload = checkpoint.load(out, kind="model")
    record = payload["metrics"]["search"]
    assert f"search chose: {record['options']}\n" in result.stderr
    assert f"search chose {record['options']} among 5 candidate(s): 2 fold model(s)" in result.stdout
    assert len(record["candidates"]) == 5 and record["options"] == options(record["chosen"])
    assert all(c["seconds"] >= 0 for c in record["candidates"])
    assert {k: payload["config"][k] for k in record["chosen"]} == record["chosen"]
    # the chosen options, pasted back with --no-search, train that candidate alone
    again = tmp_path / "again.pt"
    ok(invoke("finetune", train, "--task", "sentiment", "--out", again, "--epochs", 2, "--no-search",
              *record["options"].split(), "-q"))  # fmt: skip
    assert "search" not in checkpoint.load(again)["metrics"]
    quiet = ok(invoke("finetune", train, "--task", "sentiment", "--out", tmp_path / "q.pt", "--epochs", 1,
                      "--folds", 2, "-q"))  # fmt: skip
    assert "search" not in quiet.stderr
