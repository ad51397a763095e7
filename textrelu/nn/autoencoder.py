"""Denoising autoencoders for greedy layer-wise pre-training (the paper's unsupervised stage).

One autoencoder per hidden layer: it corrupts its input, encodes it with that layer (h = act(x~ W + b))
and reconstructs the clean input from h with its own decoder. Two reconstructions, as in the paper:
- "sigmoid-ce": sigmoid outputs with cross-entropy against the input scaled into [0, 1]
  (the paper's choice for text; binary bag-of-words inputs are already in [0, 1]);
- "softplus-mse": softplus outputs with squared error against the raw input (the paper's choice
  for images with rectifier and softplus units).

Corruption: on a sparse binary first layer, salt-and-pepper (`salt_and_pepper`); on dense inputs,
masking noise (each input set to 0 with probability `noise`).

Reconstruction sampling (Dauphin, Glorot & Bengio 2011) for sparse binary inputs: instead of all
n_features outputs of a review, reconstruct the columns that are 1 in its clean or its corrupted
row (weight 1) plus the columns of a random set drawn once per batch, each column with probability
`sample_rate`, where they are 0 in both (weight 1 / sample_rate). Every (review, column) term of
the full cost is then kept with a known probability and reweighted by its inverse, so the sampled
cost is an unbiased estimate of the full one. A review costs its own ~(terms + salt + sample_rate x
n_features) outputs, not those of the whole batch's active columns (thousands at 20,000 terms).

Where the sampled terms are computed: the plan (which entries, `SamplingPlan`) is drawn on the
host, so that its sizes are known there without a GPU synchronization; on the CPU one compiled
loop computes just the kept entries (`nn._kernels.decode_entries`) and their gradients, one row of
the decoder per kept column; on other devices (and for float64) one matrix product over the kept
columns gives every row's outputs there, of which the entries are picked (the same function).
"""

from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from textrelu.nn.model import Layer, gather_rows, reusable_rows
from textrelu.settings import RECONSTRUCTIONS, Pretraining

# Reconstruction sampling when pre-training is given no rate: 1% of the zero columns, and at least
# 200 a review (all below 200 terms). At 20,000 terms (200 columns) the fine-tuned accuracy after
# pre-training matched full reconstruction's at 14x its speed (docs/performance.md, "Reconstruction
# sampling keeps the representation"); at 100,000 terms 1% is 1,000 columns.
DEFAULT_SAMPLE_RATE, MIN_SAMPLED_COLUMNS = 0.01, 200


def sample_rate_for(n_in: int, rate: float | None) -> float:
    """The reconstruction sampling rate of a sparse input layer of n_in columns: `rate` when given."""
    return rate if rate is not None else min(1.0, max(DEFAULT_SAMPLE_RATE, MIN_SAMPLED_COLUMNS / n_in))


def salt_and_pepper(x: torch.Tensor, noise: float, generator=None) -> torch.Tensor:
    """Corrupt a binary sparse CSR batch: each 1 is switched off with probability `noise`, and as
    many 0s as that in expectation (Binomial(nnz_row, noise) per row) are switched on at random.

    Scaling the salt to each row's number of ones keeps the corruption in proportion on inputs that
    are 99% zeros: salting a share of all zeros would bury a review's ~100 terms under noise.
    """
    crow, col = x.crow_indices(), x.col_indices()
    n_rows, n_cols = x.shape
    row = torch.repeat_interleave(torch.arange(n_rows, device=col.device), crow.diff())
    keep = torch.rand(col.shape, generator=generator, device=col.device) >= noise
    n_salt = torch.binomial(
        crow.diff().float(), torch.full((n_rows,), float(noise), device=col.device), generator=generator
    ).long()
    salt_row = torch.repeat_interleave(torch.arange(n_rows, device=col.device), n_salt)
    salt_col = torch.randint(n_cols, salt_row.shape, generator=generator, device=col.device)
    keys = torch.cat([row[keep] * n_cols + col[keep], salt_row * n_cols + salt_col]).unique()  # sorted
    rows, cols = keys // n_cols, keys % n_cols
    new_crow = torch.zeros(n_rows + 1, dtype=torch.long, device=col.device)
    new_crow[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    return torch.sparse_csr_tensor(
        new_crow, cols, torch.ones(len(cols), device=col.device), size=x.shape, check_invariants=False
    )


def masking(x: torch.Tensor, noise: float, generator=None) -> torch.Tensor:
    """Masking noise on a dense batch: each input set to 0 with probability `noise`."""
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= noise
    return x * keep


class DenoisingAutoencoder(nn.Module):
    """Encoder = a hidden layer of the network (shared, trained in place); decoder of its own.

    The decoder's weights start as a copy of the encoder's and are trained apart from them, or,
    with `tied`, are the encoder's own (W' = W^T, as in Vincent et al.'s denoising autoencoders):
    one matrix gets both gradients. A tied encoder with sparse gradients is not supported.

    input_sign: (n_in,) the signs (+1/-1) that the encoder's inputs carry and the reconstruction
    target does not: under the symmetry trick the layer below multiplies half of its outputs by -1,
    and softplus reconstructs the outputs before that flip. The decoder then starts as (or, tied,
    is) the encoder's weights with those inputs' rows negated, so that it maps the code back to an
    input the way the encoder read it; a plain copy would start half of the decoder with the wrong
    sign, and training killed a third of the units above (measured on MNIST's second layer).
    With it, the autoencoder is the one without the trick, its encoder's rows negated.
    """

    def __init__(
        self,
        encoder: Layer,
        reconstruction: str = Pretraining.reconstruction,
        tied: bool = False,
        input_sign: torch.Tensor | None = None,
    ):
        super().__init__()
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {reconstruction!r}")
        if tied and encoder.sparse_grad:
            raise ValueError("a tied decoder needs an encoder with dense gradients")
        self.encoder, self.reconstruction, self.tied = encoder, reconstruction, tied
        self.register_buffer(
            "input_sign",
            None
            if input_sign is None
            else input_sign.detach().to(encoder.weight.dtype).reshape(-1, 1).clone(),
        )
        # (n_in, n_hidden): a sampled reconstruction gathers the rows of the columns it keeps.
        self.decoder_weight = None if tied else nn.Parameter(self._unflip(encoder.weight.detach()).clone())
        self.decoder_bias = nn.Parameter(torch.zeros(encoder.n_in))

    def _unflip(self, weight: torch.Tensor) -> torch.Tensor:
        """The encoder's (n_in, n_hidden) weights as seen from the unflipped inputs."""
        return weight if self.input_sign is None else weight * self.input_sign

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Pre-activation reconstruction (batch, n_in)."""
        weight = self._unflip(self.encoder.weight) if self.tied else self.decoder_weight  # (n_in, n_hidden)
        return torch.addmm(self.decoder_bias, h, weight.t())

    def reconstruction_loss(self, logits, target, weight=None, n_rows=None) -> torch.Tensor:
        """Summed over inputs, averaged over the batch (n_rows, else logits' rows); `weight` (per
        column, or per entry of a sampled reconstruction) reweights samples."""
        if self.reconstruction == "sigmoid-ce":
            per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            per_entry = (F.softplus(logits) - target) ** 2
        if weight is not None:
            per_entry = per_entry * weight
        return per_entry.sum() / (logits.shape[0] if n_rows is None else n_rows)

    def forward(
        self,
        x_clean: torch.Tensor,
        x_noisy: torch.Tensor,
        sample_rate: float | None = None,
        generator=None,
    ):
        """Loss of reconstructing x_clean from the code of x_noisy, and the code h.

        x_clean and x_noisy: (batch, n_in), both sparse CSR or both dense (already scaled for
        sigmoid-ce). Sampling (`sample_rate` below 1; None: full reconstruction) applies to sparse
        inputs only; it is planned where the batches are
        (the host, in the training loop: `generator` must live there) and the inputs are moved to
        the autoencoder's device.
        """
        device = self.decoder_bias.device
        sampled = x_clean.layout == torch.sparse_csr and sample_rate is not None and sample_rate < 1.0
        plan = SamplingPlan.draw(x_clean, x_noisy, sample_rate, generator) if sampled else None
        distinct = None
        if self.encoder.sparse_grad and device.type != "cpu" and x_noisy.device.type == "cpu":
            distinct = tuple(t.to(device) for t in x_noisy.col_indices().unique(return_inverse=True))
        x_clean, x_noisy = x_clean.to(device, non_blocking=True), x_noisy.to(device, non_blocking=True)
        h = self.encoder(x_noisy, distinct)  # (batch, n_hidden)
        if plan is None:
            dense = x_clean.to_dense() if x_clean.layout == torch.sparse_csr else x_clean
            return self.reconstruction_loss(self.decode(h), dense), h
        plan = plan.to(device)
        entries, block = self.decode_entries(h, plan)
        n = h.shape[0]
        loss = self.reconstruction_loss(entries, plan.target, plan.weight, n_rows=n)
        return loss + self.reconstruction_loss(block, torch.zeros_like(block), plan.block_weight, n_rows=n), h

    def decode_entries(self, h: torch.Tensor, plan: "SamplingPlan", compiled: bool | None = None):
        """Pre-activation reconstruction at the plan's entries, (n_entries,), and at its block
        columns for every row, (batch, n_block).

        compiled: the CPU loops (None: for CPU float32 tensors); else one product over all the
        kept columns (what a GPU runs). With sparse gradients the decoder's gradient holds one row
        per kept column.
        """
        weight = self._unflip(self.encoder.weight) if self.tied else self.decoder_weight  # (n_in, n_hidden)
        sparse = self.encoder.sparse_grad and not self.tied
        if compiled is None:
            compiled = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (h, weight))
        if compiled:
            return _DecodeEntries.apply(h, weight, self.decoder_bias, plan, sparse)
        columns = torch.cat([plan.columns, plan.block])  # distinct
        kept = gather_rows(weight, columns, sparse)  # (n_kept, n_hidden)
        out = torch.addmm(self.decoder_bias[columns], h, kept.t())  # (batch, n_kept)
        return out[plan.row, plan.slot], out[:, len(plan.columns) :]


class SamplingPlan(NamedTuple):
    """What a sampled reconstruction keeps of one batch (nn._kernels.sampling_plan).

    Entries, grouped by column: columns (n_cols,) distinct, ascending; the entries of columns[k]
    are col_ptr[k]:col_ptr[k + 1] (by ascending row); per entry: row (review), slot (= k),
    target (the clean value, or 0) and weight (1, or 1 / sample_rate). block: the drawn columns
    that no review of the batch holds, reconstructed for every row with target 0 and weight
    block_weight (1 / sample_rate).
    """

    columns: torch.Tensor
    col_ptr: torch.Tensor
    row: torch.Tensor
    slot: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    block: torch.Tensor
    block_weight: float

    @staticmethod
    def draw(x_clean, x_noisy, sample_rate: float, generator=None) -> "SamplingPlan":
        """The plan for one batch, drawn on x_clean's device (CPU tensors: no GPU sync)."""
        from textrelu.nn._kernels import sampling_plan  # numba, loaded on first use

        n_in = x_clean.shape[1]
        drawn = torch.rand(n_in, generator=generator, device=x_clean.device) < sample_rate
        sampled = torch.nonzero(drawn).squeeze(1).cpu().numpy()
        clean, noisy = x_clean.cpu(), x_noisy.cpu()
        parts = sampling_plan(
            clean.crow_indices().numpy(),
            clean.col_indices().numpy(),
            clean.values().float().numpy(),
            noisy.crow_indices().numpy(),
            noisy.col_indices().numpy(),
            sampled,
            np.full(n_in, -1, dtype=np.int64),
            np.float32(1.0 / sample_rate),
        )
        columns, col_ptr, row, target, weight, block = (torch.from_numpy(a) for a in parts)
        slot = torch.repeat_interleave(torch.arange(len(columns)), col_ptr.diff())
        return SamplingPlan(columns, col_ptr, row, slot, target, weight, block, 1.0 / sample_rate)

    def to(self, device) -> "SamplingPlan":
        return SamplingPlan(*(t.to(device, non_blocking=True) for t in self[:-1]), self.block_weight)


class _DecodeEntries(torch.autograd.Function):
    """decode_entries on the CPU: the compiled loops of nn._kernels for the entries, a matrix
    product for the block; the decoder's gradient has the entry columns' rows, then the block's."""

    @staticmethod
    def forward(ctx, h, weight, bias, plan, sparse):
        from textrelu.nn._kernels import decode_entries  # numba, loaded on first use

        h, weight, bias = h.detach().contiguous(), weight.detach().contiguous(), bias.detach()
        entries = torch.empty(len(plan.row))
        decode_entries(
            h.numpy(), weight.numpy(), bias.numpy(), plan.columns.numpy(),
            plan.col_ptr.numpy(), plan.row.numpy(), entries.numpy(),
        )  # fmt: skip
        block_weight = weight.index_select(0, plan.block)  # (n_block, n_hidden), a few hundred rows
        block = torch.addmm(bias[plan.block], h, block_weight.t())
        ctx.save_for_backward(h, weight, block_weight)
        ctx.plan, ctx.sparse, ctx.n_in = plan, sparse, bias.shape[0]
        return entries, block

    @staticmethod
    def backward(ctx, grad_entries, grad_block):
        from textrelu.nn._kernels import decode_entries_backward

        h, weight, block_weight = ctx.saved_tensors
        plan = ctx.plan
        n_cols = len(plan.columns)
        grad_h = torch.zeros_like(h)
        grad_rows = reusable_rows("decode_entries", n_cols + len(plan.block), h.shape[1])
        grad_b = torch.empty(n_cols)
        decode_entries_backward(
            h.numpy(), weight.numpy(), plan.columns.numpy(), plan.col_ptr.numpy(), plan.row.numpy(),
            grad_entries.contiguous().numpy(), grad_h.numpy(), grad_rows[:n_cols].numpy(), grad_b.numpy(),
        )  # fmt: skip
        grad_h.addmm_(grad_block, block_weight)
        torch.mm(grad_block.t(), h, out=grad_rows[n_cols:])
        columns = torch.cat([plan.columns, plan.block])  # distinct
        if ctx.sparse:
            grad_w = torch.sparse_coo_tensor(
                columns.unsqueeze(0), grad_rows, weight.shape, check_invariants=False
            )
        else:
            grad_w = torch.zeros_like(weight).index_copy_(0, columns, grad_rows)
        grad_bias = torch.zeros(ctx.n_in).index_copy_(0, columns, torch.cat([grad_b, grad_block.sum(0)]))
        return grad_h, grad_w, grad_bias, None, None
