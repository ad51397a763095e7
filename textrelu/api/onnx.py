"""ONNX export: a model file's network as an ONNX graph over padded term ids, for runtimes
without torch (onnxruntime, and through it C#, Java, JavaScript, ...).

    textrelu export model.pt --format onnx --out model.onnx       # writes model.onnx and model.onnx.json

The graph has one input, `ids`, int64 (batch, length): each row the ascending term ids of a
review (the column indices of `Model.vectorize`), padded on the right with the id n_terms,
whose weight row in the graph is all zeros. Its one output is `probabilities` (batch, classes)
for sentiment, or `rating` (batch,). The first layer is a Gather of the ids' weight rows and
their sum (what embedding_bag does in torch); NB input weights (input_scale) are folded into
those rows, the layers above are the network's own, and the head is the model's (softmax;
expectation: the softmax over the rating values dotted with the values; regression:
de-standardized and clamped to the training range, as Target.predict). The vocabulary, the
tokenizer's settings and the class names go beside it in model.onnx.json: tokenize a review as
textrelu does, look its terms up, sort the ids, pad, run. `ids_matrix` does that from a CSR
matrix.

Needs the extra `pip install textrelu[onnx]` (onnx, onnxruntime, onnxscript: torch's exporter).
"""

import json
import logging
import warnings
from importlib.util import find_spec

import numpy as np
import torch
import torch.nn.functional as F

from textrelu import __version__
from textrelu.errors import BadInput
from textrelu.io import atomic_path, check_outputs
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.targets import Target

EXTRA = "pip install 'textrelu[onnx]'"
NEEDS = ("onnx", "onnxruntime", "onnxscript")


def missing_packages() -> list[str]:
    """The packages of the onnx extra that are not installed."""
    return [name for name in NEEDS if find_spec(name) is None]


class IdsNet(torch.nn.Module):
    """A SparseRectifierNet and its Target as one module from padded term ids to predictions."""

    def __init__(self, net: SparseRectifierNet, target: Target):
        super().__init__()
        first = net.layers[0] if len(net.layers) else None
        # (n_terms, n_out) weight of the first affine map: a hidden layer's, or the output's
        weight = first.weight if first is not None else net.output.weight.t()
        weight = weight.detach().float()
        if net.input_scale is not None:
            weight = weight * net.input_scale[:, None]  # x_j s_j W_j: a binary x_j
        self.n_terms = weight.shape[0]
        self.first_weight = torch.nn.Parameter(torch.cat([weight, weight.new_zeros(1, weight.shape[1])]))
        self.first_bias = torch.nn.Parameter(
            (first.bias if first is not None else net.output.bias).detach().float().clone()
        )
        self.net, self.target = net, target
        if target.head == "expectation":
            self.register_buffer("values", torch.tensor(target.classes, dtype=torch.float32))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: (batch, length) int64, padded with n_terms -> (batch, n_out) of the first map
        x = F.embedding(ids, self.first_weight).sum(1) + self.first_bias
        layers = self.net.layers
        if len(layers):
            h = layers[0].activation_fn(x)
            x = layers[0].signed(h)
            for layer in layers[1:]:
                x = layer.signed(layer(x))
            x = self.net.output(x)  # (batch, n_outputs)
        t = self.target
        if t.head == "softmax":
            return x.softmax(-1)
        if t.head == "expectation":
            return x.softmax(-1) @ self.values  # (batch,)
        return (x.squeeze(-1) * t.std + t.mean).clamp(t.low, t.high)


def ids_matrix(X, pad: int) -> np.ndarray:
    """A CSR matrix's rows as the graph's input: int64 (n_rows, longest row, at least 1), each
    row its ascending column indices, padded on the right with `pad` (= n_terms)."""
    X = X.tocsr(copy=True)
    X.sort_indices()
    lengths = np.diff(X.indptr)
    ids = np.full((X.shape[0], max(1, int(lengths.max(initial=0)))), pad, dtype=np.int64)
    rows = np.repeat(np.arange(X.shape[0]), lengths)
    cols = np.arange(len(X.indices)) - np.repeat(X.indptr[:-1], lengths)  # position within its row
    ids[rows, cols] = X.indices
    return ids


def sidecar(model, onnx_path) -> dict:
    """What a runtime needs beside the graph: the vocabulary, the tokenizer, the classes."""
    v, t = model.vocabulary, model.target
    return {
        "format": "textrelu-onnx",
        "version": __version__,
        "graph": str(onnx_path),
        "input": {"name": "ids", "dtype": "int64", "shape": ["batch", "length"], "pad_id": len(v)},
        "output": {"name": "probabilities", "shape": ["batch", "classes"]}
        if t.head == "softmax"
        else {"name": "rating", "shape": ["batch"]},
        "task": t.task,
        "head": t.head,
        "classes": t.classes if t.head == "softmax" else None,
        "rating_range": None if t.head == "softmax" else [t.low, t.high],
        "tokenizer": {"version": v.tokenizer, "ngrams": v.ngrams, "lowercase": True, "strip_html": True},
        "terms": v.terms,
    }


def export(model, out, opset: int | None = None) -> dict:
    """Write the network of `model` (a model file, or a loaded Model) as ONNX to `out`, and its
    sidecar to `out`.json; return the sidecar."""
    missing = missing_packages()
    if missing:
        raise BadInput(f"ONNX export needs {', '.join(missing)}: {EXTRA}")
    from textrelu.api.model import Model, load

    check_outputs({"--out": out, "the sidecar": f"{out}.json"}, [] if isinstance(model, Model) else [model])
    m = model if isinstance(model, Model) else load(model)
    module = IdsNet(m.net, m.target).eval()
    output = "probabilities" if m.target.head == "softmax" else "rating"
    example = torch.full((2, 3), len(m.vocabulary), dtype=torch.int64)
    example[:, 0] = 0
    quiet_logger = logging.getLogger("torch.onnx")  # notes on torchvision ops this graph never uses
    level = quiet_logger.level
    quiet_logger.setLevel(logging.ERROR)
    try:
        with atomic_path(out) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # from torch.export's internals
            write(module, example, tmp, output, opset)
    finally:
        quiet_logger.setLevel(level)
    info = sidecar(m, out)
    with atomic_path(f"{out}.json") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, ensure_ascii=False)
    return info


def write(module, example, path, output: str, opset: int | None) -> None:
    """torch.onnx.export (the torch.export-based exporter, which needs onnxscript)."""
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=["ids"],
        output_names=[output],
        dynamic_shapes={"ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}},
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
