"""The numba loops of `inference`, in a module of their own so that numba is imported (and the
loops loaded from its on-disk cache) only when a large input is scored.

Both add weight rows in the order torch's embedding_bag does (a row's non-zeros in order, then
the bias), release the GIL, and use no fastmath: NaN and inf keep their IEEE meaning (a saved
model's weights are finite, so the rows they skip under zero inputs would add zeros).
"""

from textrelu.jit import compiled


@compiled
def sum_rows_by_term(colptr, rowidx, data, weight, bias, out):
    """out = x @ weight + bias for a sparse batch x given by column (CSC: colptr, rowidx, data):
    each term's row of weight (n_in, n_out) is read once and added to the outputs of the reviews
    that hold it. Reading row by row instead (each review gathering its terms' rows) reads a
    common term's row once per review, from memory: 1.7x slower on IMDB batches at 20,000 x 1000.
    A review's sums come in the order of its terms, as in torch's embedding_bag."""
    out[:] = 0
    for c in range(colptr.shape[0] - 1):
        if colptr[c] == colptr[c + 1]:
            continue
        row = weight[c]
        for k in range(colptr[c], colptr[c + 1]):
            acc, v = out[rowidx[k]], data[k]
            for j in range(acc.shape[0]):
                acc[j] += v * row[j]
    for r in range(out.shape[0]):
        acc = out[r]
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
