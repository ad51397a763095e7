"""selftrain: what finetune does with unlabeled reviews (--unlabeled): self-training.

Each model finetune kept (one per fold of the search, or the one of --no-search) labels the
unlabeled reviews; those it puts in a class with probability at least `threshold` join its
training rows with that class, and the model is trained again, from the start, with the same
settings (self-training: Yarowsky 1995; pseudo-labels: Lee 2013). A fold's pseudo-labels come
from the model that did not train on the fold's held-out rows, so the held-out accuracy stays
honest, and the new models are kept only when it is higher than the first ones' (a tie keeps
the first).

scikit-learn's SelfTrainingClassifier does the like for one estimator, refitting on every row;
here the folds' models and their held-out rows must stay apart, so the loop is written out.
"""

import time

import numpy as np
import scipy.sparse as sp
import torch

from textrelu.errors import TrainingFailed
from textrelu.nn.batches import ArrayData
from textrelu.nn.distributed import total
from textrelu.nn.train import forward_all
from textrelu.progress import say

BATCH = 1024  # unlabeled rows labeled at a time


def pseudo_labeled(net, unlabeled: ArrayData, threshold: float, device="cpu") -> ArrayData:
    """The rows of `unlabeled` that `net` (a softmax head) puts in a class with probability at
    least `threshold`, with that class."""
    outputs, _ = forward_all(net, unlabeled, BATCH, device)  # in inference mode
    confidence, classes = torch.softmax(outputs, dim=1).max(dim=1)
    keep = (confidence >= threshold).numpy()
    return ArrayData(unlabeled.X[keep], classes[keep])


def joined(a: ArrayData, b: ArrayData) -> ArrayData:
    """The rows of `a`, then those of `b` (sparse or dense, as `a`)."""
    X = (
        sp.vstack([a.X, b.X], format="csr")
        if sp.issparse(a.X)
        else np.vstack([a.X, b.X.toarray() if sp.issparse(b.X) else b.X])
    )
    return ArrayData(X, torch.cat([a.y, b.y.to(a.y.dtype)]))


def self_train(runs, unlabeled: ArrayData, retrain, threshold: float, quiet=False, group=None, device="cpu"):
    """Self-train the models of `runs`, a list of (training rows, held-out rows, model, metrics)
    per fold (a softmax head); retrain(train, valid, fold) -> (model, model_args, metrics) trains
    one with the kept settings. Return (the models, their metrics, the record): the new ones when
    their mean held-out accuracy is higher, else those of `runs`."""
    started = time.perf_counter()
    before = float(np.mean([m["valid"]["accuracy"] for *_, m in runs]))
    nets, metrics, counts, failed = [], [], [], None
    for fold, (train, valid, net, first) in enumerate(runs):
        extra = pseudo_labeled(net, unlabeled, threshold, device)
        counts.append(total(len(extra), group))
        if not counts[-1]:  # nothing to add: training again would give the same model
            nets.append(net)
            metrics.append(first)
            continue
        say(
            f"self-training: fold {fold + 1}/{len(runs)}: {counts[-1]:,} of {total(len(unlabeled), group):,} "
            f"unlabeled reviews classed with probability >= {threshold} join {total(len(train), group):,} "
            "training rows",
            quiet,
        )
        try:
            new_net, _, new_metrics = retrain(joined(train, extra), valid, fold)
        except TrainingFailed as e:  # diverged or died: the first models stay
            failed = str(e)
            say(f"self-training: fold {fold + 1} failed ({failed}); the first models are kept", quiet)
            break
        nets.append(new_net)
        metrics.append(new_metrics)
    after = None if failed else float(np.mean([m["valid"]["accuracy"] for m in metrics]))
    kept = after is not None and after > before
    if after is not None:
        say(
            f"self-training: held-out accuracy {before:.4f} before, {after:.4f} after: "
            + ("the self-trained models are kept" if kept else "the first models are kept"),
            quiet,
        )
    record = {
        "threshold": threshold,
        "unlabeled": total(len(unlabeled), group),
        "pseudo_labeled": counts,
        "score_before": before,
        "score_after": after,
        "kept": kept,
        "seconds": time.perf_counter() - started,
        **({"failed": failed} if failed else {}),
    }
    if not kept:
        return [net for _, _, net, _ in runs], [m for *_, m in runs], record
    return nets, metrics, record


def self_train_one(
    train, valid, net, metrics: dict, unlabeled, retrain, threshold, quiet=False, group=None, device="cpu"
):
    """self_train for one model (finetune --no-search, the estimators): (the model, its metrics
    with the record as "self_training")."""
    nets, runs, record = self_train(
        [(train, valid, net, metrics)], unlabeled, retrain, threshold, quiet, group, device
    )
    return nets[0], {**runs[0], "self_training": record}
