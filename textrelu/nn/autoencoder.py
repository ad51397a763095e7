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
n_features outputs, reconstruct the columns that are 1 somewhere in the clean or corrupted batch
(weight 1: every entry of those columns is kept) plus each other column with probability
`sample_rate` (weight 1 / sample_rate). Every (row, column) term of the full cost is then kept with a
known probability and reweighted by its inverse, so the sampled cost is an unbiased estimate of
the full one.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from textrelu.nn.model import Layer
from textrelu.settings import RECONSTRUCTIONS, Pretraining


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

    def decode(self, h: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activation reconstruction (batch, n_in), or (batch, len(columns)) for a subset."""
        weight = self._unflip(self.encoder.weight) if self.tied else self.decoder_weight  # (n_in, n_hidden)
        if columns is None:
            return torch.addmm(self.decoder_bias, h, weight.t())
        # embedding() rather than indexing: with sparse_grad the decoder's gradient holds only the
        # kept rows, so its update costs O(n_kept * n_hidden), not O(n_in * n_hidden).
        weight = F.embedding(columns, weight, sparse=self.encoder.sparse_grad)
        return torch.addmm(self.decoder_bias[columns], h, weight.t())

    def reconstruction_loss(self, logits, target, weight=None) -> torch.Tensor:
        """Summed over inputs, averaged over the batch; `weight` (per column) reweights samples."""
        if self.reconstruction == "sigmoid-ce":
            per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            per_entry = (F.softplus(logits) - target) ** 2
        if weight is not None:
            per_entry = per_entry * weight
        return per_entry.sum() / logits.shape[0]

    def forward(
        self,
        x_clean: torch.Tensor,
        x_noisy: torch.Tensor,
        sample_rate: float = Pretraining.sample_rate,
        generator=None,
    ):
        """Loss of reconstructing x_clean from the code of x_noisy, and the code h.

        x_clean and x_noisy: (batch, n_in), both sparse CSR or both dense (already scaled for
        sigmoid-ce). Sampling applies to sparse inputs only.
        """
        h = self.encoder(x_noisy)  # (batch, n_hidden)
        if x_clean.layout != torch.sparse_csr:
            return self.reconstruction_loss(self.decode(h), x_clean), h
        if sample_rate >= 1.0:
            return self.reconstruction_loss(self.decode(h), x_clean.to_dense()), h
        n_in = self.encoder.n_in
        active = torch.zeros(n_in, dtype=torch.bool, device=h.device)
        active[x_clean.col_indices()] = True
        active[x_noisy.col_indices()] = True
        sampled = ~active & (torch.rand(n_in, generator=generator, device=h.device) < sample_rate)
        columns = torch.nonzero(active | sampled).squeeze(1)  # (n_kept,)
        weight = torch.where(active[columns], 1.0, 1.0 / sample_rate)
        # Dense target only over the kept columns: position of each kept column, then scatter the ones.
        position = torch.full((n_in,), -1, dtype=torch.long, device=h.device)
        position[columns] = torch.arange(len(columns), device=h.device)
        target = _gather_dense(x_clean, position, len(columns))  # (batch, n_kept)
        return self.reconstruction_loss(self.decode(h, columns), target, weight), h


def _gather_dense(x: torch.Tensor, position: torch.Tensor, n_kept: int) -> torch.Tensor:
    """The columns of a sparse CSR batch kept by `position` (-1 = dropped), as a dense matrix."""
    crow, col = x.crow_indices(), x.col_indices()
    row = torch.repeat_interleave(torch.arange(x.shape[0], device=col.device), crow.diff())
    dense = torch.zeros(x.shape[0], n_kept, device=col.device)
    dense[row, position[col]] = x.values()
    return dense
