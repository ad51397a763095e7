"""The network's forward pass without torch, for scoring: numpy, scipy.sparse and two numba loops.

    net = ArrayNet.from_state(model_args, state)   # a checkpoint's arguments and arrays
    outputs = net.forward(x)                        # x: scipy CSR (batch, n_features) -> (batch, n_outputs)

It computes what `model.SparseRectifierNet.forward` computes in eval mode (no dropout), with
every option the model has: the activations (relu, softplus, tanh, softplus:A), the symmetry
trick, input scaling (NB weights), and no hidden layer at all. tests/test_inference.py holds its
outputs to the torch forward within 1e-6. Scoring needs no gradients, so it needs no torch, whose
import alone costs about a second and 200 MB. Two ways, the same numbers:

- plain (`compiled=False`): numpy, a review at a time for the first layer and the matrix product
  for the others; nothing is loaded beyond numpy and scipy: the way for a few reviews;
- compiled (`compiled=True`): numba loops (`_inference_kernels`, loaded from numba's disk cache).
  The first layer adds each of the batch's terms' weight row to the reviews that hold it, in the
  order torch's embedding_bag adds them (3.2x faster than scipy's product on IMDB batches). A
  hidden layer whose input is mostly zeros, as rectifiers make it (85% on IMDB), adds up only the
  weight rows of its non-zero inputs: three times faster than the dense product there. A denser
  input takes numpy's product. The loops run on one thread per core, each on a block of rows,
  and numpy's BLAS on the thread that calls it (`one_blas_thread`).
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from textrelu.errors import BadInput
from textrelu.settings import softplus_sharpness

# A hidden layer's input with at most this share of non-zeros goes through the loop that skips
# zeros, a denser one through the dense product (on IMDB batches the loop added 15 GFLOP/s of
# useful work on one thread, the dense product 28 on two: the loop pays up to about half).
SPARSE_INPUT_MAX_SHARE = 0.3
SOFTPLUS_THRESHOLD = 20.0  # torch's softplus is x itself where beta x exceeds it


def relu(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0, out=h)


def softplus(beta: float):
    """(1/beta) log(1 + exp(beta x)), and x where beta x > 20, as torch's F.softplus computes it."""

    def fn(h: np.ndarray) -> np.ndarray:
        z = h * beta
        with np.errstate(over="ignore"):  # exp of the large z, which np.where drops
            soft = np.log1p(np.exp(z)) / beta
        return np.where(z > SOFTPLUS_THRESHOLD, h, soft)

    return fn


def tanh(h: np.ndarray) -> np.ndarray:
    return np.tanh(h, out=h)


def activation_fn(name: str):
    """The numpy twin of model.activation_fn; BadInput for an unknown name."""
    try:
        a = softplus_sharpness(name)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if a is None:
        return {"relu": relu, "softplus": softplus(1.0), "tanh": tanh}[name]
    return relu if np.isinf(a) else softplus(a)


def kernels():
    """The numba loops, imported on first use."""
    from textrelu.nn import _inference_kernels

    return _inference_kernels


# The loops run on this many threads, each on a block of a batch's rows (they release the GIL):
# the forward pass of 5,120 IMDB reviews took 0.74 s on two, 0.84 on one (busy machine).
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_pool = []


def by_row_blocks(run, n_rows: int) -> None:
    """run(start, stop) over THREADS blocks of the rows [0, n_rows) at once."""
    if THREADS == 1 or n_rows < 64:
        run(0, n_rows)
        return
    if not _pool:
        _pool.append(ThreadPoolExecutor(THREADS, thread_name_prefix="textrelu-forward"))
    bounds = [n_rows * i // THREADS for i in range(THREADS + 1)]
    list(_pool[0].map(run, bounds[:-1], bounds[1:]))


_blas = []


def one_blas_thread():
    """A context in which numpy's BLAS (OpenBLAS) runs on the calling thread only. The compiled
    forward pass runs its own threads, one per core; OpenBLAS's threads would run beside them
    and, after each product, spin for a while waiting for the next (its default): scoring IMDB's
    25,000 test reviews took 3.7 CPU s with them, 2.4 without (docs/performance.md)."""
    if not _blas:
        from threadpoolctl import ThreadpoolController  # a few ms

        _blas.append(ThreadpoolController())
    return _blas[0].limit(limits=1, user_api="blas")


class ArrayNet:
    """A SparseRectifierNet's eval-mode forward pass over numpy arrays (float32)."""

    def __init__(self, layers: list, output: tuple, input_scale: np.ndarray | None):
        self.layers = layers  # [(weight (n_in, n_out), bias, sign or None, activation)]
        self.output_weight, self.output_bias = output  # (n_outputs, n_last), (n_outputs,)
        self.input_scale = input_scale  # (n_features,) or None
        # no hidden layer: the output layer reads the sparse input, rows of its transpose summed
        self.output_rows = np.ascontiguousarray(self.output_weight.T) if not layers else None

    @classmethod
    def from_state(cls, model_args: dict, state: dict) -> "ArrayNet":
        """The network of a checkpoint's `model_args` and arrays (`state_dict`); BadInput when
        they do not fit, as checkpoint.build_net says for the torch network."""
        args = {"activation": "relu", "n_outputs": 2, "head": "softmax", "symmetric": False}
        known = {*args, "n_features", "hidden", "dropout", "input_dropout", "input_scale"}
        if not model_args.keys() <= known or not {"n_features", "hidden"} <= model_args.keys():
            raise BadInput(f"network does not fit its weights: arguments {sorted(model_args)}")
        args.update(model_args)
        act = activation_fn(args["activation"])
        sizes = [args["n_features"], *args["hidden"]]
        expected = {}
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            expected |= {f"layers.{i}.weight": (n_in, n_out), f"layers.{i}.bias": (n_out,)}
            expected[f"layers.{i}.sign"] = (n_out,)
        expected |= {"output.weight": (args["n_outputs"], sizes[-1]), "output.bias": (args["n_outputs"],)}
        if args.get("input_scale"):
            expected["input_scale"] = (args["n_features"],)
        if set(state) != set(expected):
            raise BadInput(
                f"network does not fit its weights: missing {sorted(set(expected) - set(state))[:3]}, "
                f"unexpected {sorted(set(state) - set(expected))[:3]}"
            )
        for name, shape in expected.items():
            if not isinstance(state[name], np.ndarray) or state[name].shape != shape:
                found = getattr(state[name], "shape", type(state[name]).__name__)
                raise BadInput(f"network does not fit its weights: {name} is {found}, not {shape}")
        w = {name: np.asarray(state[name], dtype=np.float32) for name in expected}
        layers = []
        for i in range(len(sizes) - 1):
            sign = w[f"layers.{i}.sign"] if args["symmetric"] else None
            layers.append((w[f"layers.{i}.weight"], w[f"layers.{i}.bias"], sign, act))
        return cls(layers, (w["output.weight"], w["output.bias"]), w.get("input_scale"))

    def forward(self, x: sp.csr_matrix, compiled: bool = True) -> np.ndarray:
        """x: (batch, n_features) scipy CSR -> outputs (batch, n_outputs) float32."""
        x = sp.csr_matrix(x, dtype=np.float32)
        if self.input_scale is not None:  # only the non-zeros are touched
            x = sp.csr_matrix((x.data * self.input_scale[x.indices], x.indices, x.indptr), shape=x.shape)
        if not compiled:
            return self.layer_stack(x, compiled)
        with one_blas_thread():
            return self.layer_stack(x, compiled)

    def layer_stack(self, x: sp.csr_matrix, compiled: bool) -> np.ndarray:
        """`forward` after the input scale."""
        if not self.layers:
            return self.sparse_affine(x, self.output_rows, self.output_bias, compiled)
        h = None
        for i, (weight, bias, sign, act) in enumerate(self.layers):
            if i == 0:
                h = self.sparse_affine(x, weight, bias, compiled)  # (batch, n_hidden)
            else:
                h = self.dense_affine(h, weight, bias, compiled)
            h = act(h)
            if sign is not None:
                h = h * sign
        return h @ self.output_weight.T + self.output_bias

    @staticmethod
    def sparse_affine(x: sp.csr_matrix, weight: np.ndarray, bias: np.ndarray, compiled: bool) -> np.ndarray:
        """x @ weight + bias for a sparse batch, reading only its terms' rows of weight (scipy's
        product reads all of them: a file's whole first layer, to score ten reviews)."""
        out = np.empty((x.shape[0], weight.shape[1]), dtype=np.float32)
        if compiled:
            loop = kernels().sum_rows_by_term

            def block(a: int, b: int) -> None:
                by_term = x[a:b].tocsc()  # each column's rows in order: a review's terms come in order
                loop(by_term.indptr, by_term.indices, by_term.data, weight, bias, out[a:b])

            by_row_blocks(block, len(out))
            return out
        for r in range(x.shape[0]):
            terms = slice(x.indptr[r], x.indptr[r + 1])
            out[r] = (weight[x.indices[terms]] * x.data[terms, None]).sum(axis=0) + bias
        return out

    @staticmethod
    def dense_affine(h: np.ndarray, weight: np.ndarray, bias: np.ndarray, compiled: bool) -> np.ndarray:
        """h @ weight + bias, skipping h's zeros where they are most of it (a rectifier's output)."""
        if compiled and np.count_nonzero(h) <= SPARSE_INPUT_MAX_SHARE * h.size:
            out = np.empty((h.shape[0], weight.shape[1]), dtype=np.float32)
            loop = kernels().sum_nonzero_rows
            by_row_blocks(lambda a, b: loop(h[a:b], weight, bias, out[a:b]), len(out))
            return out
        if compiled:  # numpy's product, a block of rows on each of the pool's threads
            out = np.empty((h.shape[0], weight.shape[1]), dtype=np.float32)
            by_row_blocks(lambda a, b: np.add(h[a:b] @ weight, bias, out=out[a:b]), len(out))
            return out
        return h @ weight + bias
