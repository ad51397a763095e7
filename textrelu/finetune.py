"""finetune: supervised training for polarity (sentiment) or star ratings (rating).

    textrelu finetune train.csv --task sentiment --vocab vocab.txt --init pretrained.pt --out model.pt

Starts from a pre-trained stack (--init) or from random weights (--layers/--hidden/--activation).
Minibatches are shuffled every epoch; early stopping on a validation split keeps the best epoch.
The model file holds everything `evaluate` and `score` need.
"""

import time

import torch

from . import checkpoint
from .dataset import read_files, to_arrays
from .errors import BadInput
from .io import plain
from .model import ACTIVATIONS, SparseRectifierNet
from .pretrain import check_choice, hidden_sizes
from .progress import say
from .targets import TASKS, Target
from .train import evaluate_model, fit, resolve_device
from .vectorize import nb_log_ratios
from .vocab import Vocabulary


def split_valid(n: int, fraction: float, seed: int):
    """Random train/validation row split (the files are often sorted by class)."""
    if not 0 < fraction < 1:
        raise BadInput(f"--valid-fraction must be in (0, 1), got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    n_valid = max(1, round(n * fraction))
    if n - n_valid < 1:
        raise BadInput(f"{n} training reviews are too few to hold out {fraction:.0%} for validation")
    return order[n_valid:], order[:n_valid]


def load_vocab_and_init(vocab, init):
    """The vocabulary (from --vocab or the --init file) and the pre-trained payload, checked to agree."""
    payload = checkpoint.load(init, kind="pretrained") if init is not None else None
    if vocab is None:
        if payload is None:
            raise BadInput("finetune needs --vocab, or an --init file that carries its vocabulary")
        return Vocabulary.from_dict(payload["vocab"]), payload
    vocabulary = vocab if isinstance(vocab, Vocabulary) else Vocabulary.load(vocab)
    if payload is not None and payload["vocab"]["terms"] != vocabulary.terms:
        raise BadInput(f"--init {init} was pre-trained on another vocabulary than --vocab {vocab}; "
                       "give the same vocabulary file, or leave --vocab out to use the init's")
    return vocabulary, payload


def finetune(files: list, task: str, out, vocab=None, init=None, label_column: str | None = None,
             text_column: str | None = None, valid: list | None = None, valid_fraction: float = 0.1,
             test: list | None = None, epochs: int = 30, layers: int = 1, hidden=1000,
             activation: str = "relu", head: str | None = None, l1: float = 1e-4,
             dropout: float = 0.5, input_dropout: float = 0.2, weight_decay: float = 0.0,
             batch_size: int = 64, learning_rate: float = 1e-3, optimizer: str = "adam",
             nb_weights: bool = False, patience: int = 5, device: str = "auto", seed: int = 0,
             quiet: bool = False) -> dict:
    """Fine-tune on the labeled reviews of `files`; write the model to `out`; return its metrics."""
    config = plain(locals())
    check_choice("task", task, TASKS)
    for name, p in (("dropout", dropout), ("input-dropout", input_dropout)):
        if not 0 <= p < 1:
            raise BadInput(f"--{name} must be in [0, 1), got {p}")
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or l1 < 0 or patience < 1:
        raise BadInput("--epochs, --batch-size, --patience and --learning-rate must be positive, --l1 >= 0")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    vocabulary, init_payload = load_vocab_and_init(vocab, init)

    reviews, rejects = read_files(files, text_column, label_column, quiet, "training")
    target = Target.fit(task, reviews, head)
    data = to_arrays(reviews, vocabulary, target)
    if valid:
        valid_reviews, _ = read_files(valid, text_column, label_column, quiet, "validation")
        train_data, valid_data = data, to_arrays(valid_reviews, vocabulary, target)
    else:
        train_rows, valid_rows = split_valid(len(data), valid_fraction, seed)
        train_data, valid_data = data.subset(train_rows), data.subset(valid_rows)

    net, model_args, metrics = finetune_arrays(
        train_data, valid_data, target, len(vocabulary), init_payload, layers=layers, hidden=hidden,
        activation=activation, dropout=dropout, input_dropout=input_dropout, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, l1=l1, weight_decay=weight_decay,
        optimizer=optimizer, nb_weights=nb_weights, patience=patience, device=dev, seed=seed,
        quiet=quiet)
    metrics["n_rejected"] = len(rejects)
    if test:
        test_reviews, _ = read_files(test, text_column, label_column, quiet, "test")
        metrics["test"] = evaluate_model(net, target, to_arrays(test_reviews, vocabulary, target),
                                         device=dev)
    checkpoint.save(out, kind="model", net=net, model_args=model_args, config=config,
                    metrics=metrics, vocab=vocabulary.to_dict(), target=target.to_dict())
    say(f"model -> {out}", quiet)
    return metrics


def finetune_arrays(train_data, valid_data, target, n_features: int, init_payload=None, *,
                    layers: int = 1, hidden=1000, activation: str = "relu", dropout: float = 0.5,
                    input_dropout: float = 0.2, epochs: int = 30, batch_size: int = 64,
                    learning_rate: float = 1e-3, l1: float = 1e-4, weight_decay: float = 0.0,
                    optimizer: str = "adam", nb_weights: bool = False, patience: int = 5,
                    device="cpu", seed: int = 0, quiet: bool = False):
    """Build the network (from `init_payload`'s pre-trained stack, or random with `layers` hidden
    layers, 0 for a linear model) and fit it; return (net, model_args, metrics).

    nb_weights (sentiment, two classes): the inputs are weighted by their NB log-count ratios on
    `train_data` (Wang & Manning 2012, NBSVM), kept in the model."""
    torch.manual_seed(seed)
    if init_payload is not None:
        model_args = dict(init_payload["model_args"])
    else:
        check_choice("activation", activation, ACTIVATIONS)
        if layers < 0:
            raise BadInput(f"--layers must be 0 (a linear model) or more, got {layers}")
        sizes = [] if layers == 0 else hidden_sizes(layers, hidden)
        model_args = {"n_features": n_features, "hidden": sizes, "activation": activation}
    model_args.update(n_outputs=target.n_outputs, head=target.head, dropout=dropout,
                      input_dropout=input_dropout, input_scale=nb_weights)
    net = SparseRectifierNet(**model_args)
    if nb_weights:
        if target.task != "sentiment" or target.n_outputs != 2:
            raise BadInput("--nb-weights needs a sentiment task with two classes")
        net.input_scale.copy_(torch.from_numpy(nb_log_ratios(train_data.X, train_data.y.numpy())))
    if init_payload is not None:
        checkpoint.load_stack(net, init_payload)
    say(f"fine-tuning {model_args['hidden']} {model_args['activation']} "
        f"({'pre-trained' if init_payload is not None else 'random init'}) for {target.task} on "
        f"{len(train_data)} reviews, validating on {len(valid_data)}, on {device}", quiet)
    started = time.perf_counter()
    history, best_epoch = fit(net, target, train_data, valid_data, epochs=epochs,
                              batch_size=batch_size, learning_rate=learning_rate, l1=l1,
                              weight_decay=weight_decay, optimizer=optimizer, patience=patience,
                              device=device, seed=seed, quiet=quiet)
    metrics = {"history": history, "best_epoch": best_epoch, "n_train": len(train_data),
               "seconds": time.perf_counter() - started, "device": str(device),
               "valid": evaluate_model(net, target, valid_data, device=device)}
    return net, model_args, metrics

