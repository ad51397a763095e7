"""The training loops, shared by text and images: batching, pre-training, fine-tuning, evaluation.

Explicit loops over `ArrayData` batches; inputs are scipy CSR matrices (text, sent to torch as
sparse CSR batches) or dense arrays (images). Nothing here reads files.
"""

import copy
import math

import numpy as np
import scipy.sparse as sp
import torch

from textrelu.errors import BadInput, DeadNetwork, Diverged
from textrelu.nn.autoencoder import DenoisingAutoencoder, masking, salt_and_pepper, sample_rate_for
from textrelu.nn.batches import ArrayData
from textrelu.nn.distributed import Group, mean_metrics, reduce_meter, split_batch
from textrelu.nn.model import SparseRectifierNet, SparsityMeter
from textrelu.nn.rowadam import RowAdam
from textrelu.progress import bar, say
from textrelu.settings import Finetuning, Pretraining

DENSE_OPTIMIZERS = {
    "adam": lambda params, lr, wd: torch.optim.Adam(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, weight_decay=wd),  # the paper's
}


# Row-wise twins for parameters with sparse gradients: only the rows a batch touched move.
# No weight decay there.
SPARSE_OPTIMIZERS = {
    "adam": lambda params, lr: RowAdam(params, lr=lr, distinct_rows=True),  # see sparse_affine
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
}
# From this many input features on, a layer reading sparse batches gets sparse gradients and
# row-wise updates; below it, one dense update of the whole matrix is as cheap
# (benchmarks/pretrain_throughput.py measures both).
SPARSE_GRAD_MIN_FEATURES = 10_000
# Early stopping waits at least this many updates without improvement (see fit).
MIN_PATIENCE_STEPS = 100
# The loops sum the loss on the device (EpochLoss) and read it back (a GPU sync) once per this
# many updates, and at the end of each epoch, to report it and to stop on NaN or inf.
SYNC_EVERY = 100
# Fine-tuning stops (DeadNetwork) once a hidden layer is all zero for more than this share of the
# validation reviews: they all get the same output (the biases above), whatever their words. A
# learning rate of 1e6 on the Amazon kitchen reviews left 99.98% of activations zero after one
# epoch, and accuracy below chance; a working rectifier layer is all zero for almost no review.
MAX_SILENT_SHARE = 0.5


def resolve_device(device: str = "auto") -> torch.device:
    """ "auto" is CUDA when present, else the CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("device cuda was asked for, but torch sees no CUDA device; use device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise BadInput(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def use_sparse_grad(data: "ArrayData", sparse_grad: bool | None = None) -> bool:
    """Whether the first layer gets sparse gradients: asked for, or (None) sparse and wide input."""
    if not sp.issparse(data.X):
        return False
    return data.n_features >= SPARSE_GRAD_MIN_FEATURES if sparse_grad is None else sparse_grad


class Optimizer:
    """The named optimizer over dense-gradient parameters, its row-wise twin over `sparse_params`."""

    def __init__(
        self,
        name: str,
        params,
        learning_rate: float,
        weight_decay: float = 0.0,
        sparse_params=(),
        group: Group | None = None,
    ):
        """group: the ranks of a distributed run, whose gradients each step averages first."""
        if name not in DENSE_OPTIMIZERS:
            raise BadInput(f"optimizer must be one of {sorted(DENSE_OPTIMIZERS)}, got {name!r}")
        params, sparse_ids = list(params), {id(p) for p in sparse_params}
        self.params, self.group = params, group
        dense = [p for p in params if id(p) not in sparse_ids]
        self.optimizers = [DENSE_OPTIMIZERS[name](dense, learning_rate, weight_decay)]
        if sparse_params:
            self.optimizers.append(SPARSE_OPTIMIZERS[name](list(sparse_params), learning_rate))

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.group is not None:
            self.group.average_gradients(self.params)
        for opt in self.optimizers:
            opt.step()


@torch.no_grad()
def input_range(net: SparseRectifierNet, depth: int, data: ArrayData, batch_size: int, device, group=None):
    """Per-unit (min, max) of what layer `depth` reads, over `data` (of every rank of `group`):
    scales targets into [0, 1]."""
    lo = hi = None
    for x, _ in data.batches(batch_size, device=device):
        r = net.represent(x, depth)
        r = r.to_dense() if r.layout == torch.sparse_csr else r
        b_lo, b_hi = r.min(0).values, r.max(0).values
        lo = b_lo if lo is None else torch.minimum(lo, b_lo)
        hi = b_hi if hi is None else torch.maximum(hi, b_hi)
    if group is not None:
        group.extremes(lo, hi)
    return lo, hi


def pretrain_layers(
    net: SparseRectifierNet,
    data: ArrayData,
    training: Pretraining,
    *,
    sparse_grad: bool | None = None,
    device="cpu",
    seed: int = 0,
    quiet: bool = False,
    group: Group | None = None,
):
    """Greedy layer-wise denoising-autoencoder pre-training of `net.layers`, in place.

    Returns the history: one dict per (layer, epoch) with the mean training loss, and the mean
    validation loss where training.valid_fraction holds rows out: then a layer stops after
    training.patience epochs without a lower one and keeps its best epoch's weights.
    sparse_grad: sparse gradients for the first layer (and its sampled decoder); None = automatic.
    training.tied: each decoder uses its encoder's weights (not with sparse gradients).
    group: the ranks of a distributed run (data: this rank's shard; batch_size: the total of all
    ranks); every rank must call this with the same network and settings.
    """
    t = training
    data, held_out = hold_out(data, t.valid_fraction, seed, group)
    batch_size, rows = split_batch(t.batch_size, group), equal_rows(data, group)
    generator = torch.Generator().manual_seed(seed)
    rank = group.rank if group else 0  # each rank corrupts its own rows with its own draws
    # A sparse input layer is corrupted and sampled on the host: the sampling plan's sizes are
    # then known there, with no GPU synchronization (nn.autoencoder.SamplingPlan).
    draws = Draws(seed + 1 + rank, device)
    net.to(device).train()
    history = []
    for depth, layer in enumerate(net.layers):
        sparse_input = depth == 0 and sp.issparse(data.X)
        sample_rate = sample_rate_for(data.n_features, t.sample_rate) if sparse_input else 1.0
        step = layer_autoencoder(net, depth, data, t, sparse_input, sample_rate, sparse_grad, device, group)
        best, since_best = None, 0
        for epoch in range(1, t.epochs + 1):
            losses = EpochLoss(
                device,
                f"pre-training layer {depth + 1} diverged in epoch {epoch}",
                "lower the pre-training learning rate",
                group=group,
            )
            batches = data.batches(
                batch_size,
                shuffle=True,
                generator=generator,
                device="cpu" if sparse_input else device,
                rows=rows,
            )
            for x, _ in bar(
                batches,
                total=math.ceil((rows or len(data)) / batch_size),
                unit="batch",
                desc=f"pretrain layer {depth + 1} epoch {epoch}/{t.epochs}",
                quiet=quiet,
            ):
                loss, n = step(x, draws)
                losses.add(loss, n)
            row = {"layer": depth + 1, "epoch": epoch, "loss": losses.mean()}
            if held_out is not None:
                row["valid_loss"] = validation_loss(
                    held_out, step, batch_size, device, group, seed, depth, epoch
                )
            history.append(row)
            say(
                f"pretrain layer {depth + 1} epoch {epoch}: loss {row['loss']:.4f}"
                + (f", validation {row['valid_loss']:.4f}" if held_out is not None else ""),
                quiet,
            )
            if held_out is None:
                continue
            if best is None or row["valid_loss"] < best[0]:
                best, since_best = (row["valid_loss"], copy.deepcopy(layer.state_dict())), 0
            else:
                since_best += 1
                if since_best >= t.patience:
                    break
        if best is not None:
            layer.load_state_dict(best[1])
    check_finite(net)
    return history


def hold_out(data: ArrayData, fraction: float, seed: int, group: Group | None):
    """(training rows, held-out rows or None): `fraction` of `data` at random, on every rank (a
    rank with too few rows holds out one); None where fraction is 0 or a rank has one row."""
    if not fraction:
        return data, None
    n = len(data)
    n_out = max(1, round(n * fraction)) if n > 1 else 0
    if not (-group.max(-n_out) if group is not None else n_out):
        return data, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 2)).numpy()
    return data.subset(order[n_out:]), data.subset(order[:n_out])


class Draws:
    """The random draws of pre-training's corruption and sampling: on the host for a sparse input
    layer (its sampling plan is made there), on the device for dense ones; `fixed()` gives the
    same draws each time (for the validation loss, so that epochs compare)."""

    def __init__(self, seed: int, device):
        self.host = torch.Generator().manual_seed(seed)
        self.device = torch.Generator(device=device).manual_seed(seed)
        self.seed, self.device_type = seed, device

    def fixed(self, salt: int) -> "Draws":
        return Draws(self.seed + 7919 * (salt + 1), self.device_type)


def layer_autoencoder(
    net, depth, data, t: Pretraining, sparse_input, sample_rate, sparse_grad, device, group
):
    """The training step of layer `depth`'s denoising autoencoder: step(x, draws) -> (loss tensor,
    rows), one update with `draws`; step(x, draws, update=False) only the reconstruction loss,
    without gradients."""
    reconstruction, layer = t.reconstruction, net.layers[depth]
    scale = None
    if not sparse_input and reconstruction == "sigmoid-ce":
        lo, hi = input_range(net, depth, data, 1024, device, group)
        scale = (lo, (hi - lo).clamp_min(1e-6))
    # Softplus reconstructs non-negative values; under the symmetry trick half of what this
    # layer reads was multiplied by -1, so the target is the layer below's output before the
    # flip (the same information; reconstructing the flipped half made pre-training diverge),
    # and the decoder starts from the encoder's weights with those rows negated (input_sign).
    below = net.layers[depth - 1] if depth else None
    unflip = (
        below.sign if below is not None and below.symmetric and reconstruction == "softplus-mse" else None
    )
    # a tied decoder shares the encoder's matrix, which then takes dense gradients
    layer.sparse_grad = sparse_input and not t.tied and use_sparse_grad(data, sparse_grad)
    dae = DenoisingAutoencoder(layer, reconstruction, t.tied, input_sign=unflip).to(device)
    if sparse_input and reconstruction == "sigmoid-ce":
        with torch.no_grad():
            dae.decoder_bias.copy_(column_log_odds(data, group))
    sparse_params = [layer.weight] if layer.sparse_grad else []
    if layer.sparse_grad and sample_rate < 1:
        sparse_params.append(dae.decoder_weight)
    if group is not None:
        group.broadcast(dae)
    opt = Optimizer(t.optimizer, dae.parameters(), t.learning_rate, sparse_params=sparse_params, group=group)

    def step(x, draws: Draws, update: bool = True):
        with torch.no_grad():
            x = net.represent(x, depth)
        if sparse_input:
            noisy = salt_and_pepper(x, t.noise, draws.host)
            target = x
        else:
            noisy = masking(x, t.noise, draws.device)
            if unflip is not None:
                target = x * unflip
            elif scale is None:
                target = x
            else:
                target = ((x - scale[0]) / scale[1]).clamp(0, 1)
        generator = draws.host if sparse_input else draws.device
        if not update:
            with torch.no_grad():
                return dae(target, noisy, sample_rate, generator)[0], x.shape[0]
        loss, h = dae(target, noisy, sample_rate, generator)
        loss = loss + t.l1 * h.abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss, h.shape[0]

    return step


def column_log_odds(data: ArrayData, group: Group | None) -> torch.Tensor:
    """Per input column, the log-odds of its mean value over `data` (every rank's rows), add-one
    smoothed: where a sigmoid-ce decoder's bias starts. From zero, every output starts at 0.5 and
    the first epochs go to learning that nearly all are 0 (on IMDB at 100,000 terms the held-out
    loss fell from 65,000 to 1,600 over 8 epochs, most of it bias), not to learning features."""
    sums = np.append(np.asarray(data.X.sum(0), dtype=np.float64).ravel(), len(data))
    if group is not None:
        sums = group.sum_array(sums)
    p = (sums[:-1] + 1) / (sums[-1] + 2)
    return torch.from_numpy(np.log(p) - np.log1p(-p)).float()


def validation_loss(held_out: ArrayData, step, batch_size, device, group, seed, depth, epoch) -> float:
    """The mean reconstruction loss of the held-out rows, with the same corruption and sampling
    draws after every epoch of a layer (an unbiased estimate of the full loss, comparable
    between epochs)."""
    draws = Draws(seed, device).fixed(depth)
    losses = EpochLoss(
        device,
        f"pre-training layer {depth + 1} diverged in epoch {epoch}",
        "lower the pre-training learning rate",
        "validation loss",
        group,
    )
    sparse = sp.issparse(held_out.X) and depth == 0
    for x, _ in held_out.batches(
        batch_size, device="cpu" if sparse else device, rows=equal_rows(held_out, group)
    ):
        loss, n = step(x, draws, update=False)
        losses.add(loss, n)
    return losses.mean()


def finite_loss(loss: torch.Tensor, failure: str, hint: str, name: str = "loss") -> float:
    """The loss (or a running sum of losses) as a float; Diverged ("<failure> (<name> nan); <hint>")
    when it is NaN or inf. Losses are non-negative, so a sum is NaN or inf once one of its terms is."""
    value = loss.item()
    if not math.isfinite(value):
        raise Diverged(f"{failure} ({name} {value}); {hint}")
    return value


class EpochLoss:
    """An epoch's mean training loss, summed on the device and read back (a GPU sync) once per
    SYNC_EVERY updates and at the end, where NaN or inf stops training (see finite_loss); with a
    `group`, the mean is over the examples of every rank."""

    def __init__(self, device, failure: str, hint: str, name: str = "loss", group: Group | None = None):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.n_seen, self.steps = 0, 0
        self.failure, self.hint, self.name, self.group = failure, hint, name, group

    def add(self, loss: torch.Tensor, n: int) -> None:
        """One minibatch's mean loss over its n examples."""
        self.total += loss.detach() * n
        self.n_seen += n
        self.steps += 1
        if self.steps % SYNC_EVERY == 0:
            finite_loss(self.total, self.failure, self.hint, self.name)

    def mean(self) -> float:
        if self.group is not None:
            total, n_seen = self.group.sum([float(self.total), self.n_seen])
            return finite_loss(torch.tensor(total), self.failure, self.hint, self.name) / n_seen
        return finite_loss(self.total, self.failure, self.hint, self.name) / self.n_seen


def equal_rows(data: ArrayData, group: Group | None) -> int | None:
    """The rows each rank serves per epoch so that all take the same number of updates: the
    largest shard's size (a smaller shard repeats a few of its rows); None in one process."""
    return None if group is None else group.max(len(data))


def check_finite(net: torch.nn.Module) -> None:
    """Training that diverged must not be saved as a model."""
    for name, p in net.named_parameters():
        if not torch.isfinite(p).all():
            raise Diverged(f"training diverged: parameter {name} holds NaN or inf; lower the learning rate")


@torch.inference_mode()
def forward_all(net: SparseRectifierNet, data: ArrayData, batch_size: int, device="cpu"):
    """(outputs (n, n_outputs), top hidden activations (n, n_hidden) or None) of `net` over every
    row of `data`, a batch at a time, in eval mode, on the CPU."""
    net.to(device).eval()
    outputs, tops = [], []
    for x, _ in data.batches(batch_size, device=device):
        out, hiddens = net(x)
        outputs.append(out.cpu())
        tops.append(hiddens[-1].cpu() if hiddens else None)
    if not outputs:
        return torch.empty(0, net.output.out_features), None
    return torch.cat(outputs), (torch.cat(tops) if tops[0] is not None else None)


@torch.no_grad()
def hidden_sparsity(net: SparseRectifierNet, data: ArrayData, batch_size: int, device="cpu", group=None):
    """Per hidden layer, over every row of `data` (every rank's shard): the share of activations
    exactly 0 and the share of units never active (SparsityMeter.result)."""
    net.to(device).eval()
    meter = SparsityMeter()
    for x, _ in data.batches(batch_size, device=device):
        meter.update(net(x)[1])
    if group is not None:
        reduce_meter(group, meter)
    return meter.result()


@torch.no_grad()
def evaluate_model(
    net: SparseRectifierNet,
    target,
    data: ArrayData,
    batch_size: int = 512,
    device="cpu",
    per_class=False,
    group: Group | None = None,
) -> dict:
    """Loss, task metrics (target.metrics) and per-layer sparsity of `net` on `data`; with
    `per_class` (a softmax head), each class's precision, recall and F1 and the confusion matrix.
    group: `data` is this rank's shard, and the figures are over every rank's (not per_class)."""
    return _evaluate(net, target, data, batch_size, device, per_class, group)[0]


@torch.no_grad()
def _evaluate(
    net: SparseRectifierNet,
    target,
    data: ArrayData,
    batch_size: int = 512,
    device="cpu",
    per_class=False,
    group: Group | None = None,
):
    """(evaluate_model's metrics, per hidden layer the share of rows where it is all zero)."""
    net.to(device).eval()
    meter, outputs, loss_sum = SparsityMeter(), [], 0.0
    silent = [0] * len(net.layers)
    for x, y in data.batches(batch_size, device=device):
        out, hiddens = net(x)
        meter.update(hiddens)
        for i, h in enumerate(hiddens):
            silent[i] += int((h == 0).all(1).sum())
        loss_sum += float(target.loss(out, y)) * len(y)
        outputs.append(out.cpu())
    outputs, n = torch.cat(outputs), len(data)
    metrics = {"loss": loss_sum / n, **target.metrics(outputs, data.y)}
    if group is not None:  # each rank's means and counts over its shard, added up
        *silent, n = group.sum([*silent, n])
        metrics, n = mean_metrics(group, metrics, len(data)), int(n)
        reduce_meter(group, meter)
    metrics["n"] = n
    metrics["sparsity"] = meter.result()
    if per_class and target.head == "softmax":
        metrics.update(target.per_class(outputs, data.y))
    return metrics, [count / max(n, 1) for count in silent]


def check_alive(silent: list, n: int, epoch: int, training: Finetuning) -> None:
    """DeadNetwork when a hidden layer is all zero on more than MAX_SILENT_SHARE of the `n`
    validation reviews (`silent`: the share per layer)."""
    for layer, share in enumerate(silent, 1):
        if share > MAX_SILENT_SHARE:
            raise DeadNetwork(
                f"fine-tuning failed in epoch {epoch}: hidden layer {layer} is all zero for "
                f"{share:.0%} of the {n} validation rows, so the network gives them all the "
                f"same output (its rectifier units died); lower the learning rate (now "
                f"{training.learning_rate:g}) or the L1 penalty (now {training.l1:g}); nothing was saved"
            )


def fit(
    net: SparseRectifierNet,
    target,
    train: ArrayData,
    valid: ArrayData | None,
    training: Finetuning,
    *,
    sparse_grad: bool | None = None,
    device="cpu",
    seed: int = 0,
    quiet: bool = False,
    group: Group | None = None,
):
    """Supervised training with early stopping on `valid`; `net` ends at its best epoch.

    Training stops after `patience` epochs without a better validation score, and at least
    MIN_PATIENCE_STEPS updates: on a few hundred labeled reviews an epoch is a handful of updates,
    and five of them are too few to leave a bad start (measured on 250 IMDB labels: a pre-trained
    3-layer network stopped at chance after 6 epochs of 4 updates; with more patience, 80%).

    group: the ranks of a distributed run (train, valid: this rank's shards; batch_size: the total
    of all ranks); the validation metrics, and so early stopping, are over every rank's rows.

    Returns (history, best_epoch): one dict per epoch with train loss and validation metrics.
    """
    t = training
    epochs, patience, l1 = t.epochs, t.patience, t.l1
    batch_size, rows = split_batch(t.batch_size, group), equal_rows(train, group)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + (group.rank if group else 0))  # dropout masks
    net.to(device)
    if group is not None:
        group.broadcast(net)
    sparse_params = []
    if len(net.layers):
        first = net.layers[0]
        first.sparse_grad = use_sparse_grad(train, sparse_grad)
        sparse_params = [first.weight] if first.sparse_grad else []
    opt = Optimizer(
        t.optimizer,
        net.parameters(),
        t.learning_rate,
        t.weight_decay,
        sparse_params=sparse_params,
        group=group,
    )
    history, best, best_state, best_epoch, waited = [], None, None, 0, 0
    n_batches = math.ceil((rows or len(train)) / batch_size)
    for epoch in range(1, epochs + 1):
        net.train()
        losses = EpochLoss(
            device,
            f"fine-tuning diverged in epoch {epoch}",
            "lower the learning rate",
            name="train loss",
            group=group,
        )
        batches = train.batches(batch_size, shuffle=True, generator=generator, device=device, rows=rows)
        for x, y in bar(
            batches, total=n_batches, unit="batch", desc=f"finetune epoch {epoch}/{epochs}", quiet=quiet
        ):
            out, hiddens = net(x)
            loss = target.loss(out, y, t.label_smoothing)
            if l1:
                loss = loss + l1 * sum(h.abs().sum(1).mean() for h in hiddens)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.add(loss, len(y))
        row = {"epoch": epoch, "train_loss": losses.mean()}
        if valid is not None:
            metrics, silent = _evaluate(net, target, valid, device=device, group=group)
            finite_loss(
                torch.tensor(metrics["loss"]),
                f"fine-tuning diverged in epoch {epoch}",
                "lower the learning rate",
                "validation loss",
            )
            check_alive(silent, metrics["n"], epoch, t)
            row.update({f"valid_{k}": v for k, v in metrics.items() if k not in ("sparsity", "n")})
            score = target.score(metrics)  # higher is better
            if best is None or score > best:
                best, best_epoch, waited = score, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                waited += 1
        history.append(row)
        say(
            "finetune epoch {epoch}: ".format(**row)
            + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"),
            quiet,
        )
        if valid is not None and waited >= patience and waited * n_batches >= MIN_PATIENCE_STEPS:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    check_finite(net)
    return history, best_epoch
