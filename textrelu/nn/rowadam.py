"""RowAdam: lazy Adam for sparse row gradients (the first layer and the sampled decoder).

Only the rows a gradient touches move, and their moments with them ("lazy" Adam, as torch's
SparseAdam: untouched rows keep their weights and moments). Duplicate rows in a gradient (a term
in several reviews of a batch) are summed first.

The update is memory-bound: per touched row of n_hidden floats it reads the gradient, the weight
and both moments and writes three of them back. On the CPU one compiled, vectorized loop
(`nn._kernels.row_adam`, numba) does it in a single pass over each row; torch ops need about
twenty (gather, in-place arithmetic, scatter, plus the allocations). On other devices, or for
other dtypes, the same update runs as torch ops on dense blocks of the touched rows; gradients
known to hold distinct rows (`distinct_rows`) are used as they are, without the sort that finds
duplicates (on a GPU a host synchronization).
"""

import math

import numpy as np
import torch


class RowAdam(torch.optim.Optimizer):
    """Lazy Adam over parameters whose gradients are sparse COO tensors of rows."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        compiled: bool | None = None,
        distinct_rows: bool = False,
    ):
        """compiled: use the numba loop (None: on CPU float32 parameters). distinct_rows: the
        gradients hold each row at most once (as nn.model.gather_rows and the compiled sparse
        layers make them), so the torch ops skip the sort that finds duplicates, a host
        synchronization on a GPU (autograd drops a gradient's coalesced mark, so this cannot be
        read off the gradient). The compiled loop sums duplicates whatever this says."""
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.compiled, self.distinct_rows = compiled, distinct_rows
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
        from textrelu.nn._kernels import row_adam  # numba, loaded on first use

        row_adam(
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
        if self.distinct_rows or grad.is_coalesced():  # no sort, no GPU sync
            rows, g = grad._indices()[0], grad._values()
        else:
            rows, position = grad._indices()[0].unique(return_inverse=True)
            g = torch.zeros(len(rows), *p.shape[1:], dtype=p.dtype, device=p.device)
            g.index_add_(0, position, grad._values())  # duplicate rows summed
        m = state["exp_avg"].index_select(0, rows).lerp_(g, 1 - beta1)
        v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, m)
        state["exp_avg_sq"].index_copy_(0, rows, v)
        denom = v.sqrt_().div_(bias2_sqrt).add_(group["eps"])
        p.index_add_(0, rows, m.div_(denom).mul_(-lr_t))
