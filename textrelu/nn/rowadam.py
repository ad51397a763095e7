"""RowAdam: lazy Adam for sparse row gradients (the first layer and the sampled decoder).

Only the rows a gradient touches move, and their moments with them ("lazy" Adam, as torch's
SparseAdam: untouched rows keep their weights and moments). Duplicate rows in a gradient (a term
in several reviews of a batch) are summed first.

The update is memory-bound: per touched row of n_hidden floats it reads the gradient, the weight
and both moments and writes three of them back. On the CPU one compiled loop (numba) does it in a
single pass over each row; torch ops need about twenty (gather, in-place arithmetic, scatter, plus
the allocations). With it, sampled pre-training at 20,000 terms went from 2.1x to 4.1x the speed
of the same model on dense inputs (docs/performance.md). On other devices, or for other dtypes,
the same update runs as torch ops on dense blocks of the touched rows.
"""

import functools
import math

import numpy as np
import torch


@functools.cache
def _compiled_kernel():
    """The numba loop, compiled on first use (and cached on disk by numba) so that importing
    textrelu stays quick."""
    from numba import njit

    @njit(cache=True, nogil=True)  # no fastmath: NaN and inf keep IEEE meaning
    def row_adam(
        p, m, v, idx, values, pos, first, slot, scratch, lr_t, beta1, beta2, rest1, rest2, eps, bias2_sqrt
    ):
        # Pass 1: number the distinct rows in order of first appearance; a row seen again gets
        # a scratch row holding its sum (values itself is never written: it may be shared).
        count, n_scratch, n_cols = 0, 0, p.shape[1]
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
        # Pass 2: one Adam step per distinct row, in one sweep over its weight and moments.
        for c in range(count):
            k = first[c]
            r = idx[k]
            pos[r] = -1
            g = values[k] if slot[c] < 0 else scratch[slot[c]]
            for j in range(n_cols):
                gj = g[j]
                mj = beta1 * m[r, j] + rest1 * gj
                vj = beta2 * v[r, j] + rest2 * gj * gj
                m[r, j] = mj
                v[r, j] = vj
                p[r, j] -= lr_t * mj / (np.sqrt(vj) / bias2_sqrt + eps)
        return count

    return row_adam


class RowAdam(torch.optim.Optimizer):
    """Lazy Adam over parameters whose gradients are sparse COO tensors of rows."""

    def __init__(
        self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, compiled: bool | None = None
    ):
        """compiled: use the numba loop (None: on CPU float32 parameters)."""
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.compiled = compiled
        self._workspace = {}  # per parameter: the compiled loop's buffers (not optimizer state)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("RowAdam takes sparse gradients only")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                compiled = self.compiled
                if compiled is None:
                    compiled = p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous()
                (self._step_compiled if compiled else self._step_torch)(p, state, group)

    @staticmethod
    def _scalars(state, group):
        beta1, beta2 = group["betas"]
        bias1, bias2 = 1 - beta1 ** state["step"], 1 - beta2 ** state["step"]
        return beta1, beta2, group["lr"] / bias1, math.sqrt(bias2)

    def _step_compiled(self, p, state, group):
        beta1, beta2, lr_t, bias2_sqrt = self._scalars(state, group)
        rows = p.grad._indices()[0].contiguous().numpy()
        values = p.grad._values().contiguous().reshape(len(rows), -1).numpy()
        work = self._workspace.setdefault(
            id(p),
            {  # reused every step
                "pos": np.full(p.shape[0], -1, dtype=np.int64),
                "first": np.empty(0, np.int64),
            },
        )
        if len(work["first"]) < len(rows):
            size = max(len(rows), int(1.5 * len(work["first"])))
            work["first"], work["slot"] = np.empty(size, np.int64), np.empty(size, np.int64)
            work["scratch"] = np.empty((min(size, p.shape[0]), values.shape[1]), np.float32)
        f32 = np.float32
        _compiled_kernel()(
            p.detach().view(p.shape[0], -1).numpy(),
            state["exp_avg"].view(p.shape[0], -1).numpy(),
            state["exp_avg_sq"].view(p.shape[0], -1).numpy(),
            rows,
            values,
            work["pos"],
            work["first"],
            work["slot"],
            work["scratch"],
            f32(lr_t),
            f32(beta1),
            f32(beta2),
            f32(1 - beta1),
            f32(1 - beta2),
            f32(group["eps"]),
            f32(bias2_sqrt),
        )

    def _step_torch(self, p, state, group):
        beta1, beta2, lr_t, bias2_sqrt = self._scalars(state, group)
        grad = p.grad
        rows, position = grad._indices()[0].unique(return_inverse=True)
        g = torch.zeros(len(rows), *p.shape[1:], dtype=p.dtype, device=p.device)
        g.index_add_(0, position, grad._values())  # duplicate rows summed
        m = state["exp_avg"].index_select(0, rows).lerp_(g, 1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        denom = v.sqrt_().div_(bias2_sqrt).add_(group["eps"])
        p.index_add_(0, rows, m.div_(denom).mul_(-lr_t))
