"""Data-parallel training on several processes: the process group of a torchrun launch, and what
the training loops exchange through it.

    torchrun --nproc-per-node 2 -m textrelu finetune train.csv --task sentiment --device cpu ...

torchrun starts one process (a rank) per slot and sets WORLD_SIZE, RANK and LOCAL_RANK; `session`
reads them and joins the group (gloo on the CPU, NCCL with CUDA, each rank on cuda:LOCAL_RANK).
Every rank reads its own shard of the rows, builds the same network from the same seed (and takes
rank 0's weights, `broadcast`), and after each backward pass `average_gradients` makes every
rank's gradients the mean over all ranks, so the parameters stay identical. Losses and metrics are
summed over the ranks (`sum`, `mean_metrics`, `reduce_meter`), so every rank takes the same early
stopping decision. Nothing here reads files or writes them: the stages let rank 0 alone write.
"""

import datetime
import importlib
import math
import os
import types
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from textrelu.errors import BadInput
from textrelu.nn.model import SparsityMeter
from textrelu.nn.targets import MAX_EXPECTATION_VALUES, Target, review_label, review_rating

# A collective that waits longer than this fails (every rank stops with an error instead of
# hanging). Ranks meet once per update and once per epoch, and rank 0 writes the model while the
# others wait; a rank that dies is noticed by torchrun's agent, which stops the others at once.
TIMEOUT = datetime.timedelta(minutes=10)
# The other ranks wait this long while rank 0 alone runs a pipeline's one-process stage (a
# comparison may take a day); a rank that dies is noticed by torchrun's agent at once.
WAIT = datetime.timedelta(days=7)
LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")  # what torchrun sets in each rank


def launched() -> bool:
    """Whether this process is one rank of several started by torchrun (or the like)."""
    return all(v in os.environ for v in LAUNCH_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


@dataclass(frozen=True)
class Group:
    """This rank's place in the process group and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0

    @property
    def shard(self) -> tuple:
        """(rank, world_size): this rank reads the rows whose index modulo world_size is its rank."""
        return self.rank, self.world_size

    def _tensor(self, values, dtype=torch.float64) -> torch.Tensor:
        # NCCL exchanges CUDA tensors only; gloo CPU ones
        return torch.as_tensor(values, dtype=dtype, device=self.device)

    def sum(self, values: list) -> list:
        """Each number summed over the ranks (float64)."""
        t = self._tensor(values)
        dist.all_reduce(t)
        return t.tolist()

    def sum_array(self, values):
        """A numpy array summed over the ranks (float64)."""
        t = self._tensor(values)
        dist.all_reduce(t)
        return t.cpu().numpy()

    def max(self, value: int) -> int:
        t = self._tensor([value], torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t)

    def extremes(self, lo: torch.Tensor, hi: torch.Tensor):
        """Elementwise minimum of `lo` and maximum of `hi` over the ranks, in place."""
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        return lo, hi

    def gather(self, obj) -> list:
        """Every rank's `obj` (small, picklable data made here: never user data), in rank order."""
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (already equal when built from the
        same seed; this makes sure)."""
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        dist.barrier()

    def wait(self) -> None:
        """A barrier that waits up to WAIT: while rank 0 alone runs one of a pipeline's
        one-process stages, the others wait here, and rank 0 comes when done."""
        dist.monitored_barrier(timeout=WAIT)

    def average_gradients(self, params) -> None:
        """Replace each gradient by its mean over the ranks: the dense ones in one all-reduce of a
        flat buffer, each sparse row gradient (the first layer's) by gathering the rows each
        rank touched, so that only those travel (see docs/scale.md for the measurement
        against DistributedDataParallel). Every rank must hold gradients for the same parameters."""
        with torch.no_grad():
            dense = [p for p in params if p.grad is not None and not p.grad.is_sparse]
            if dense:
                flat = torch.cat([p.grad.reshape(-1) for p in dense])
                dist.all_reduce(flat)
                flat /= self.world_size
                start = 0
                for p in dense:
                    n = p.grad.numel()
                    p.grad.copy_(flat[start : start + n].view_as(p.grad))
                    start += n
            for p in params:
                if p.grad is not None and p.grad.is_sparse:
                    p.grad = self._average_rows(p.grad)

    def _average_rows(self, grad: torch.Tensor) -> torch.Tensor:
        """The mean over the ranks of a sparse COO gradient of rows, as a coalesced one."""
        grad = grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
        counts = [self._tensor([0], torch.int64) for _ in range(self.world_size)]
        dist.all_gather(counts, self._tensor([len(rows)], torch.int64))
        counts = [int(c) for c in counts]
        longest = max(counts)  # all_gather takes equal sizes: pad to the longest
        padded_rows = torch.zeros(longest, dtype=rows.dtype, device=rows.device)
        padded_rows[: len(rows)] = rows
        padded_values = values.new_zeros((longest, *values.shape[1:]))
        padded_values[: len(rows)] = values
        all_rows = [torch.empty_like(padded_rows) for _ in counts]
        all_values = [torch.empty_like(padded_values) for _ in counts]
        dist.all_gather(all_rows, padded_rows)
        dist.all_gather(all_values, padded_values)
        rows = torch.cat([r[:c] for r, c in zip(all_rows, counts)])
        values = torch.cat([v[:c] for v, c in zip(all_values, counts)]) / self.world_size
        return torch.sparse_coo_tensor(
            rows.unsqueeze(0), values, grad.shape, check_invariants=False
        ).coalesce()


@contextmanager
def session(device: torch.device | None = None):
    """The Group of this rank under torchrun (joined on entry, left on exit), else None.

    `device`: the resolved training device; CUDA uses NCCL and this rank's GPU (LOCAL_RANK),
    the CPU gloo. None: the group of a whole pipeline, which its stages share (gloo, and NCCL
    for CUDA tensors where there is CUDA); its Group's device is the CPU. A process group
    started already (by a pipeline, or by the caller) is used as it is and left open."""
    if not launched():
        yield None
        return
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    cuda = device is not None and device.type == "cuda"
    if cuda and local >= torch.cuda.device_count():
        raise BadInput(
            f"rank {rank} would use cuda:{local}, but this machine has {torch.cuda.device_count()} "
            "CUDA devices; start at most that many processes per node (--nproc-per-node)"
        )
    if cuda or (device is None and local < torch.cuda.device_count()):
        torch.cuda.set_device(local)
    owned = not dist.is_initialized()
    if owned:
        # The first optimizer imports torch._dynamo, and with it torch.distributed._shard, which
        # takes 10 references to the default group when one exists (torch 2.13): the group then
        # outlives destroy_process_group, its gloo threads run on while the interpreter shuts
        # down, and one of them freeing a tensor then aborts the process ("terminate called
        # without an active exception"; 2 of 77 loaded torchrun runs). Imported first, it takes none.
        importlib.import_module("torch._dynamo")

        backend = "nccl" if cuda else "gloo"
        if device is None and torch.cuda.is_available():
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield Group(
            dist.get_rank(),
            dist.get_world_size(),
            torch.device("cuda", local) if cuda else torch.device("cpu"),
        )
        if owned:  # leave together: a rank that left seconds before another was seen to abort
            dist.barrier()
    finally:
        if owned:
            dist.destroy_process_group()


def ranks(group: Group | None) -> str:
    """Where training runs, for a progress line: " x 2 ranks (cpu, gloo)", or "" in one process."""
    return "" if group is None else f" x {group.world_size} ranks ({group.device.type}, {dist.get_backend()})"


def writes(group: Group | None) -> bool:
    """Whether this process writes the outputs: the only one, or rank 0."""
    return group is None or group.main


def total(n: int, group: Group | None) -> int:
    """A count over every rank's shard."""
    return n if group is None else round(group.sum([n])[0])


def split_batch(batch_size: int, group: Group | None) -> int:
    """Each rank's minibatch: the setting's `batch_size` is the total over the ranks."""
    if group is None:
        return batch_size
    if batch_size % group.world_size:
        raise BadInput(
            f"batch_size {batch_size} is the total minibatch of all {group.world_size} ranks and must "
            f"be a multiple of it (each rank takes batch_size / {group.world_size})"
        )
    return batch_size // group.world_size


def mean_metrics(group: Group, metrics: dict, n: int) -> dict:
    """Metrics that are means over this rank's `n` rows (loss, accuracy, MAE; RMSE through its
    square) as the means over every rank's rows. Every rank has rows and the same keys."""
    keys = sorted(metrics)
    sums = [(metrics[k] ** 2 if k == "rmse" else metrics[k]) * n for k in keys]
    *sums, total = group.sum([*sums, n])
    means = {k: v / total for k, v in zip(keys, sums)}
    if "rmse" in means:
        means["rmse"] = math.sqrt(means["rmse"])
    return means


def reduce_meter(group: Group, meter: SparsityMeter) -> SparsityMeter:
    """The meter's counts over every rank's rows, in place."""
    counts = group.sum([*meter.zeros, *meter.total])
    k = len(meter.zeros)
    meter.zeros, meter.total = counts[:k], counts[k:]
    for active in meter.ever_active:
        flags = active.to(torch.uint8)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        active.copy_(flags.bool())
    return meter


def fit_target(task: str, reviews, head: str | None, group: Group | None) -> Target:
    """`Target.fit` over the training reviews of every rank: the union of the labels (or of the
    rating values) and the pooled mean, deviation and range of the ratings."""
    if group is None:
        return Target.fit(task, reviews, head)
    if task != "rating":
        seen = {(review_label(r), r.source) for r in reviews}
        pairs = sorted(set().union(*group.gather(seen)))
        return Target.fit(task, [_review(label=label, source=source) for label, source in pairs], head)
    ratings = torch.tensor([review_rating(r) for r in reviews], dtype=torch.float64)
    # enough distinct values to tell that there are too many for the expectation head
    values = sorted(set(ratings.tolist()))[: MAX_EXPECTATION_VALUES + 1]
    n, total = len(ratings), float(ratings.sum())
    lo, hi = float(ratings.min()) if n else math.inf, float(ratings.max()) if n else -math.inf
    parts = group.gather((values, n, total, lo, hi))
    values = sorted(set().union(*(p[0] for p in parts)))
    n = sum(p[1] for p in parts)
    mean = sum(p[2] for p in parts) / n
    squares = group.sum([float(((ratings - mean) ** 2).sum())])[0]
    source = reviews[0].source if reviews else ""
    target = Target.fit(task, [_review(rating=v, source=source) for v in values], head)
    return replace(
        target,
        mean=mean,
        std=max(math.sqrt(squares / max(n - 1, 1)), 1e-6),
        low=min(p[3] for p in parts),
        high=max(p[4] for p in parts),
    )


def _review(label=None, rating=None, source=""):
    """The parts of a review `Target.fit` reads."""
    return types.SimpleNamespace(label=label, rating=rating, source=source, row=None)
