"""Tests of the model core (sparse affine maps, layers, sparsity) and the denoising autoencoders."""

import math

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from textrelu.nn import model
from textrelu.nn.autoencoder import DenoisingAutoencoder, SamplingPlan, masking, salt_and_pepper
from textrelu.nn.model import (
    ACTIVATION_FNS,
    Layer,
    SparseRectifierNet,
    SparsityMeter,
    drop_inputs,
    reusable_rows,
    sparse_affine,
)
from textrelu.nn.rowadam import RowAdam


def binary_batch(n_rows, n_cols, density, seed, empty_rows=()):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_rows, n_cols, generator=g) < density).float()
    for r in empty_rows:
        x[r] = 0
    return x


# ---------------------------------------------------------------------------------------------
# sparse_affine


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_affine_forward_and_backward_match_dense(dtype):
    torch.manual_seed(0)
    dense = binary_batch(6, 11, 0.3, seed=1, empty_rows=(0, 3, 5)).to(dtype)
    dense[1, 2], dense[4, 7] = 2.5, -1.5  # non-binary values are weighted
    assert (dense != 0).any(1).tolist() == [False, True, True, False, True, False]
    weight = torch.randn(11, 4, dtype=dtype, requires_grad=True)
    bias = torch.randn(4, dtype=dtype, requires_grad=True)
    upstream = torch.randn(6, 4, dtype=dtype)

    out_sparse = sparse_affine(dense.to_sparse_csr(), weight, bias)
    (out_sparse * upstream).sum().backward()
    grad_w, grad_b = weight.grad.clone(), bias.grad.clone()
    weight.grad = bias.grad = None
    out_dense = dense @ weight + bias
    (out_dense * upstream).sum().backward()

    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out_sparse, out_dense, rtol=tol, atol=tol)
    torch.testing.assert_close(grad_w, weight.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(grad_b, bias.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(out_sparse[0], bias.detach())  # an empty row is just the bias
    assert torch.all(grad_w[(dense == 0).all(0)] == 0)  # unused inputs get no gradient


def test_sparse_affine_dense_path():
    x, w, b = torch.randn(3, 5), torch.randn(5, 2), torch.randn(2)
    torch.testing.assert_close(sparse_affine(x, w, b), x @ w + b)


# ---------------------------------------------------------------------------------------------
# layers and the network


def test_layer_init_and_shapes():
    torch.manual_seed(0)
    layer = Layer(30, 10)
    bound = math.sqrt(6 / 40)
    assert layer.weight.shape == (30, 10) and layer.bias.shape == (10,)
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.8 * bound
    assert torch.all(layer.bias == 0)
    assert torch.all(layer.sign == 1)


@pytest.mark.parametrize("activation", ["relu", "softplus", "tanh"])
def test_layer_applies_its_activation(activation):
    torch.manual_seed(0)
    layer = Layer(5, 3, activation)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([0.5, -0.5, 0.1]))
    x = torch.randn(4, 5)
    pre = x @ layer.weight + layer.bias
    expected = {"relu": pre.clamp_min(0), "softplus": torch.log1p(torch.exp(pre)), "tanh": torch.tanh(pre)}
    torch.testing.assert_close(layer(x), expected[activation])
    torch.testing.assert_close(ACTIVATION_FNS[activation](pre), expected[activation])


def test_activation_and_head_names_are_checked():
    with pytest.raises(ValueError, match="activation"):
        SparseRectifierNet(4, (3,), activation="sigmoid")
    with pytest.raises(ValueError, match="head"):
        SparseRectifierNet(4, (3,), head="ordinal")


@pytest.mark.parametrize("activation", ["relu", "softplus", "tanh"])
def test_net_forward_sparse_equals_dense(activation):
    torch.manual_seed(0)
    net = SparseRectifierNet(
        12, (7, 5), activation=activation, n_outputs=3, dropout=0.5, input_dropout=0.3
    ).eval()
    dense = binary_batch(5, 12, 0.3, seed=2, empty_rows=(2,))
    out_s, hid_s = net(dense.to_sparse_csr())
    out_d, hid_d = net(dense)
    assert out_s.shape == (5, 3) and [h.shape for h in hid_s] == [(5, 7), (5, 5)]
    torch.testing.assert_close(out_s, out_d)
    for a, b in zip(hid_s, hid_d):
        torch.testing.assert_close(a, b)
    # by hand: the output layer reads the last hidden layer
    h1 = torch.relu(dense @ net.layers[0].weight + net.layers[0].bias) if activation == "relu" else hid_d[0]
    torch.testing.assert_close(hid_d[0], h1)
    torch.testing.assert_close(out_d, net.output(hid_d[1]))


def test_symmetric_sign_flips_half_the_units_for_the_next_layer():
    torch.manual_seed(0)
    net = SparseRectifierNet(8, (6, 4), symmetric=True, n_outputs=2).eval()
    assert net.layers[0].sign.tolist() == [1, 1, 1, -1, -1, -1]
    assert net.layers[1].sign.tolist() == [1, 1, -1, -1]
    assert torch.all(SparseRectifierNet(8, (6,)).layers[0].sign == 1)
    x = torch.rand(5, 8)
    out, (h1, h2) = net(x)
    assert torch.all(h1 >= 0) and torch.all(h2 >= 0)  # measured activations are unflipped
    flipped = h1 * torch.tensor([1.0, 1, 1, -1, -1, -1])
    torch.testing.assert_close(h2, net.layers[1](flipped))
    torch.testing.assert_close(out, net.output(h2 * torch.tensor([1.0, 1, -1, -1])))
    torch.testing.assert_close(net.represent(x, 1), flipped)
    torch.testing.assert_close(net.represent(x, 0), x)
    assert (h1[:, 3:] > 0).any()  # the flip actually matters here


def test_eval_is_deterministic_and_train_applies_dropout():
    torch.manual_seed(0)
    net = SparseRectifierNet(20, (50,), dropout=0.5, input_dropout=0.5)
    x = binary_batch(8, 20, 0.5, seed=3).to_sparse_csr()
    net.eval()
    torch.testing.assert_close(net(x)[0], net(x)[0])
    net.train()
    torch.manual_seed(1)
    a = net(x)[0]
    torch.manual_seed(2)
    assert not torch.allclose(a, net(x)[0])


# ---------------------------------------------------------------------------------------------
# sparsity and input dropout


def test_sparsity_meter_exact_values_over_two_batches():
    meter = SparsityMeter()
    assert meter.result() == []
    meter.update([torch.tensor([[0.0, 1, 0, 0], [0, 2, 0, 0]]), torch.tensor([[1.0, 1], [1, 1]])])
    meter.update(
        [
            torch.tensor([[0.0, 0, 0, 5], [0, 0, 0, 0], [0, 0, 0, 0]]),
            torch.tensor([[0.0, 0], [0, 0], [0, -1e-30]]),
        ]
    )
    assert meter.result() == [
        {"layer": 1, "exact_zeros": 17 / 20, "dead_units": 0.5},  # units 0 and 2 never fire
        {"layer": 2, "exact_zeros": 5 / 10, "dead_units": 0.0},  # a tiny negative is not zero
    ]


def test_drop_inputs_keeps_sparse_structure_and_rescales():
    torch.manual_seed(0)
    dense = binary_batch(40, 500, 0.2, seed=4) * 3.0
    x = dense.to_sparse_csr()
    p = 0.25
    y = drop_inputs(x, p)
    assert y.layout == torch.sparse_csr and y.shape == x.shape
    assert torch.equal(y.crow_indices(), x.crow_indices())
    assert torch.equal(y.col_indices(), x.col_indices())
    values = y.values()
    kept = values != 0
    torch.testing.assert_close(values[kept], torch.full_like(values[kept], 3.0 / (1 - p)))
    n = values.numel()
    dropped_share = 1 - kept.float().mean().item()
    assert abs(dropped_share - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert 0 < dropped_share < 1


def test_drop_inputs_dense():
    torch.manual_seed(0)
    y = drop_inputs(torch.ones(100, 100), 0.4)
    values = y.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.6)
    assert abs((y == 0).float().mean().item() - 0.4) < 0.03


# ---------------------------------------------------------------------------------------------
# autoencoder: gradients and losses


def double_dae(reconstruction, n_in=6, n_hidden=4, seed=0):
    torch.manual_seed(seed)
    encoder = Layer(n_in, n_hidden).double()
    dae = DenoisingAutoencoder(encoder, reconstruction).double()
    with torch.no_grad():  # no pre-activation sits exactly on the rectifier's kink
        encoder.bias.copy_(torch.randn(n_hidden, dtype=torch.float64) * 0.3)
        dae.decoder_bias.copy_(torch.randn(n_in, dtype=torch.float64) * 0.3)
        dae.decoder_weight.add_(torch.randn(n_in, n_hidden, dtype=torch.float64) * 0.3)
    return dae


PARAMS = ("encoder.weight", "encoder.bias", "decoder_weight", "decoder_bias")


@pytest.mark.parametrize("reconstruction", ["sigmoid-ce", "softplus-mse"])
@pytest.mark.parametrize("sparse", [False, True])
def test_reconstruction_gradcheck(reconstruction, sparse):
    dae = double_dae(reconstruction)
    g = torch.Generator().manual_seed(1)
    if sparse:
        x_clean = binary_batch(3, 6, 0.5, seed=5).double()
        x_noisy = x_clean.clone()
        x_noisy[0, 0], x_noisy[1, 1] = 1 - x_noisy[0, 0], 1 - x_noisy[1, 1]
        args = (x_clean.to_sparse_csr(), x_noisy.to_sparse_csr())
    else:
        x_clean = torch.rand(3, 6, generator=g, dtype=torch.float64) * (
            3 if reconstruction == "softplus-mse" else 1
        )
        args = (x_clean, masking(x_clean, 0.3, g))
    params = dict(dae.named_parameters())
    assert set(params) == set(PARAMS)

    def loss(*tensors):
        return functional_call(dae, dict(zip(PARAMS, tensors)), args)[0]

    inputs = tuple(params[n].detach().clone().requires_grad_() for n in PARAMS)
    assert gradcheck(loss, inputs, eps=1e-6, atol=1e-5)


def relu_code(dae, x_noisy):
    return torch.relu(x_noisy @ dae.encoder.weight + dae.encoder.bias)


def hand_loss(dae, x_clean, x_noisy):
    logits = relu_code(dae, x_noisy) @ dae.decoder_weight.t() + dae.decoder_bias
    if dae.reconstruction == "sigmoid-ce":
        s = torch.sigmoid(logits)
        per_entry = -(x_clean * torch.log(s) + (1 - x_clean) * torch.log(1 - s))
    else:
        per_entry = (torch.log1p(torch.exp(logits)) - x_clean) ** 2
    return per_entry, per_entry.sum() / x_clean.shape[0]


@pytest.mark.parametrize("reconstruction", ["sigmoid-ce", "softplus-mse"])
def test_full_loss_equals_hand_computation(reconstruction):
    dae = double_dae(reconstruction, n_in=10, n_hidden=5)
    x_clean = binary_batch(4, 10, 0.4, seed=6, empty_rows=(3,)).double()
    x_noisy = binary_batch(4, 10, 0.4, seed=7).double()
    _, expected = hand_loss(dae, x_clean, x_noisy)
    with torch.no_grad():
        loss_sparse, h = dae(x_clean.to_sparse_csr(), x_noisy.to_sparse_csr(), sample_rate=1.0)
        loss_dense, h_dense = dae(x_clean, x_noisy)
    torch.testing.assert_close(loss_sparse, expected.detach())
    torch.testing.assert_close(loss_dense, expected.detach())
    torch.testing.assert_close(h, relu_code(dae, x_noisy).detach())
    torch.testing.assert_close(h_dense, h)


def test_tiny_sample_rate_keeps_exactly_each_reviews_active_columns():
    """With sample_rate -> 0 no inactive column is drawn: the loss is the sum over each review's
    own active entries (1 in its clean or its corrupted row), not over the batch's active columns."""
    torch.manual_seed(0)
    dae = DenoisingAutoencoder(Layer(40, 6))
    x_clean = binary_batch(5, 40, 0.1, seed=8)
    x_noisy = binary_batch(5, 40, 0.1, seed=9)
    active = (x_clean != 0) | (x_noisy != 0)
    assert 0 < active.sum() < active.any(0).sum() * 5  # a review's active columns are not the batch's
    with torch.no_grad():
        loss, _ = dae(
            x_clean.to_sparse_csr(),
            x_noisy.to_sparse_csr(),
            sample_rate=1e-12,
            generator=torch.Generator().manual_seed(0),
        )
        per_entry, _ = hand_loss(dae, x_clean, x_noisy)
    torch.testing.assert_close(loss, per_entry[active].sum() / 5)


@pytest.mark.parametrize("reconstruction", ["sigmoid-ce", "softplus-mse"])
def test_sampled_reconstruction_is_unbiased(reconstruction):
    torch.manual_seed(0)
    dae = DenoisingAutoencoder(Layer(60, 8), reconstruction)
    with torch.no_grad():
        dae.decoder_bias.normal_(0, 1)
    x_clean = binary_batch(4, 60, 0.08, seed=10).to_sparse_csr()
    x_noisy = salt_and_pepper(x_clean, 0.25, torch.Generator().manual_seed(11))
    with torch.no_grad():
        full = dae(x_clean, x_noisy, sample_rate=1.0)[0].double().item()
        draws = torch.tensor(
            [dae(x_clean, x_noisy, 0.3, torch.Generator().manual_seed(s))[0].item() for s in range(2000)],
            dtype=torch.float64,
        )
    se = draws.std().item() / math.sqrt(len(draws))
    assert se > 1e-4 * abs(full)  # the draws really vary
    assert abs(draws.mean().item() - full) < 4 * se, (draws.mean().item(), full, se)
    # ... and a biased estimator (no 1/sample_rate reweighting) would be far off
    assert abs(full) > 0 and draws.min() < full < draws.max()


def test_tied_decoder_is_the_encoders_weight_and_its_gradient_is_both_parts():
    dae = double_dae("softplus-mse")
    tied = DenoisingAutoencoder(dae.encoder, "softplus-mse", tied=True).double()
    with torch.no_grad():
        tied.decoder_bias.copy_(dae.decoder_bias)
    assert tied.decoder_weight is None
    assert set(dict(tied.named_parameters())) == {"encoder.weight", "encoder.bias", "decoder_bias"}
    g = torch.Generator().manual_seed(2)
    x_clean = torch.rand(3, 6, generator=g, dtype=torch.float64) * 3
    x_noisy = masking(x_clean, 0.3, g)
    # the same loss as an untied decoder whose weights equal the encoder's
    with torch.no_grad():
        dae.decoder_weight.copy_(dae.encoder.weight)
    torch.testing.assert_close(tied(x_clean, x_noisy)[0], dae(x_clean, x_noisy)[0])
    # one matrix gets the encoder's and the decoder's gradients: the untied pair's sum
    tied(x_clean, x_noisy)[0].backward()
    tied_grad = tied.encoder.weight.grad.clone()  # the encoder is shared: keep its gradient
    dae.zero_grad()
    dae(x_clean, x_noisy)[0].backward()
    torch.testing.assert_close(tied_grad, dae.encoder.weight.grad + dae.decoder_weight.grad)
    names = ("encoder.weight", "encoder.bias", "decoder_bias")
    params = dict(tied.named_parameters())
    inputs = tuple(params[n].detach().clone().requires_grad_() for n in names)
    assert gradcheck(
        lambda *t: functional_call(tied, dict(zip(names, t)), (x_clean, x_noisy))[0],
        inputs,
        eps=1e-6,
        atol=1e-5,
    )
    sparse_layer = Layer(6, 4)
    sparse_layer.sparse_grad = True
    with pytest.raises(ValueError, match="tied decoder needs an encoder with dense gradients"):
        DenoisingAutoencoder(sparse_layer, tied=True)


def test_autoencoder_construction():
    torch.manual_seed(0)
    layer = Layer(7, 3)
    dae = DenoisingAutoencoder(layer)
    assert dae.encoder is layer
    assert torch.equal(dae.decoder_weight, layer.weight)
    assert dae.decoder_weight.data_ptr() != layer.weight.data_ptr()  # untied after init
    assert torch.all(dae.decoder_bias == 0) and dae.decoder_bias.shape == (7,)
    sign = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0])  # inputs flipped by the layer below
    assert torch.equal(
        DenoisingAutoencoder(layer, input_sign=sign).decoder_weight, layer.weight * sign[:, None]
    )
    with pytest.raises(ValueError, match="reconstruction"):
        DenoisingAutoencoder(layer, "mse")


# ---------------------------------------------------------------------------------------------
# corruption


def test_salt_and_pepper_output_is_binary_csr_and_noise_zero_is_identity():
    dense = binary_batch(10, 30, 0.2, seed=12, empty_rows=(4,))
    x = dense.to_sparse_csr()
    y = salt_and_pepper(x, 0.0, torch.Generator().manual_seed(0))
    assert y.layout == torch.sparse_csr and torch.equal(y.to_dense(), dense)
    y = salt_and_pepper(x, 0.5, torch.Generator().manual_seed(0))
    assert y.layout == torch.sparse_csr and y.shape == x.shape
    assert torch.all(y.values() == 1)
    assert torch.all(y.to_dense()[4] == 0)  # no ones, no salt
    cols, crow = y.col_indices(), y.crow_indices()
    for r in range(10):  # sorted, unique columns per row
        row_cols = cols[crow[r] : crow[r + 1]]
        assert torch.all(row_cols[1:] > row_cols[:-1])
    again = salt_and_pepper(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again.to_dense(), y.to_dense())  # same generator, same noise
    other = salt_and_pepper(x, 0.5, torch.Generator().manual_seed(1))
    assert not torch.equal(other.to_dense(), y.to_dense())


def test_salt_and_pepper_rates_over_a_large_batch():
    noise = 0.2
    dense = binary_batch(200, 1000, 0.05, seed=13)
    y = salt_and_pepper(dense.to_sparse_csr(), noise, torch.Generator().manual_seed(0)).to_dense()
    ones = dense == 1
    nnz = int(ones.sum())
    switched_off = int((ones & (y == 0)).sum())
    salted = int(((~ones) & (y == 1)).sum())
    sd = math.sqrt(nnz * noise * (1 - noise))
    # A salt falling on a pepper position (prob ~ nnz_row / n_cols = 5%) turns it back on.
    assert abs(switched_off - noise * nnz * (1 - 0.05 * noise)) < 5 * sd
    # Salt: Binomial(nnz_row, noise) per row, ~5% landing on existing ones.
    assert abs(salted - noise * nnz * 0.95) < 5 * sd + 0.02 * noise * nnz
    # in proportion per row: rows with more ones get more salt
    per_row_salt = ((~ones) & (y == 1)).sum(1).float()
    per_row_ones = ones.sum(1).float()
    assert torch.corrcoef(torch.stack([per_row_salt, per_row_ones]))[0, 1] > 0.2


def test_masking_zeroes_about_noise_of_the_entries():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 500, generator=g) + 0.5
    y = masking(x, 0.3, torch.Generator().manual_seed(1))
    zeroed = y == 0
    assert abs(zeroed.float().mean().item() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / x.numel())
    assert torch.equal(y[~zeroed], x[~zeroed])  # kept entries are not rescaled
    assert torch.equal(masking(x, 0.0), x)


def test_input_scale_weights_sparse_and_dense_inputs_alike():
    from textrelu.nn.model import scale_inputs

    dense = (torch.rand(6, 9) < 0.3).float()
    scale = torch.randn(9)
    got = scale_inputs(dense.to_sparse_csr(), scale).to_dense()
    assert torch.allclose(got, dense * scale) and torch.allclose(scale_inputs(dense, scale), dense * scale)
    net = SparseRectifierNet(n_features=9, hidden=(4,), input_scale=True)
    net.input_scale.copy_(scale)
    net.eval()
    assert torch.allclose(net(dense.to_sparse_csr())[0], net(dense)[0], atol=1e-6)
    assert "input_scale" in net.state_dict()
    assert "input_scale" not in SparseRectifierNet(n_features=9, hidden=(4,)).state_dict()


def test_the_core_implements_every_name_the_settings_offer():
    """settings.py declares the choices without importing torch; the core maps each to code."""
    from textrelu import settings
    from textrelu.nn.train import DENSE_OPTIMIZERS, SPARSE_OPTIMIZERS

    assert tuple(ACTIVATION_FNS) == settings.ACTIVATIONS
    assert tuple(DENSE_OPTIMIZERS) == tuple(SPARSE_OPTIMIZERS) == settings.OPTIMIZERS
    for reconstruction in settings.RECONSTRUCTIONS:
        DenoisingAutoencoder(Layer(4, 3), reconstruction)
    with pytest.raises(ValueError):
        DenoisingAutoencoder(Layer(4, 3), "other")


# ---------------------------------------------------------------------------------------------
# the compiled loops of sparse pre-training, against torch ops and the dense computation


def random_sparse(n_rows, n_cols, density, seed):
    return binary_batch(n_rows, n_cols, density, seed=seed, empty_rows=(1,)).to_sparse_csr()


def test_sampling_plan_keeps_each_reviews_active_entries_and_the_drawn_columns():
    x_clean, x_noisy = random_sparse(6, 50, 0.15, seed=20), random_sparse(6, 50, 0.05, seed=21)
    plan = SamplingPlan.draw(x_clean, x_noisy, 0.2, torch.Generator().manual_seed(3))
    drawn = torch.rand(50, generator=torch.Generator().manual_seed(3)) < 0.2
    clean, noisy = x_clean.to_dense().bool(), x_noisy.to_dense().bool()
    expected = {}
    for i in range(6):
        for c in range(50):
            if clean[i, c] or noisy[i, c]:
                expected[i, c] = (float(clean[i, c]), 1.0)
            elif drawn[c]:
                expected[i, c] = (0.0, 5.0)
    cols = plan.columns[plan.slot]
    got = {
        (int(r), int(c)): (float(t), float(w))
        for r, c, t, w in zip(plan.row, cols, plan.target, plan.weight, strict=True)
    }
    assert plan.block_weight == pytest.approx(5.0)
    assert set(plan.block.tolist()).isdisjoint(cols.tolist())
    assert not (clean | noisy)[:, plan.block].any()  # block: drawn columns no review holds
    got.update({(i, int(c)): (0.0, 5.0) for i in range(6) for c in plan.block})
    assert got == expected and len(plan.row) + 6 * len(plan.block) == len(expected)  # each entry once
    assert len(plan.block) > 0 and (plan.weight == 5.0).any()  # both kinds of drawn columns
    assert torch.equal(plan.block, plan.block.sort().values)
    assert torch.equal(plan.columns, plan.columns.unique())  # distinct and ascending
    assert torch.equal(
        plan.slot, torch.repeat_interleave(torch.arange(len(plan.columns)), plan.col_ptr.diff())
    )
    for k in range(len(plan.columns)):  # rows ascending within a column
        rows = plan.row[plan.col_ptr[k] : plan.col_ptr[k + 1]]
        assert torch.equal(rows, rows.sort().values)


@pytest.mark.parametrize("sparse_grad", [True, False])
@pytest.mark.parametrize("tied", [False, True])
def test_compiled_decoder_matches_torch_ops_and_the_dense_product(sparse_grad, tied):
    """The CPU loops (decode_entries) and the torch ops that a GPU runs give the same outputs at
    the plan's entries as the full product, and the same gradients."""
    if tied and sparse_grad:
        pytest.skip("a tied decoder takes dense gradients")
    torch.manual_seed(0)
    encoder = Layer(300, 16)
    encoder.sparse_grad = sparse_grad
    dae = DenoisingAutoencoder(encoder, tied=tied, input_sign=torch.where(torch.rand(300) < 0.5, -1.0, 1.0))
    with torch.no_grad():
        dae.decoder_bias.normal_()
    x_clean = random_sparse(7, 300, 0.05, seed=22)
    x_noisy = salt_and_pepper(x_clean, 0.25, torch.Generator().manual_seed(4))
    plan = SamplingPlan.draw(x_clean, x_noisy, 0.1, torch.Generator().manual_seed(5))
    h = torch.relu(torch.randn(7, 16)).requires_grad_()
    upstream, upstream_block = torch.randn(len(plan.row)), torch.randn(7, len(plan.block))
    assert len(plan.block) > 0
    results = []
    for compiled in (True, False):
        dae.zero_grad()
        h.grad = None
        entries, block = dae.decode_entries(h, plan, compiled=compiled)
        ((entries * upstream).sum() + (block * upstream_block).sum()).backward()
        weight = dae.encoder.weight if tied else dae.decoder_weight
        assert weight.grad.is_sparse == sparse_grad
        if sparse_grad:  # one row per kept column
            kept = torch.cat([plan.columns, plan.block])
            assert torch.equal(weight.grad._indices()[0].sort().values, kept.sort().values)
        grad_w = weight.grad.to_dense() if sparse_grad else weight.grad
        grads = (h.grad.clone(), grad_w.clone(), dae.decoder_bias.grad.clone())
        results.append((entries.detach(), block.detach(), *grads))
    full = dae.decode(h.detach())
    torch.testing.assert_close(results[0][0], full[plan.row, plan.columns[plan.slot]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[0][1], full[:, plan.block], rtol=1e-5, atol=1e-5)
    for compiled, reference in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(compiled, reference, rtol=1e-5, atol=1e-5)


def test_compiled_sparse_affine_matches_torch_ops():
    torch.manual_seed(0)
    x = random_sparse(9, 400, 0.04, seed=23)
    weight = torch.randn(400, 12, requires_grad=True)
    bias = torch.randn(12, requires_grad=True)
    upstream = torch.randn(9, 12)
    results = []
    distinct = x.col_indices().unique(return_inverse=True)  # found beforehand, as for a GPU batch
    for compiled, known in ((True, None), (False, None), (False, distinct)):
        weight.grad = bias.grad = None
        out = sparse_affine(x, weight, bias, sparse_grad=True, compiled=compiled, distinct=known)
        (out * upstream).sum().backward()
        assert weight.grad.is_sparse
        assert torch.equal(weight.grad._indices()[0], x.col_indices().unique())  # one row per term
        results.append((out.detach(), weight.grad.to_dense(), bias.grad.clone()))
    torch.testing.assert_close(results[0][0], x.to_dense() @ weight.detach() + bias.detach())
    for torch_ops in results[1:]:
        for compiled, reference in zip(results[0], torch_ops, strict=True):
            torch.testing.assert_close(compiled, reference)


def test_reusable_rows_are_handed_out_again_only_once_free():
    a = reusable_rows("test", 4, 3)
    pointer = a.data_ptr()
    b = reusable_rows("test", 4, 3)  # a is still in use
    assert b.data_ptr() != pointer
    del a, b
    c = reusable_rows("test", 2, 3)
    assert c.shape == (2, 3) and c.dtype == torch.float32
    assert reusable_rows("test", 10**4, 3).shape == (10**4, 3)  # c in use, and too small anyway


def test_reusable_rows_do_not_grow_while_busy():
    """A buffer still in use is replaced by one of the same capacity, step after step: the
    replacement once grew by a quarter each time (27 GB asked for in a 5-fold search)."""
    held = [reusable_rows("busy", 100, 10) for _ in range(200)]  # each still in use
    assert len({t.data_ptr() for t in held}) == 200
    assert model._REUSABLE.busy.size <= 1.25 * 100 * 10


def test_row_adam_trusts_distinct_rows_and_matches_the_compiled_loop():
    """distinct_rows=True (what the GPU runs: no sort) gives the compiled loop's steps on the
    gradients the sparse layers make, one row per distinct term."""
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(200, 8)) for _ in range(2)]
    weights[1].data.copy_(weights[0].data)
    opts = [
        RowAdam([weights[0]], lr=0.01),
        RowAdam([weights[1]], lr=0.01, compiled=False, distinct_rows=True),
    ]
    for step in range(4):
        x = random_sparse(5, 200, 0.05, seed=30 + step)
        for w, opt in zip(weights, opts, strict=True):
            opt.zero_grad()
            sparse_affine(x, w, torch.zeros(8), sparse_grad=True).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(weights[0], weights[1])
