"""pretrain: greedy layer-wise denoising-autoencoder pre-training on labeled and unlabeled reviews.

    textrelu pretrain reviews.csv unlabeled.jsonl --vocab vocab.txt --out pretrained.pt

Labels are not read: every review of every file is used. The output file holds the stack of
hidden layers (weights and arguments), the vocabulary, the config and the loss history, and is
the `--init` of `finetune`.
"""

import time

import torch

from . import checkpoint
from .errors import BadInput
from .io import plain
from .model import ACTIVATIONS, SparseRectifierNet
from .autoencoder import RECONSTRUCTIONS
from .dataset import read_files, to_arrays
from .progress import say
from .train import pretrain_layers, resolve_device
from .vocab import Vocabulary


def hidden_sizes(layers: int, hidden) -> list[int]:
    """--layers N --hidden H -> [H]*N; --hidden may also list one size per layer ("1000,500")."""
    if isinstance(hidden, str):
        try:
            hidden = [int(h) for h in hidden.split(",")]
        except ValueError:
            raise BadInput(f"--hidden must be a number of units or a list like 1000,500, got {hidden!r}") from None
    if isinstance(hidden, (list, tuple)) and len(hidden) == 1:
        hidden = hidden[0]
    sizes = list(hidden) if isinstance(hidden, (list, tuple)) else [int(hidden)] * layers
    if layers < 1:
        raise BadInput(f"--layers must be at least 1, got {layers}")
    if len(sizes) != layers:
        raise BadInput(f"--hidden lists {len(sizes)} sizes for {layers} layers")
    if any(h < 1 for h in sizes):
        raise BadInput(f"--hidden must be positive, got {hidden}")
    return sizes


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise BadInput(f"--{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def pretrain(files: list, vocab, out, layers: int = 3, hidden=1000, activation: str = "relu",
             noise: float = 0.25, l1: float = 1e-4, epochs: int = 10, batch_size: int = 64,
             learning_rate: float = 1e-3, reconstruction: str = "sigmoid-ce",
             sample_rate: float = 1.0, optimizer: str = "adam", device: str = "auto",
             seed: int = 0, text_column: str | None = None, quiet: bool = False) -> dict:
    """Pre-train a stack of `layers` hidden layers on the reviews of `files`; write `out`."""
    config = plain(locals())
    sizes = hidden_sizes(layers, hidden)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    if not 0 <= noise < 1:
        raise BadInput(f"--noise must be in [0, 1), got {noise}")
    if not 0 < sample_rate <= 1:
        raise BadInput(f"--sample-rate must be in (0, 1], got {sample_rate}")
    if epochs < 1 or batch_size < 1 or learning_rate <= 0 or l1 < 0:
        raise BadInput("--epochs, --batch-size and --learning-rate must be positive and --l1 >= 0")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    vocabulary = vocab if isinstance(vocab, Vocabulary) else Vocabulary.load(vocab)
    reviews, rejects = read_files(files, text_column=text_column, quiet=quiet)
    data = to_arrays(reviews, vocabulary)
    net, model_args, metrics = pretrain_arrays(
        data, layers=layers, hidden=sizes, activation=activation, noise=noise, l1=l1,
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        reconstruction=reconstruction, sample_rate=sample_rate, optimizer=optimizer, device=dev,
        seed=seed, quiet=quiet)
    metrics["n_rejected"] = len(rejects)
    checkpoint.save(out, kind="pretrained", net=net, model_args=model_args, config=config,
                    metrics=metrics, vocab=vocabulary.to_dict())
    say(f"pretrained model -> {out}", quiet)
    return metrics


def pretrain_arrays(data, *, layers: int = 3, hidden=1000, activation: str = "relu",
                    noise: float = 0.25, l1: float = 1e-4, epochs: int = 10, batch_size: int = 64,
                    learning_rate: float = 1e-3, reconstruction: str = "sigmoid-ce",
                    sample_rate: float = 1.0, optimizer: str = "adam", device="cpu", seed: int = 0,
                    quiet: bool = False):
    """Pre-train a new stack on the inputs of `data` (ArrayData); return (net, model_args, metrics)."""
    torch.manual_seed(seed)
    sizes = hidden_sizes(layers, hidden)
    model_args = {"n_features": data.n_features, "hidden": sizes, "activation": activation,
                  "n_outputs": 2, "head": "softmax"}
    net = SparseRectifierNet(**model_args)
    say(f"pretraining {layers} x {sizes} {activation} layers on {len(data)} reviews, "
        f"{data.n_features} terms, on {device}", quiet)
    started = time.perf_counter()
    history = pretrain_layers(net, data, epochs=epochs, batch_size=batch_size,
                              learning_rate=learning_rate, noise=noise, l1=l1,
                              reconstruction=reconstruction, sample_rate=sample_rate,
                              optimizer=optimizer, device=device, seed=seed, quiet=quiet)
    metrics = {"history": history, "n_reviews": len(data),
               "seconds": time.perf_counter() - started, "device": str(device)}
    return net, model_args, metrics
