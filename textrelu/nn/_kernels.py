"""The numba loops of sparse pre-training on the CPU, in a module of their own so that numba is
imported (and the loops loaded from numba's on-disk cache) only when a sparse model first trains.

- `row_adam`: RowAdam's update of the rows a sparse gradient touches (nn.rowadam);
- `sampling_plan`: which (review, column) entries a sampled reconstruction keeps (nn.autoencoder);
- `decode_entries` / `decode_entries_backward`: the decoder's output at those entries alone, and
  its gradients, one row of the decoder's weights per kept column.

`error_model="numpy"` lets LLVM vectorize the loops that divide (the default "python" model checks
every division for a zero divisor); the results stay IEEE ones. The dot products of the decoder
allow reassociation (`reassoc`), which vectorizes their sums: they then differ from a BLAS product
in the order of additions only. Nothing here assumes finite values (no `nnan`/`ninf`).
"""

import numpy as np

from textrelu.jit import compiled


@compiled(error_model="numpy")
def row_adam(p, m, v, idx, values, pos, first, slot, scratch, lr_t, beta1, beta2, rest1, rest2, eps, b2):
    """Lazy Adam on the rows `idx` of p (and its moments m, v), `values` their gradient rows;
    duplicate rows are summed first. b2 = sqrt(1 - beta2^step); returns the number of rows."""
    # Pass 1: number the distinct rows in order of first appearance; a row seen again gets
    # a scratch row holding its sum (values itself is never written: it may be shared).
    count, n_scratch = 0, 0
    for k in range(idx.shape[0]):
        r = idx[k]
        c = pos[r]
        if c < 0:
            pos[r] = count
            first[count] = k
            slot[count] = -1
            count += 1
        else:
            s = slot[c]
            if s < 0:
                s = n_scratch
                slot[c] = s
                n_scratch += 1
                scratch[s, :] = values[first[c], :]
            scratch[s, :] += values[k, :]
    # Pass 2: one Adam step per distinct row, in one vectorized sweep over its weight and moments.
    for c in range(count):
        k = first[c]
        r = idx[k]
        pos[r] = -1
        g = values[k] if slot[c] < 0 else scratch[slot[c]]
        pr, mr, vr = p[r], m[r], v[r]
        for j in range(pr.shape[0]):
            gj = g[j]
            mj = beta1 * mr[j] + rest1 * gj
            vj = beta2 * vr[j] + rest2 * gj * gj
            mr[j] = mj
            vr[j] = vj
            pr[j] -= lr_t * mj / (np.sqrt(vj) / b2 + eps)
    return count


@compiled
def sampling_plan(clean_crow, clean_col, clean_val, noisy_crow, noisy_col, sampled, stamp, inv_rate):
    """The entries of a sampled reconstruction: each review's own, grouped by column, and a block.

    Row i keeps its active columns, those of its clean row (target: the clean value) and of its
    corrupted row (target 0), with weight 1, and every column of `sampled` (ascending) not among
    them with weight inv_rate (target 0). Drawn columns that no review of the batch holds form
    the block (every row, weight inv_rate: a dense product); the others are entries. stamp:
    (n_in,) int64 of -1, left so on return. Returns (columns, col_ptr, row, target, weight,
    block): the distinct entry columns ascending, the entries of columns[k] at
    col_ptr[k]:col_ptr[k + 1] by ascending row, and the block's columns ascending.
    """
    n_rows = clean_crow.shape[0] - 1
    anywhere = np.zeros(stamp.shape[0], np.bool_)
    for c in clean_col:
        anywhere[c] = True
    for c in noisy_col:
        anywhere[c] = True
    n_hit = 0
    for c in sampled:
        if anywhere[c]:
            n_hit += 1
    hit = np.empty(n_hit, np.int64)
    block = np.empty(sampled.shape[0] - n_hit, np.int64)
    n_hit, n_block = 0, 0
    for c in sampled:
        if anywhere[c]:
            hit[n_hit] = c
            n_hit += 1
        else:
            block[n_block] = c
            n_block += 1
    cap = clean_col.shape[0] + noisy_col.shape[0] + n_rows * n_hit
    row = np.empty(cap, np.int64)
    col = np.empty(cap, np.int64)
    target = np.empty(cap, np.float32)
    weight = np.empty(cap, np.float32)
    n = 0
    for i in range(n_rows):
        for k in range(clean_crow[i], clean_crow[i + 1]):
            c = clean_col[k]
            if stamp[c] != i:
                stamp[c] = i
                row[n], col[n], target[n], weight[n] = i, c, clean_val[k], 1.0
                n += 1
        for k in range(noisy_crow[i], noisy_crow[i + 1]):
            c = noisy_col[k]
            if stamp[c] != i:
                stamp[c] = i
                row[n], col[n], target[n], weight[n] = i, c, 0.0, 1.0
                n += 1
        for c in hit:
            if stamp[c] != i:
                row[n], col[n], target[n], weight[n] = i, c, 0.0, inv_rate
                n += 1
    for e in range(n):  # the row stamps above, back to group_by_column's -1
        stamp[col[e]] = -1
    columns, col_ptr, slot = group_by_column(col[:n], stamp)
    out_row = np.empty(n, np.int64)
    out_target = np.empty(n, np.float32)
    out_weight = np.empty(n, np.float32)
    for e in range(n):
        s = slot[e]
        out_row[s], out_target[s], out_weight[s] = row[e], target[e], weight[e]
    return columns, col_ptr, out_row, out_target, out_weight, block


@compiled(fastmath={"reassoc", "contract"}, error_model="numpy")
def decode_entries(h, w, b, columns, col_ptr, row, out):
    """out[e] = h[row[e]] . w[columns[k]] + b[columns[k]] for each entry e of column k."""
    for k in range(columns.shape[0]):
        c = columns[k]
        wc = w[c]
        for e in range(col_ptr[k], col_ptr[k + 1]):
            hr = h[row[e]]
            acc = np.float32(0.0)
            for j in range(wc.shape[0]):
                acc += hr[j] * wc[j]
            out[e] = acc + b[c]


@compiled(fastmath={"contract"}, error_model="numpy")
def decode_entries_backward(h, w, columns, col_ptr, row, g, grad_h, grad_rows, grad_b):
    """Gradients of decode_entries given g (one per entry): grad_h (zeros on entry) accumulates
    g[e] * w[c] in row[e]; grad_rows[k] (written) = sum over column k's entries of g[e] * h[row[e]],
    grad_b[k] (written) the sum of their g[e]."""
    for k in range(columns.shape[0]):
        wc = w[columns[k]]
        gk = grad_rows[k]
        gk[:] = 0.0
        total = np.float32(0.0)
        for e in range(col_ptr[k], col_ptr[k + 1]):
            ge = g[e]
            total += ge
            hr = h[row[e]]
            for j in range(wc.shape[0]):  # two loops of one stream each: both vectorize
                gk[j] += ge * hr[j]
            ghr = grad_h[row[e]]
            for j in range(wc.shape[0]):
                ghr[j] += ge * wc[j]
        grad_b[k] = total


@compiled
def group_by_column(col, stamp):
    """Entries by their column, a stable counting sort: (the distinct columns, ascending;
    col_ptr; slot: where entry e goes so that the entries of columns[k] fill
    col_ptr[k]:col_ptr[k + 1] in entry order). stamp: (n_in,) int64 of -1, left so on return."""
    n = 0
    for c in col:
        if stamp[c] < 0:
            stamp[c] = 0
            n += 1
        stamp[c] += 1
    columns = np.empty(n, np.int64)
    n = 0
    for c in col:
        if stamp[c] > 0:  # first seen: list it; its count is kept negated
            columns[n] = c
            stamp[c] = -stamp[c]
            n += 1
    columns.sort()
    col_ptr = np.empty(n + 1, np.int64)
    col_ptr[0] = 0
    for k in range(n):
        c = columns[k]
        col_ptr[k + 1] = col_ptr[k] - stamp[c]
        stamp[c] = col_ptr[k]  # from here: the next free slot of column c
    slot = np.empty(col.shape[0], np.int64)
    for e in range(col.shape[0]):
        slot[e] = stamp[col[e]]
        stamp[col[e]] += 1
    for c in columns:
        stamp[c] = -1
    return columns, col_ptr, slot


@compiled
def by_column(crow, col, val, stamp):
    """A CSR batch by column: (its distinct columns, ascending; col_ptr; each non-zero's row and
    value, grouped by column, rows ascending). stamp: (n_in,) int64 of -1, left so on return."""
    columns, col_ptr, slot = group_by_column(col, stamp)
    row = np.empty(col.shape[0], np.int64)
    value = np.empty(col.shape[0], val.dtype)
    for i in range(crow.shape[0] - 1):
        for k in range(crow[i], crow[i + 1]):
            row[slot[k]], value[slot[k]] = i, val[k]
    return columns, col_ptr, row, value


@compiled(fastmath={"contract"}, error_model="numpy")
def sparse_rows_forward(columns, col_ptr, row, value, w, b, out):
    """out = x @ w + b for x given by column (by_column): each of w's rows is read once."""
    for i in range(out.shape[0]):
        out[i, :] = b
    for k in range(columns.shape[0]):
        wr = w[columns[k]]
        for e in range(col_ptr[k], col_ptr[k + 1]):
            v = value[e]
            o = out[row[e]]
            for j in range(wr.shape[0]):
                o[j] += v * wr[j]


@compiled(fastmath={"contract"}, error_model="numpy")
def sparse_rows_backward(col_ptr, row, value, g, grad_rows):
    """grad_rows[k] (written) = sum over column k's non-zeros e of value[e] * g[row[e]]: the
    gradient of sparse_rows_forward's w, one row per distinct column."""
    for k in range(col_ptr.shape[0] - 1):
        gk = grad_rows[k]
        gk[:] = 0.0
        for e in range(col_ptr[k], col_ptr[k + 1]):
            v = value[e]
            gr = g[row[e]]
            for j in range(gk.shape[0]):
                gk[j] += v * gr[j]
