"""search: how finetune chooses the settings it is not given (stages/finetune.py calls it).

Like LogisticRegressionCV, which chooses C by cross-validation and fastText's autotune, which
chooses its settings on a validation file, finetune tries a few candidate settings and keeps the
one that scores best on rows it did not train on:

- Without --valid files the training rows are cut into `folds` stratified folds; a candidate
  trains one model per fold (early-stopped on that fold) and is scored on every fold it has done.
  The kept model is the winner's fold models side by side, their outputs averaged
  (nn.model.merge): a cross-fitted ensemble, in one network, that has seen every training row.
- With --valid files each candidate trains once on all training rows and is scored on them.

Candidates stop early by successive halving over folds: all train on the first fold, the better
half goes on to the second, and so on until one is left, which does the rest; a budget in
seconds stops the other candidates (the leader still trains its remaining folds, so that a busy
machine does not leave the kept model short of folds). The candidates vary only the
settings the user did not give, and come in the order they won across the benchmark sets
(docs/findings.md, benchmarks/defaults.py).
"""

import dataclasses
import functools
import math
import time

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from textrelu.errors import TooLarge, TrainingFailed
from textrelu.nn import memory
from textrelu.nn.distributed import total
from textrelu.nn.model import merge
from textrelu.progress import say
from textrelu.stages.pretrain import TEXT_NET
from textrelu.stages.selftrain import self_train

# Overrides of Net and Finetuning keys, best first. Measured with 5 folds on the Amazon reviews
# and titles and the IMDB first sentences (docs/findings.md): a narrow layer on NB-weighted
# inputs won most; without input dropout, and with label smoothing 0.1 for classes, it does
# better on texts of a few words, where dropping a fifth of them drops much of the text and
# fold models of a few hundred texts a class grow over-confident (Amazon titles, 5 splits:
# 77.58% with neither, 77.91% without input dropout, 78.09% with label smoothing too; on every
# candidate it took the Amazon stars' RMSE from 1.046 to 1.095, so ratings go without); plain
# inputs won on some short texts; the linear model is the paper's "no hidden layer" baseline;
# the paper's wide layer comes last, for it is ten times slower.
CANDIDATES = (
    {"hidden": 100, "layers": 1, "nb_weights": True},
    {"hidden": 100, "layers": 1, "nb_weights": True, "input_dropout": 0.0, "label_smoothing": 0.1},
    {"hidden": 100, "layers": 1, "nb_weights": False},
    {"layers": 0, "nb_weights": True},
    {"hidden": 1000, "layers": 1, "nb_weights": True},
)
# From a pre-trained stack, whose width and depth are fixed: fine-tuned at a tenth of the default
# rate, at which fewer of its units die. On IMDB from a stack pre-trained on 75,000 reviews, the
# NB-weighted network scored 91.83% at 1e-4 against 91.11% at 1e-3, plain inputs 90.85-91.05%
# against 90.07% (benchmarks/pretrained_features.py; docs/findings.md).
STACK_CANDIDATES = (
    {"nb_weights": True, "learning_rate": 1e-4},
    {"nb_weights": False, "learning_rate": 1e-4},
)
SEARCHED = tuple(dict.fromkeys(k for c in (*CANDIDATES, *STACK_CANDIDATES) for k in c))  # may choose
ARCHITECTURE = ("hidden", "layers")  # fixed together: by the user, or by a pre-trained stack
BUDGET_BASE, BUDGET_PER_ROW = 60.0, 0.006  # the default budget: 60 s + 6 ms per training row
# Folds by default: 5; 1 from a pre-trained stack, whose fold models side by side would make a
# model file 5 times the stack's (a layer of 1000 units on 100,000 terms is 400 MB already).
FOLDS, PRETRAINED_FOLDS = 5, 1


def too_big(
    candidate: dict, net, n_features: int, n_outputs: int, n_folds: int, group=None, device="cpu"
) -> str | None:
    """Why `candidate` (its overrides of `net`) cannot train in the memory left over `n_folds`
    folds (memory.search_bytes), or None."""
    sizes = dataclasses.replace(net, **pick(candidate, net)).sizes(TEXT_NET)
    need = memory.search_bytes(memory.n_weights(n_features, sizes, n_outputs), n_folds)
    shape = f"{n_features:,} inputs x {sizes or 'no hidden layer'}"
    models = f"{n_folds} fold models of {shape} need" if n_folds > 1 else f"a model of {shape} needs"
    return memory.too_big(need, models, group, device)


def folds(settings, pretrained: bool) -> int:
    """The folds of a search: settings.folds (Search), or the default for the kind of start."""
    return settings.folds or (PRETRAINED_FOLDS if pretrained else FOLDS)


def candidates(given, two_classes: bool, pretrained: bool, ratings: bool = False) -> list[dict]:
    """CANDIDATES (STACK_CANDIDATES from a pre-trained stack) without the keys the user gave (or
    that the task or a stack fix), the duplicates this leaves dropped; at least one (the given
    settings alone). `ratings`: no label smoothing (CANDIDATES says why)."""
    fixed = set(given)
    if pretrained or fixed & set(ARCHITECTURE):  # the width and the depth go together
        fixed |= set(ARCHITECTURE)
    if not two_classes:
        fixed.add("nb_weights")
    if ratings:
        fixed.add("label_smoothing")
    out = []
    for candidate in STACK_CANDIDATES if pretrained else CANDIDATES:
        kept = {k: v for k, v in candidate.items() if k not in fixed}
        if kept not in out:
            out.append(kept)
    return out


def default_budget(n_rows: int) -> float:
    return BUDGET_BASE + BUDGET_PER_ROW * n_rows


def options(overrides: dict) -> str:
    """Settings as CLI options: {"hidden": 100, "nb_weights": False} -> --hidden 100 --no-nb-weights."""
    out = []
    for key, value in overrides.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            out.append(f"{flag} {value}")
    return " ".join(out)


def fold_splits(data, target, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, held-out rows) per fold; stratified by class for a softmax head."""
    n = len(data)
    if folds > n:
        raise ValueError(f"{n} training rows are too few for {folds} folds")
    if target.head == "softmax" and np.bincount(data.y.numpy()).min() >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), data.y.numpy()))
    return list(KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n)))


def pooled(fold_metrics: list[dict]) -> dict:
    """Metrics over every held-out row: the folds' metrics weighted by their rows (RMSE through
    the mean squared error); per-layer sparsity likewise."""
    n = sum(m["n"] for m in fold_metrics)
    out = {"n": n}
    for key in fold_metrics[0]:
        if key in ("n", "sparsity"):
            continue
        if key == "rmse":
            out[key] = math.sqrt(sum(m["n"] * m[key] ** 2 for m in fold_metrics) / n)
        else:
            out[key] = sum(m["n"] * m[key] for m in fold_metrics) / n
    layers = fold_metrics[0]["sparsity"]
    out["sparsity"] = [
        {
            k: sum(m["n"] * m["sparsity"][i][k] for m in fold_metrics) / n if k != "layer" else row[k]
            for k in row
        }
        for i, row in enumerate(layers)
    ]
    return out


def search(
    data,
    valid_data,
    target,
    train_one,
    net,
    training,
    settings,
    given,
    pretrained: bool = False,
    seed: int = 0,
    quiet: bool = False,
    group=None,
    device="cpu",
    unlabeled=None,
):
    """Choose among the candidates and return (network, model_args, metrics, chosen overrides).

    train_one(train, valid, net=, training=, seed=) -> (network, model_args, metrics) trains one
    model (finetune_arrays); net and training are settings.Net and settings.Finetuning with the
    given settings; settings: settings.Search; given: the keys the user set. group: the ranks of a
    distributed run (nn/distributed.py), each with its share of the rows cut into its own folds;
    the scores are over every rank's rows, and the budget is spent when it is on any rank, so
    that all ranks train the same candidates. device: where the networks train (and stay), whose
    memory bounds the candidates. unlabeled: inputs (ArrayData) the winner's models self-train on
    (stages/selftrain.py)."""
    started = time.perf_counter()

    def spent() -> bool:
        over = time.perf_counter() - started > budget
        return over if group is None else bool(group.max(int(over)))

    def fold_rows(train_rows, held_out):
        """A fold's (training rows, held-out rows); with --valid files, all rows and those."""
        return (
            data if train_rows is None else data.subset(train_rows),
            valid_data if held_out is None else data.subset(held_out),
        )

    def train_with(overrides: dict, train, valid, fold: int):
        """train_one with a candidate's `overrides` of net and training, seeded by the fold."""
        return train_one(
            train,
            valid,
            net=dataclasses.replace(net, **pick(overrides, net)),
            training=dataclasses.replace(training, **pick(overrides, training)),
            seed=seed + fold,
        )

    budget = settings.budget or default_budget(len(data))
    two_classes = target.head == "softmax" and len(target.classes) == 2
    tried = [
        {"settings": c, "scores": [], "runs": [], "nets": [], "seconds": 0.0}
        for c in candidates(given, two_classes, pretrained, ratings=target.task == "rating")
    ]
    if valid_data is not None:
        splits = [(None, None)]
    else:
        splits = fold_splits(data, target, folds(settings, pretrained), seed)
    reasons = []  # why each candidate left out would not fit
    if not pretrained:  # a stack's size is the stack's, trained on one fold
        for t in tried:
            why = too_big(t["settings"], net, data.n_features, target.n_outputs, len(splits), group, device)
            if why:
                reasons.append(why)
                t["failed"] = f"left out: {why}"
                say(f"search: {options(t['settings']) or 'the given settings'} {t['failed']}", quiet)
    alive = [i for i, t in enumerate(tried) if "failed" not in t]
    if not alive:
        raise TooLarge(f"{reasons[0]}: give fewer terms (--size), fewer --hidden units or --folds")
    say(
        f"search: {len(alive)} candidate(s) x {len(splits)} fold(s), budget {budget:.0f} s: "
        + "; ".join(options(tried[i]["settings"]) or "the given settings" for i in alive),
        quiet,
    )
    for fold, (train_rows, held_out) in enumerate(splits):
        for i in alive:
            if len(alive) > 1 and any(t["nets"] for t in tried) and spent():
                break  # no other candidate trains once the budget is spent
            candidate = tried[i]
            train, valid = fold_rows(train_rows, held_out)
            begun = time.perf_counter()
            try:
                net_i, args_i, metrics = train_with(candidate["settings"], train, valid, fold)
            except TrainingFailed as e:  # this candidate diverged or died: it is out, the others go on
                candidate["seconds"] += time.perf_counter() - begun
                candidate["failed"], candidate["error"] = str(e), e
                say(f"search: {options(candidate['settings']) or 'the given settings'} failed: {e}", quiet)
                continue
            candidate["seconds"] += time.perf_counter() - begun
            candidate["nets"].append(net_i)
            candidate["runs"].append(metrics)
            candidate["scores"].append(target.score(metrics["valid"]))
            candidate["args"] = args_i
            say(
                f"search: {options(candidate['settings']) or 'the given settings'}, fold {fold + 1}/{len(splits)}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics["valid"].items() if k in ("accuracy", "rmse"))
                + f" ({time.perf_counter() - begun:.1f} s)",
                quiet,
            )
        done = [i for i in alive if tried[i]["nets"] and "failed" not in tried[i]]
        if not done:  # every candidate failed: the first one's error says what to change
            raise next(t["error"] for t in tried if "error" in t)
        ranked = sorted(done, key=lambda i: -np.mean(tried[i]["scores"][: fold + 1]))
        if len(alive) > 1 and spent():
            # the leader alone goes on, through every fold: the budget bounds the exploration,
            # not the kept model, which would otherwise be worse on a busy machine
            alive = ranked[:1]
            if fold + 1 < len(splits):
                say(
                    f"search: the budget of {budget:.0f} s is spent; the leader, "
                    f"{options(tried[alive[0]]['settings']) or 'the given settings'}, trains its other folds",
                    quiet,
                )
        else:
            alive = ranked[: max(1, math.ceil(len(ranked) / 2))]
        for i in set(range(len(tried))) - set(alive):
            tried[i]["nets"].clear()  # a candidate out of the race keeps its scores, not its models
    best = tried[alive[0]]
    self_training = None
    if unlabeled is not None:
        runs = [(*fold_rows(*split), n, r) for split, n, r in zip(splits, best["nets"], best["runs"])]
        retrain = functools.partial(train_with, best["settings"])
        best["nets"], best["runs"], self_training = self_train(
            runs, unlabeled, retrain, settings.self_training_threshold, quiet, group, device
        )
    args = dict(best["args"])
    if len(best["nets"]) == 1:
        model = best["nets"][0]
    else:
        model = merge(best["nets"])
        args.update(hidden=[layer.n_out for layer in model.layers], input_scale=False)
    first = best["runs"][0]  # the learning curve shown is the first fold's
    metrics = {
        "history": first["history"],
        "best_epoch": first["best_epoch"],
        "n_train": total(len(data), group),
        "device": first["device"],
        "valid": first["valid"] if len(best["runs"]) == 1 else pooled([run["valid"] for run in best["runs"]]),
        "search": {
            "candidates": [
                {
                    "settings": t["settings"],
                    "options": options(t["settings"]),
                    "scores": t["scores"],
                    "mean_score": float(np.mean(t["scores"])) if t["scores"] else None,
                    "seconds": t["seconds"],
                    **({"failed": t["failed"]} if "failed" in t else {}),
                }
                for t in tried
            ],
            "chosen": best["settings"],
            "options": options(best["settings"]),
            "folds": len(best["nets"]),
            "best_epochs": [run["best_epoch"] for run in best["runs"]],
            "budget": budget,
            "seconds": time.perf_counter() - started,
        },
    }
    if self_training is not None:
        metrics["self_training"] = self_training
    return model, args, metrics, best["settings"]


def pick(overrides: dict, settings) -> dict:
    """The overrides that are fields of `settings` (a Net or a Finetuning)."""
    names = {f.name for f in dataclasses.fields(settings)}
    return {k: v for k, v in overrides.items() if k in names}
