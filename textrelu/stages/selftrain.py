"""selftrain: what finetune does with unlabeled reviews (--unlabeled): self-training.

Each model finetune kept (one per fold of the search, or the one of --no-search) labels the
unlabeled reviews; of each class it assigns, the reviews it is surest of join its training rows
with that class, up to `share` of the unlabeled reviews in all, in equal parts per class; and
the model is trained again, from the start, with the same settings (self-training: Yarowsky
1995; pseudo-labels: Lee 2013). A round's models label the next round's rows, up to `rounds`
rounds. A fold's pseudo-labels come from models that did not train on the fold's held-out rows,
so the held-out accuracy stays honest: a round is kept only when it is higher than the best
before it (a tie keeps the earlier models), and the first round not kept ends the loop.

Equal parts of the surest rows rather than every row above a probability: the fold models of
the search stop early at different epochs and are confident to different degrees. On IMDB with
1,000 labels, at probability 0.9 one fold model added 43,241 of 74,000 reviews, another 3,189
(91% of them negative) and a third none; the same share of each class from each gave 87.96%
against 87.36% after 3 rounds (docs/findings.md).

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


def pseudo_labeled(net, unlabeled: ArrayData, share: float, device="cpu") -> ArrayData:
    """The rows of `unlabeled` that `net` (a softmax head) is surest of, with the class it
    gives them: of each class, its surest rows, at most `share` of all the rows divided by the
    number of classes."""
    outputs, _ = forward_all(net, unlabeled, BATCH, device)  # in inference mode
    confidence, classes = torch.softmax(outputs, dim=1).max(dim=1)
    confidence, classes = confidence.numpy(), classes.numpy()
    per_class = int(share * len(classes) / outputs.shape[1])
    keep = [
        rows[np.argsort(-confidence[rows], kind="stable")[:per_class]]
        for rows in (np.flatnonzero(classes == c) for c in range(outputs.shape[1]))
    ]
    keep = np.sort(np.concatenate(keep))
    return ArrayData(unlabeled.X[keep], torch.from_numpy(classes[keep]))


def joined(a: ArrayData, b: ArrayData) -> ArrayData:
    """The rows of `a`, then those of `b` (sparse or dense, as `a`)."""
    X = (
        sp.vstack([a.X, b.X], format="csr")
        if sp.issparse(a.X)
        else np.vstack([a.X, b.X.toarray() if sp.issparse(b.X) else b.X])
    )
    return ArrayData(X, torch.cat([a.y, b.y.to(a.y.dtype)]))


def mean_accuracy(metrics: list[dict]) -> float:
    return float(np.mean([m["valid"]["accuracy"] for m in metrics]))


def self_train(
    runs, unlabeled: ArrayData, retrain, share: float, rounds: int, quiet=False, group=None, device="cpu"
):
    """Self-train the models of `runs`, a list of (training rows, held-out rows, model, metrics)
    per fold (a softmax head); retrain(train, valid, fold) -> (model, model_args, metrics) trains
    one with the kept settings. Return (the models, their metrics, the record): those of the last
    round that raised the mean held-out accuracy, else those of `runs`."""
    started = time.perf_counter()
    nets, metrics = [net for _, _, net, _ in runs], [m for *_, m in runs]
    before = best = mean_accuracy(metrics)
    record = {"share": share, "unlabeled": total(len(unlabeled), group), "rounds": []}
    for number in range(1, rounds + 1):
        round_nets, round_metrics, counts, failed = [], [], [], None
        for fold, ((train, valid, *_), net, first) in enumerate(zip(runs, nets, metrics)):
            extra = pseudo_labeled(net, unlabeled, share, device)
            counts.append(total(len(extra), group))
            if not counts[-1]:  # nothing to add: training again would give the same model
                round_nets.append(net)
                round_metrics.append(first)
                continue
            say(
                f"self-training round {number}: fold {fold + 1}/{len(runs)}: the {counts[-1]:,} surest of "
                f"{record['unlabeled']:,} unlabeled reviews join {total(len(train), group):,} training rows",
                quiet,
            )
            try:
                new_net, _, new_metrics = retrain(joined(train, extra), valid, fold)
            except TrainingFailed as e:  # diverged or died: the models before this round stay
                failed = str(e)
                say(f"self-training round {number}: fold {fold + 1} failed ({failed})", quiet)
                break
            round_nets.append(new_net)
            round_metrics.append(new_metrics)
        score = None if failed else mean_accuracy(round_metrics)
        kept = score is not None and score > best
        record["rounds"].append(
            {"pseudo_labeled": counts, "score": score, "kept": kept, **({"failed": failed} if failed else {})}
        )
        say(
            f"self-training round {number}: held-out accuracy {best:.4f} before, "
            + (f"{score:.4f} after: " if score is not None else "none after: ")
            + ("kept" if kept else "not kept, the models before it stay"),
            quiet,
        )
        if not kept:
            break
        nets, metrics, best = round_nets, round_metrics, score
    record.update(
        score_before=before,
        score_after=best,
        kept=best > before,
        rounds_kept=sum(r["kept"] for r in record["rounds"]),
        seconds=time.perf_counter() - started,
    )
    return nets, metrics, record


def self_train_one(
    train, valid, net, metrics: dict, unlabeled, retrain, share, rounds, quiet=False, group=None, device="cpu"
):
    """self_train for one model (finetune --no-search, the estimators): (the model, its metrics
    with the record as "self_training")."""
    nets, runs, record = self_train(
        [(train, valid, net, metrics)], unlabeled, retrain, share, rounds, quiet, group, device
    )
    return nets[0], {**runs[0], "self_training": record}
