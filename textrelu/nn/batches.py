"""Training data as torch batches: scipy CSR (text) or dense (images) inputs, optional targets.

Nothing here reads files: `ArrayData` holds arrays already in memory and serves them as torch
tensors, sparse CSR batches staying sparse.
"""

import warnings

import numpy as np
import scipy.sparse as sp
import torch

# torch warns once that sparse CSR is "beta"; the operations used here are stable and tested.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def csr_to_torch(x: sp.csr_matrix, device="cpu") -> torch.Tensor:
    """A scipy CSR batch as a torch sparse CSR tensor; the input is never densified."""
    return torch.sparse_csr_tensor(
        torch.from_numpy(x.indptr.astype(np.int64)),
        torch.from_numpy(x.indices.astype(np.int64)),
        torch.from_numpy(x.data.astype(np.float32, copy=False)),
        size=x.shape,
        device=device,
        check_invariants=False,
    )


class ArrayData:
    """Inputs (scipy CSR or dense array) and optional targets, served as torch batches."""

    def __init__(self, X, y=None):
        self.X = X.tocsr() if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        self.y = None if y is None else torch.as_tensor(y)
        if self.y is not None and len(self.y) != self.X.shape[0]:
            raise ValueError(f"{self.X.shape[0]} inputs but {len(self.y)} targets")

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def subset(self, rows) -> "ArrayData":
        return ArrayData(self.X[rows], None if self.y is None else self.y[rows])

    def batches(self, batch_size: int, shuffle: bool = False, generator=None, device="cpu", rows=None):
        """Yield (x, y) batches; shuffled with `generator` when asked (files are often sorted by class).
        `rows`: serve that many rows, the order repeated from its start past the end (the ranks of
        a distributed run take equal numbers of batches from shards of unequal sizes)."""
        n = len(self)
        order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
        if rows is not None:
            order, n = np.resize(order, rows), rows
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            if sp.issparse(self.X):
                x = csr_to_torch(self.X[rows], device)
            else:
                x = torch.from_numpy(self.X[rows]).to(device)
            yield x, (None if self.y is None else self.y[rows].to(device))
