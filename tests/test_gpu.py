"""The CUDA path: the same model core on a GPU gives what it gives on the CPU.

These run only where torch sees a CUDA device (`pytest -m gpu`, or benchmarks/gpu_check.sh on a GPU
machine); elsewhere they are skipped. The rest of the suite also runs there, and the CLI's
`--device auto` then trains on the GPU too.
"""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from corpus import N_ROWS, review_text, write_csv
from test_train import SENTIMENT_40, labeled_topics, topic_data

from textrelu.errors import TooLarge
from textrelu.nn import memory
from textrelu.nn.autoencoder import salt_and_pepper
from textrelu.nn.batches import csr_to_torch
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.train import RowAdam, evaluate_model, fit, pretrain_layers
from textrelu.settings import Finetuning, Pretraining
from textrelu.stages.build_vocab import build_vocab
from textrelu.stages.finetune import finetune
from textrelu.stages.pretrain import pretrain
from textrelu.stages.score import score

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
GPU = "cuda"


def random_csr(n_rows, n_cols, density, seed):
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=np.float32)
    X.data[:] = 1.0
    return X


@pytest.mark.parametrize("sparse_grad", [False, True])
def test_forward_and_first_layer_gradient_match_the_cpu(sparse_grad):
    torch.manual_seed(0)
    cpu = SparseRectifierNet(2000, (64, 32), n_outputs=2)
    gpu = SparseRectifierNet(2000, (64, 32), n_outputs=2)
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(GPU)
    for net in (cpu, gpu):
        net.layers[0].sparse_grad = sparse_grad
    X = random_csr(50, 2000, 0.02, seed=1)
    grads, outs = [], []
    for net, device in ((cpu, "cpu"), (gpu, GPU)):
        out, hiddens = net(csr_to_torch(X, device))
        (out.pow(2).sum() + hiddens[0].sum()).backward()
        g = net.layers[0].weight.grad
        assert g.is_sparse == sparse_grad
        grads.append((g.to_dense() if g.is_sparse else g).cpu())
        outs.append(out.detach().cpu())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


def test_row_adam_on_the_gpu_matches_the_compiled_cpu_loop():
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(500, 16)), torch.nn.Parameter(torch.empty(500, 16, device=GPU))]
    weights[1].data.copy_(weights[0].data)
    opts = [RowAdam([weights[0]], lr=0.01), RowAdam([weights[1]], lr=0.01)]
    for _ in range(4):
        cols = torch.randint(0, 100, (300,))
        offsets = torch.arange(0, 300, 10)
        for w, opt in zip(weights, opts):
            opt.zero_grad()
            F.embedding_bag(cols.to(w.device), w, offsets.to(w.device), mode="sum", sparse=True).pow(
                2
            ).sum().backward()
            opt.step()
    torch.testing.assert_close(weights[1].detach().cpu(), weights[0].detach(), rtol=1e-4, atol=1e-5)


def test_salt_and_pepper_on_the_gpu():
    X = random_csr(400, 3000, 0.05, seed=2)
    x = csr_to_torch(X, GPU)
    a = salt_and_pepper(x, 0.25, torch.Generator(device=GPU).manual_seed(5))
    b = salt_and_pepper(x, 0.25, torch.Generator(device=GPU).manual_seed(5))
    assert a.device.type == "cuda" and a.layout == torch.sparse_csr
    assert torch.equal(a.to_dense(), b.to_dense())  # the generator fixes the noise
    clean, noisy = x.to_dense().bool(), a.to_dense().bool()
    kept = (clean & noisy).sum().item() / clean.sum().item()
    salted = (noisy & ~clean).sum().item() / clean.sum().item()
    assert abs(kept - 0.75) < 0.02 and abs(salted - 0.25) < 0.02


def test_pretraining_and_fine_tuning_learn_on_the_gpu():
    torch.manual_seed(0)
    net = SparseRectifierNet(40, (12,))
    history = pretrain_layers(
        net,
        topic_data(),
        Pretraining(epochs=4, batch_size=32, learning_rate=1e-2, sample_rate=0.3),
        sparse_grad=True,
        device=GPU,
        quiet=True,
    )
    assert history[-1]["loss"] < 0.9 * history[0]["loss"]
    assert net.layers[0].weight.device.type == "cuda"
    fit(
        net,
        SENTIMENT_40,
        labeled_topics(),
        labeled_topics(),
        Finetuning(epochs=20, batch_size=16, patience=20, learning_rate=1e-2),
        sparse_grad=True,
        device=GPU,
        quiet=True,
    )
    assert evaluate_model(net, SENTIMENT_40, labeled_topics(), device=GPU)["accuracy"] > 0.9


def test_sampled_pretraining_on_the_gpu_takes_the_cpus_steps():
    """The first layer's noise and sampling plan are drawn on the host, so a GPU run of sampled
    pre-training (torch ops, no host synchronization in a step) follows the CPU run (compiled
    loops) up to the order of floating-point sums."""
    from textrelu.nn.batches import ArrayData

    data = ArrayData(random_csr(96, 3000, 0.02, seed=3))

    def run(device):
        torch.manual_seed(0)
        net = SparseRectifierNet(3000, (32,))
        pretrain_layers(
            net,
            data,
            Pretraining(epochs=1, batch_size=32, sample_rate=0.05),
            sparse_grad=True,
            device=device,
            quiet=True,
        )
        return {k: v.cpu() for k, v in net.state_dict().items()}

    cpu, gpu = run("cpu"), run(GPU)
    for k in cpu:
        torch.testing.assert_close(gpu[k], cpu[k], rtol=1e-4, atol=1e-4)


def test_same_seed_on_the_gpu_gives_the_same_model_up_to_summation_order():
    """Noise and shuffling come from seeded generators on the GPU too; what may differ between two
    runs is the order of floating-point sums (atomic adds in the sparse backward)."""

    def run(seed):
        torch.manual_seed(0)
        net = SparseRectifierNet(40, (12, 6))
        pretrain_layers(
            net,
            topic_data(96),
            Pretraining(epochs=2, batch_size=32, sample_rate=0.5),
            seed=seed,
            device=GPU,
            quiet=True,
        )
        return {k: v.cpu() for k, v in net.state_dict().items()}

    a, b, c = run(3), run(3), run(4)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert (a["layers.0.weight"] - c["layers.0.weight"]).abs().max() > 1e-3


def test_models_trained_on_the_gpu_score_the_same_on_both_devices(tmp_path):
    """The library path end to end with device="cuda"; the checkpoint then scores on the CPU."""
    rows = [
        (f"r{i}", review_text(i, i % 2 == 0), "positive" if i % 2 == 0 else "negative") for i in range(N_ROWS)
    ]
    train = write_csv(tmp_path / "train.csv", rows)
    vocab = build_vocab([str(train)], tmp_path / "v.vocab", ngrams=2, quiet=True)
    pretrain(
        [str(train)],
        vocab,
        tmp_path / "stack.pt",
        layers=2,
        hidden=16,
        epochs=3,
        sample_rate=0.5,
        device=GPU,
        quiet=True,
    )
    metrics = finetune(
        [str(train)],
        "sentiment",
        tmp_path / "model.pt",
        init=tmp_path / "stack.pt",
        epochs=20,
        learning_rate=1e-2,
        device=GPU,
        quiet=True,
    )
    assert metrics["valid"]["accuracy"] >= 0.8
    outs = {}
    for device in ("cpu", GPU):
        out = tmp_path / f"scores.{device}.jsonl"
        summary = score(tmp_path / "model.pt", [str(train)], out, device=device, quiet=True)
        assert summary["scored"] == N_ROWS
        outs[device] = [json.loads(line) for line in out.read_text().splitlines()]
    for a, b in zip(outs["cpu"], outs[GPU]):
        assert a["id"] == b["id"] and a["label"] == b["label"]
        for name in a["probabilities"]:
            assert a["probabilities"][name] == pytest.approx(b["probabilities"][name], abs=1e-5)


def test_a_network_too_big_for_the_gpus_free_memory_is_refused(tmp_path):
    """The networks train and stay on the GPU, so the GPU's free memory bounds them: a layer far
    wider than it holds is refused before training, in its words (nn/memory.py)."""
    _, total = torch.cuda.mem_get_info()
    assert 0 < memory.available(GPU) <= total
    rows = [(i, review_text(i, i % 2 == 0), "pos" if i % 2 == 0 else "neg") for i in range(40)]
    train = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(TooLarge, match="of GPU memory"):  # 10**9 units: terabytes of weights
        finetune([str(train)], "sentiment", tmp_path / "m.pt", search=False, hidden=str(10**9),
                 device=GPU, quiet=True)  # fmt: skip
    assert not (tmp_path / "m.pt").exists()
