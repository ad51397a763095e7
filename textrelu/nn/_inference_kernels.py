"""The numba loops of `inference`, in a module of their own so that numba is imported (and the
loops loaded from its on-disk cache) only when a large input is scored.

Both add weight rows in the order torch's embedding_bag does (a row's non-zeros in order, then
the bias), release the GIL, and use no fastmath: NaN and inf keep their IEEE meaning.
"""

from textrelu.jit import compiled


@compiled
def sum_rows(indptr, indices, data, weight, bias, out):
    """out[r] = sum of data[k] * weight[indices[k]] over CSR row r's non-zeros k, plus bias:
    a sparse batch times weight (n_in, n_out), reading only the rows of its terms."""
    for r in range(out.shape[0]):
        acc = out[r]
        acc[:] = 0
        for k in range(indptr[r], indptr[r + 1]):
            v, row = data[k], weight[indices[k]]
            for j in range(acc.shape[0]):
                acc[j] += v * row[j]
        for j in range(acc.shape[0]):
            acc[j] += bias[j]


@compiled
def sum_nonzero_rows(h, weight, bias, out):
    """out = h @ weight + bias for a dense h (batch, n_in) that is mostly zeros (a rectifier
    layer's output): the rows of weight under h's zeros are never read."""
    for r in range(out.shape[0]):
        acc = out[r]
        acc[:] = 0
        for i in range(h.shape[1]):
            v = h[r, i]
            if v != 0:
                row = weight[i]
                for j in range(acc.shape[0]):
                    acc[j] += v * row[j]
        for j in range(acc.shape[0]):
            acc[j] += bias[j]
