"""finetune: supervised training for polarity (sentiment) or star ratings (rating).

    textrelu finetune train.csv --task sentiment --vocab vocab.txt --init pretrained.pt --out model.pt

Starts from a pre-trained stack (--init) or from random weights (--layers/--hidden/--activation).
Minibatches are shuffled every epoch; early stopping on a validation split keeps the best epoch.
The model file holds everything `evaluate` and `score` need.
"""

import functools
import time

import torch

from textrelu import checkpoint
from textrelu.data.dataset import read_files, screen_labels, to_arrays
from textrelu.data.vectorize import nb_log_ratios
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput, BadSetting, TooLarge
from textrelu.io import check_outputs
from textrelu.nn import memory
from textrelu.nn.distributed import fit_target, ranks, session, total, writes
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.train import evaluate_model, fit, resolve_device
from textrelu.progress import say
from textrelu.settings import STAGE_SETTINGS, TASKS, Finetuning, Net
from textrelu.stages import declare, finished_checkpoint, metrics_line, path_args
from textrelu.stages.pretrain import TEXT_NET, own_vocabulary, read_vocabulary
from textrelu.stages.search import SEARCHED, folds, search, too_big
from textrelu.stages.selftrain import self_train_one

SETTINGS = STAGE_SETTINGS["finetune"]


def split_valid(n: int, fraction: float, seed: int):
    """Random train/validation row split (the files are often sorted by class)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_valid = max(1, round(n * fraction))
    if n - n_valid < 1:
        raise BadInput(f"{n} training reviews are too few to hold out {fraction:.0%} for validation")
    return order[n_valid:], order[:n_valid]


def looks_like_stars(classes) -> bool:
    """More than two classes, all numbers: a star column read as sentiment classes."""
    try:
        return len(classes) > 2 and all(float(c) == float(c) for c in classes)
    except ValueError:
        return False


def load_vocab_and_init(vocab, init):
    """The vocabulary (given, or the init file's; None when neither is given) and the pre-trained
    payload, checked to agree."""
    payload = checkpoint.load(init, kind="pretrained") if init is not None else None
    if vocab is None:
        return (Vocabulary.from_dict(payload["vocab"]) if payload is not None else None), payload
    vocabulary = read_vocabulary(vocab)
    if payload is not None and payload["vocab"]["terms"] != vocabulary.terms:
        raise BadInput(
            f"init {init} was pre-trained on another vocabulary than {vocab}; "
            "give the same vocabulary file, or none to use the init's"
        )
    return vocabulary, payload


def finetune(
    files: list,
    task: str,
    out,
    vocab=None,
    init=None,
    valid: list | None = None,
    test: list | None = None,
    unlabeled: list | None = None,
    device: str = "auto",
    seed: int = 0,
    quiet: bool = False,
    **settings,
) -> dict:
    """Fine-tune on the labeled reviews of `files`; write the model to `out`; return its metrics.

    vocab: a Vocabulary or its file; None: the init's, else built from the labeled reviews of
    `files` by the Terms settings (and stored in the model).
    unlabeled: files of reviews without labels to self-train on (sentiment; stages/selftrain.py).
    settings: the keys of Net, Finetuning, Search, Terms and Reading (textrelu.settings), e.g.
    dropout=0.2. Under torchrun each rank reads its share of the rows (of the validation and
    test files too) and rank 0 writes (nn/distributed.py)."""
    args = dict(locals())
    s = SETTINGS.resolve(settings)
    config = SETTINGS.config(args, s)
    if task not in TASKS:
        raise BadInput(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    given_vocab = vocab if not isinstance(vocab, Vocabulary) else None
    check_outputs(
        {"--out": out}, [*files, *(valid or []), *(test or []), *(unlabeled or []), given_vocab, init]
    )
    with session(resolve_device(device)) as group:
        dev = resolve_device(device) if group is None else group.device
        if group is not None:
            config["world_size"] = group.world_size
            quiet = quiet or not group.main
        shard = None if group is None else group.shard
        torch.manual_seed(seed)
        vocabulary, init_payload = load_vocab_and_init(vocab, init)

        max_bad = s.reading.max_bad_labels

        def labeled(paths, what, classes=None):
            """The reviews of `paths` with usable labels; every other row is counted in bad_labels."""
            reviews, rejects = read_files(paths, s.reading, quiet, what, shard)
            reviews, bad = screen_labels(
                reviews, task, max_bad, what, classes, quiet, s.reading.positive_above
            )
            bad_labels[what] = total(len(bad), group)
            return reviews, rejects

        bad_labels = {}
        reviews, rejects = labeled(files, "training")
        if vocabulary is None:
            vocabulary = own_vocabulary(reviews, s.terms, files, quiet, group)
        target = fit_target(task, reviews, s.training.head, group)
        if task == "sentiment" and s.reading.positive_above is None and looks_like_stars(target.classes):
            say(
                f"warning: the sentiment labels look like star ratings ({', '.join(target.classes[:6])}): "
                "each is a class of its own; use --task rating, or --positive-above 3 (for 1-5 stars) "
                "to map them to positive and negative",
                quiet,
            )
        classes = target.classes if target.head == "softmax" else None
        data = to_arrays(reviews, vocabulary, target)
        unlabeled_data = None
        if unlabeled:
            if target.head != "softmax":
                raise BadInput("--unlabeled self-trains on classes: it needs --task sentiment")
            unlabeled_reviews, unlabeled_rejects = read_files(unlabeled, s.reading, quiet, "unlabeled", shard)
            unlabeled_data = to_arrays(unlabeled_reviews, vocabulary)
        valid_data = None
        if valid:
            valid_reviews, _ = labeled(valid, "validation", classes)
            valid_data = to_arrays(valid_reviews, vocabulary, target)
        elif not s.search.search or folds(s.search, init_payload is not None) == 1:
            train_rows, valid_rows = split_valid(len(data), s.training.valid_fraction, seed)
            data, valid_data = data.subset(train_rows), data.subset(valid_rows)

        train = functools.partial(
            finetune_arrays,
            target=target,
            n_features=len(vocabulary),
            init_payload=init_payload,
            device=dev,
            group=group,
        )
        if s.search.search:
            net, model_args, metrics, chosen = search(
                data,
                valid_data,
                target,
                functools.partial(train, quiet=True),
                s.net,
                s.training,
                s.search,
                given=settings,
                pretrained=init_payload is not None,
                seed=seed,
                quiet=quiet,
                group=group,
                device=dev,
                unlabeled=unlabeled_data,
            )
            config.update(chosen)
            say(f"search chose: {metrics['search']['options'] or 'the given settings'}", quiet)
        else:
            if init_payload is None and (
                why := too_big({}, s.net, len(vocabulary), target.n_outputs, 1, group, dev)
            ):
                raise TooLarge(f"{why}: {memory.FEWER}")
            net, model_args, metrics = train(
                data, valid_data, net=s.net, training=s.training, seed=seed, quiet=quiet
            )
            if unlabeled_data is not None:
                net, metrics = self_train_one(
                    data,
                    valid_data,
                    net,
                    metrics,
                    unlabeled_data,
                    lambda train_rows, valid_rows, fold: train(
                        train_rows, valid_rows, net=s.net, training=s.training, seed=seed, quiet=True
                    ),
                    s.search.self_training_threshold,
                    quiet,
                    group,
                    dev,
                )
        if init_payload is not None:  # the network is the pre-trained stack's: record that, not the settings
            config.update(
                layers=len(model_args["hidden"]),
                hidden=model_args["hidden"],
                activation=model_args["activation"],
                symmetric=model_args.get("symmetric", False),
            )
        metrics["n_rejected"] = total(len(rejects), group)
        if unlabeled_data is not None:
            metrics["self_training"]["rejected"] = total(len(unlabeled_rejects), group)
        if test:
            test_reviews, _ = labeled(test, "test", classes)
            test_data = to_arrays(test_reviews, vocabulary, target)
            metrics["test"] = evaluate_model(net, target, test_data, device=dev, group=group)
        metrics["n_bad_labels"] = bad_labels
        if writes(group):
            checkpoint.save(
                out,
                "model",
                net,
                model_args,
                config,
                metrics,
                vocab=vocabulary.to_dict(),
                target=target.to_dict(),
            )
            say(f"model -> {out}", quiet)
        if group is not None:
            group.barrier()  # every rank returns once the file is there
    return metrics


def finetune_arrays(
    train_data,
    valid_data,
    target,
    n_features: int,
    init_payload,
    net: Net,
    training: Finetuning,
    device="cpu",
    seed: int = 0,
    quiet: bool = False,
    group=None,
):
    """Build the network (from `init_payload`'s pre-trained stack, or random as `net` says, no
    hidden layer for a linear model) and fit it; return (net, model_args, metrics).

    training.nb_weights (sentiment, two classes): the inputs are weighted by their NB log-count
    ratios on `train_data` (Wang & Manning 2012, NBSVM), kept in the model.
    group: the ranks of a distributed run, the data this one's shards."""
    torch.manual_seed(seed)
    if init_payload is not None:
        model_args = dict(init_payload["model_args"])
    else:
        model_args = {
            "n_features": n_features,
            "hidden": net.sizes(TEXT_NET),
            "activation": net.activation,
            "symmetric": net.symmetric,
        }
    model_args.update(
        n_outputs=target.n_outputs,
        head=target.head,
        dropout=training.dropout,
        input_dropout=training.input_dropout,
        input_scale=training.nb_weights,
    )
    if training.head is not None and target.task != "rating":
        raise BadSetting("head", "chooses the output of ratings; sentiment has a softmax over its classes")
    if training.label_smoothing and target.head == "regression":
        raise BadSetting("label_smoothing", "needs classes: the regression head of ratings has none")
    model = SparseRectifierNet(**model_args)
    if training.nb_weights:
        if target.task != "sentiment" or target.n_outputs != 2:
            raise BadSetting("nb_weights", "needs a sentiment task with two classes")
        add_up = None if group is None else group.sum_array
        ratios = nb_log_ratios(train_data.X, train_data.y.numpy(), total=add_up)
        model.input_scale.copy_(torch.from_numpy(ratios))
    if init_payload is not None:
        checkpoint.load_stack(model, init_payload)
    say(
        f"fine-tuning {model_args['hidden']} {model_args['activation']} "
        f"({'pre-trained' if init_payload is not None else 'random init'}) for {target.task} on "
        f"{total(len(train_data), group)} rows, validating on {total(len(valid_data), group)}, "
        f"on {device}{ranks(group)}",
        quiet,
    )
    started = time.perf_counter()
    history, best_epoch = fit(
        model, target, train_data, valid_data, training, device=device, seed=seed, quiet=quiet, group=group
    )
    metrics = {
        "history": history,
        "best_epoch": best_epoch,
        "n_train": total(len(train_data), group),
        "seconds": time.perf_counter() - started,
        "device": str(device),
        "valid": evaluate_model(model, target, valid_data, device=device, group=group),
    }
    return model, model_args, metrics


finished = finished_checkpoint


def search_line(metrics: dict) -> str | None:
    """What the search chose, as options, or None for a model trained with --no-search."""
    record = metrics.get("search")
    if record is None:
        return None
    held_out = "cross-validated" if record["folds"] > 1 else "on validation"
    return (
        f"search chose {record['options'] or 'the given settings'} among {len(record['candidates'])} "
        f"candidate(s): {record['folds']} fold model(s) averaged, {held_out}"
    )


def lines(metrics: dict) -> list[str]:
    out = [f"finetune: best epoch {metrics['best_epoch']} of {len(metrics['history'])}"]
    if search_line(metrics):
        out.append(f"finetune: {search_line(metrics)}")
    record = metrics.get("self_training")
    if record and record["score_after"] is not None:
        out.append(
            f"finetune: self-training on {record['unlabeled']:,} unlabeled reviews: held-out accuracy "
            f"{record['score_before']:.4f} before, {record['score_after']:.4f} after, "
            + ("kept" if record["kept"] else "not kept")
        )
    out.append(metrics_line("finetune validation", metrics["valid"]))
    if "test" in metrics:
        out.append(metrics_line("finetune test", metrics["test"]))
    return out


paths = path_args(("files", "valid", "test", "unlabeled"))

STAGE = declare(
    __name__,
    reads={"vocab": "vocab", "init": "pretrained"},
    optional=("vocab", "init"),
    writes={"out": ("model", "model.pt")},
    searched=SEARCHED,
)
