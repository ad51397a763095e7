"""The model core: stacks of rectifier (or softplus, tanh) layers over sparse or dense inputs.

Nothing here knows about files or text. A batch is a torch tensor: a sparse CSR tensor of binary
bag-of-words rows for text, or a dense tensor for images. Both go through the same `forward`.

    net = SparseRectifierNet(n_features=5000, hidden=(1000,), n_outputs=2)
    outputs, hiddens = net(x)        # x: (batch, 5000) sparse CSR or dense
"""

import functools
import math
import sys
import threading

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from textrelu.settings import Net, softplus_sharpness

# name -> elementwise function; "relu" is the paper's rectifier max(0, x).
ACTIVATION_FNS = {"relu": F.relu, "softplus": F.softplus, "tanh": torch.tanh}


def activation_fn(name: str):
    """An activation by name: one of ACTIVATION_FNS, or "softplus:A" (see nn.softplus_sharpness)."""
    a = softplus_sharpness(name)
    if a is None:
        return ACTIVATION_FNS[name]
    if math.isinf(a):
        return F.relu
    return functools.partial(F.softplus, beta=a)  # (1/a) log(1 + exp(a x))


# Output heads: softmax over classes; one linear unit (regression); softmax over rating values
# whose expectation is the prediction (the paper's rating model). See nn.targets.Target.
HEADS = ("softmax", "regression", "expectation")


def sparse_affine(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    sparse_grad: bool = False,
    compiled: bool | None = None,
    distinct: tuple | None = None,
) -> torch.Tensor:
    """x @ weight + bias, where x may be a sparse CSR batch.

    weight is stored (n_in, n_out) so that a sparse row gathers and sums the rows of its
    non-zero inputs: embedding_bag does exactly that, and its cost follows the number of
    non-zeros, not n_in. With sparse_grad, the weight's gradient is a sparse tensor holding only
    the rows of the batch's non-zero columns, so that a row-wise optimizer (nn.rowadam.RowAdam, SGD)
    updates those rows alone: backward and update then cost O(nnz * n_out) too. The gradient's rows
    are distinct and marked so (coalesced). compiled: with sparse_grad, the compiled CPU loops
    (None: for CPU float32 tensors) instead of torch ops (what a GPU runs). distinct: for those
    torch ops, (x's distinct columns, ascending; each non-zero's position among them), found
    beforehand where x was built (on a GPU, finding them is a sort and a host synchronization).
    """
    if x.layout == torch.sparse_csr:
        if compiled is None:
            compiled = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (weight, x))
        if sparse_grad and compiled:
            return _SparseRowsAffine.apply(x, weight, bias)
        crow, col = x.crow_indices(), x.col_indices()
        if sparse_grad:
            # Gather each of the batch's distinct terms once: the sparse gradient then holds one
            # row per distinct term instead of one per non-zero (a third of the size on reviews).
            col, position = col.unique(return_inverse=True) if distinct is None else distinct
            weight = gather_rows(weight, col, sparse_grad=True)  # (n_distinct, n_out)
            col = position
        # (batch, n_out): sum over each row's non-zeros of value * weight[col]
        out = F.embedding_bag(col, weight, crow[:-1], mode="sum", per_sample_weights=x.values())
        return out + bias
    return torch.addmm(bias, x, weight)


class _SparseRowsAffine(torch.autograd.Function):
    """sparse_affine with sparse_grad on the CPU, by the compiled loops of nn._kernels: the rows
    of the batch's terms are summed where they lie (no gathered copy), and the weight's gradient
    holds one row per distinct term (see _GatherRows)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        from textrelu.nn._kernels import by_column, sparse_rows_forward  # numba, on first use

        crow, col, val = x.crow_indices().numpy(), x.col_indices().numpy(), x.values().numpy()
        parts = by_column(crow, col, val, np.full(weight.shape[0], -1, dtype=np.int64))
        out = torch.empty(x.shape[0], weight.shape[1])
        weight, bias = weight.detach().contiguous(), bias.detach().contiguous()
        sparse_rows_forward(*parts, weight.numpy(), bias.numpy(), out.numpy())
        ctx.parts, ctx.shape = parts, weight.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        from textrelu.nn._kernels import sparse_rows_backward

        columns, col_ptr, row, value = ctx.parts
        grad_rows = reusable_rows("sparse_affine", len(columns), ctx.shape[1])
        sparse_rows_backward(col_ptr, row, value, grad.contiguous().numpy(), grad_rows.numpy())
        grad_w = torch.sparse_coo_tensor(
            torch.from_numpy(columns).unsqueeze(0),
            grad_rows,
            ctx.shape,
            is_coalesced=True,
            check_invariants=False,
        )
        return None, grad_w, grad.sum(0)


# Per thread and name, a float32 buffer that reusable_rows hands out again once it is free.
_REUSABLE = threading.local()


def reusable_rows(name: str, n_rows: int, width: int) -> torch.Tensor:
    """An uninitialized (n_rows, width) float32 CPU tensor in a buffer kept between calls.

    A fresh allocation of tens of MB (a gradient of thousands of rows, every step) is mapped anew
    and faults in each of its pages: 20 ms for 54 MB on the project's machine, as long as the
    update that follows. The buffer is handed out again only once no tensor uses it any more (the
    optimizer has dropped last step's gradient); else a new one is made."""
    pool = _REUSABLE.__dict__
    array = pool.get(name)
    size = n_rows * width
    # references when free: the pool's, `array`'s and getrefcount's own argument
    if array is None or array.size < size or sys.getrefcount(array) > 3:
        capacity = size
        if array is not None and array.size < size:  # outgrown: a quarter to spare
            capacity = max(size, int(1.25 * array.size))
        elif array is not None:  # busy: one of its own size (growth would compound over busy steps)
            capacity = array.size
        array = pool[name] = np.empty(capacity, np.float32)
    return torch.from_numpy(array[:size].reshape(n_rows, width))


class _GatherRows(torch.autograd.Function):
    """weight[rows] for distinct, ascending rows; the gradient is a sparse COO tensor of exactly
    those rows, so that RowAdam(distinct_rows=True) updates them without sorting them again (on a
    GPU, finding the distinct rows of a gradient is a sort and a host synchronization)."""

    @staticmethod
    def forward(ctx, weight, rows):
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        return weight.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad):
        (rows,) = ctx.saved_tensors
        sparse = torch.sparse_coo_tensor(
            rows.unsqueeze(0), grad, ctx.shape, is_coalesced=True, check_invariants=False
        )
        return sparse, None


def gather_rows(weight: torch.Tensor, rows: torch.Tensor, sparse_grad: bool) -> torch.Tensor:
    """weight[rows] (rows distinct and ascending); with sparse_grad, weight's gradient holds only
    those rows (see _GatherRows), else it is dense."""
    if sparse_grad:
        return _GatherRows.apply(weight, rows)
    return weight.index_select(0, rows)


class Layer(nn.Module):
    """One hidden layer: h = act(x W + b), with the paper's optional symmetry trick."""

    def __init__(self, n_in: int, n_out: int, activation: str = Net.activation, symmetric: bool = False):
        super().__init__()
        self.n_in, self.n_out, self.activation = n_in, n_out, activation
        self.activation_fn = activation_fn(activation)
        # Set by the training loops (train.py) when this layer reads sparse batches of many features.
        self.sparse_grad = False
        self.weight = nn.Parameter(torch.empty(n_in, n_out))  # (n_in, n_out), see sparse_affine
        self.bias = nn.Parameter(torch.zeros(n_out))
        # Symmetry trick (images): half of the outputs are multiplied by -1 for the next layer.
        sign = torch.ones(n_out)
        if symmetric:
            sign[n_out // 2 :] = -1.0
        self.register_buffer("sign", sign)
        self.symmetric = symmetric
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.n_in + self.n_out))  # Glorot & Bengio 2010 uniform
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def pre_activation(self, x: torch.Tensor, distinct: tuple | None = None) -> torch.Tensor:
        return sparse_affine(x, self.weight, self.bias, self.sparse_grad, distinct=distinct)

    def forward(self, x: torch.Tensor, distinct: tuple | None = None) -> torch.Tensor:
        """distinct: x's distinct columns, found beforehand (see sparse_affine)."""
        # The activation itself is what sparsity is measured on; the sign flip only feeds the next layer.
        return self.activation_fn(self.pre_activation(x, distinct))

    def signed(self, h: torch.Tensor) -> torch.Tensor:
        """What the next layer reads: h, with the symmetry trick's sign flip where it is on."""
        return h * self.sign if self.symmetric else h


class SparseRectifierNet(nn.Module):
    """Hidden layers plus an output head; forward returns (outputs, hidden activations).

    hidden=() is the paper's "no hidden layer" baseline: a linear (logistic, or softmax over
    ratings) model on the inputs, trained by the same loops.
    """

    def __init__(
        self,
        n_features: int,
        hidden,
        activation: str = Net.activation,
        n_outputs: int = 2,
        head: str = "softmax",
        symmetric: bool = False,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        input_scale: bool = False,
    ):
        super().__init__()
        activation_fn(activation)  # fails early on an unknown name
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        sizes = [n_features, *hidden]
        self.layers = nn.ModuleList(Layer(a, b, activation, symmetric) for a, b in zip(sizes, sizes[1:]))
        self.output = nn.Linear(sizes[-1], n_outputs)
        self.head, self.dropout, self.input_dropout = head, dropout, input_dropout
        # A fixed weight per input feature (NB log-count ratios, see vectorize.nb_log_ratios),
        # set before training and saved with the model; None: inputs as they come.
        self.register_buffer("input_scale", torch.ones(n_features) if input_scale else None)

    def forward(self, x: torch.Tensor):
        """x: (batch, n_features) sparse CSR or dense -> outputs (batch, n_outputs), [h_1..h_L].

        Dropout (on inputs and hidden layers) and input scaling are not in the paper; they are
        off unless asked for.
        """
        if self.input_scale is not None:
            x = scale_inputs(x, self.input_scale)
        if self.training and self.input_dropout > 0:
            x = drop_inputs(x, self.input_dropout)
        hiddens = []
        for layer in self.layers:
            h = layer(x)  # (batch, n_hidden)
            hiddens.append(h)
            x = F.dropout(layer.signed(h), self.dropout, self.training)
        if x.layout == torch.sparse_csr:  # no hidden layer: a linear model on the sparse inputs
            return sparse_affine(x, self.output.weight.t(), self.output.bias), hiddens
        return self.output(x), hiddens

    def represent(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """What layer `depth` (0-based) reads: x passed through the layers below it, signs applied."""
        for layer in self.layers[:depth]:
            x = layer.signed(layer(x))
        return x


@torch.no_grad()
def merge(nets: list[SparseRectifierNet]) -> SparseRectifierNet:
    """One network whose outputs are the mean of `nets`' outputs (logits for softmax heads): the
    nets' hidden units side by side, upper layers block-diagonal, the output layer averaged.
    Each net's input scale (NB weights) is folded into its first layer, since they differ from
    net to net. The nets share their shape (as the members of a cross-fitted ensemble do)."""
    first, k = nets[0], len(nets)
    sizes = [k * layer.n_out for layer in first.layers]
    merged = SparseRectifierNet(
        first.layers[0].n_in if sizes else first.output.in_features,
        sizes,
        first.layers[0].activation if sizes else Net.activation,
        first.output.out_features,
        first.head,
        dropout=first.dropout,
        input_dropout=first.input_dropout,
    )
    # Each net's weights go into their block of the merged ones in place: the merged first layer
    # is k nets' worth of memory already, and temporaries as large again (the scaled copies and
    # their concatenation) took a 5-fold search of 1000 units on 200,000 NB-weighted terms to a
    # 15.8 GB peak (16,139 MiB), past nn/memory.py's estimate; in place 8.3 GB (search_memory.py).
    for depth, layer in enumerate(merged.layers):
        parts = [net.layers[depth] for net in nets]
        n_in, n_out = parts[0].weight.shape
        if depth > 0:
            layer.weight.zero_()  # block-diagonal: each net's units see only that net's units
        for i, (net, part) in enumerate(zip(nets, parts)):
            rows = slice(None) if depth == 0 else slice(i * n_in, (i + 1) * n_in)
            block = layer.weight[rows, i * n_out : (i + 1) * n_out]
            block.copy_(part.weight)
            if depth == 0 and net.input_scale is not None:
                block.mul_(net.input_scale[:, None])
        layer.bias.copy_(torch.cat([p.bias for p in parts]))
        layer.sign.copy_(torch.cat([p.sign for p in parts]))
        layer.symmetric = parts[0].symmetric
    if sizes:
        merged.output.weight.copy_(torch.cat([net.output.weight for net in nets], 1) / k)
    else:  # a linear model on the inputs: the mean of the (scaled) weights
        merged.output.weight.zero_()
        for net in nets:
            w = net.output.weight
            merged.output.weight.add_(w if net.input_scale is None else w * net.input_scale)
        merged.output.weight.div_(k)
    merged.output.bias.copy_(sum(net.output.bias for net in nets) / k)
    return merged


def with_values(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The sparse CSR batch x with its non-zero values replaced (same rows and columns)."""
    return torch.sparse_csr_tensor(
        x.crow_indices(), x.col_indices(), values, size=x.shape, check_invariants=False
    )


def scale_inputs(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x times one weight per feature (column); for a sparse batch only its non-zeros are touched."""
    if x.layout != torch.sparse_csr:
        return x * scale
    return with_values(x, x.values() * scale[x.col_indices()])


def drop_inputs(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout on the inputs; for a sparse batch only its non-zeros are touched."""
    if x.layout != torch.sparse_csr:
        return F.dropout(x, p, True)
    keep = (torch.rand_like(x.values()) >= p).to(x.values().dtype) / (1 - p)
    return with_values(x, x.values() * keep)


class SparsityMeter:
    """Per hidden layer: the share of activations exactly 0 and the share of units never active."""

    def __init__(self):
        self.zeros, self.total, self.ever_active = [], [], []

    def update(self, hiddens) -> None:
        if not self.zeros:
            self.zeros = [0] * len(hiddens)
            self.total = [0] * len(hiddens)
            self.ever_active = [torch.zeros(h.shape[1], dtype=torch.bool, device=h.device) for h in hiddens]
        for i, h in enumerate(hiddens):
            nonzero = h != 0
            self.zeros[i] += int(h.numel() - nonzero.sum())
            self.total[i] += h.numel()
            self.ever_active[i] |= nonzero.any(0)

    def result(self) -> list[dict]:
        return [
            {"layer": i + 1, "exact_zeros": z / t if t else 0.0, "dead_units": float((~a).float().mean())}
            for i, (z, t, a) in enumerate(zip(self.zeros, self.total, self.ever_active))
        ]
