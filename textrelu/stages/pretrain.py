"""pretrain: greedy layer-wise denoising-autoencoder pre-training on labeled and unlabeled reviews.

    textrelu pretrain reviews.csv unlabeled.jsonl --vocab vocab.txt --out pretrained.pt

Labels are not read: every review of every file is used. The output file holds the stack of
hidden layers (weights and arguments), the vocabulary, the config and the loss history, and is
the `--init` of `finetune`.
"""

import time

import scipy.sparse as sp
import torch

from textrelu import checkpoint
from textrelu.data.dataset import read_files, to_arrays
from textrelu.data.vocab import Vocabulary, build
from textrelu.errors import BadInput, TooLarge
from textrelu.io import check_outputs
from textrelu.nn import memory
from textrelu.nn.autoencoder import sample_rate_for
from textrelu.nn.distributed import ranks, session, total, writes
from textrelu.nn.model import SparseRectifierNet
from textrelu.nn.train import hidden_sparsity, pretrain_layers, resolve_device
from textrelu.progress import say
from textrelu.settings import STAGE_SETTINGS, Net, Pretraining
from textrelu.stages import declare, finished_checkpoint

SETTINGS = STAGE_SETTINGS["pretrain"]
TEXT_NET = [1000]  # the hidden sizes of a text network whose hidden is unset
MAX_DEAD_SHARE = 0.5  # more units never active than this after pre-training: a warning


def read_vocabulary(vocab) -> Vocabulary:
    """A Vocabulary as given, or read from its file; a binary or damaged file is BadInput."""
    if isinstance(vocab, Vocabulary):
        return vocab
    try:
        return Vocabulary.load(vocab)
    except UnicodeDecodeError:
        raise BadInput(
            f"{vocab} is not a textrelu vocabulary file: it is not UTF-8 text (a binary file?); "
            "give the file written by build-vocab"
        ) from None
    except ValueError as e:  # an edited header (ngrams: x)
        raise BadInput(f"{vocab} is a damaged vocabulary file: {e}") from None
    except OSError as e:
        raise BadInput(f"cannot read vocabulary file {vocab}: {e.strerror or e}") from None


def own_vocabulary(reviews, terms, files, quiet: bool, group=None) -> Vocabulary:
    """The vocabulary of the reviews read from `files` (no --vocab given), stored in the output;
    BadInput under torchrun (`group`), where this rank holds only its share of the rows."""
    if group is not None:
        raise BadInput(
            "under torchrun give --vocab (from build-vocab), or to finetune an --init that carries "
            "one: each rank reads only its share of the rows, too few to count a vocabulary"
        )
    vocabulary, _, n_distinct = build(reviews, terms, quiet, ", ".join(map(str, files)))
    say(
        f"vocabulary: {len(vocabulary)} of {n_distinct} terms ({terms.ngrams}-grams, df >= {terms.min_df}) "
        f"from {vocabulary.n_documents} reviews",
        quiet,
    )
    return vocabulary


def pretrain(
    files: list, vocab, out, device: str = "auto", seed: int = 0, quiet: bool = False, **settings
) -> dict:
    """Pre-train a stack of hidden layers on the reviews of `files`; write `out`.

    vocab: a Vocabulary, its file, or None: built from `files` by the Terms settings.
    settings: the keys of Net, Pretraining, Terms and Reading (textrelu.settings), e.g. layers=3.
    Under torchrun each rank reads its share of the rows and rank 0 writes (nn/distributed.py)."""
    args = dict(locals())
    s = SETTINGS.resolve(settings)
    config = SETTINGS.config(args, s)
    if not s.net.sizes(TEXT_NET):
        raise BadInput("pretrain needs at least one hidden layer (layers >= 1)")
    check_outputs({"--out": out}, [*files, vocab if not isinstance(vocab, Vocabulary) else None])
    with session(resolve_device(device)) as group:
        dev = resolve_device(device) if group is None else group.device
        if group is not None:
            config["world_size"] = group.world_size
            quiet = quiet or not group.main
        torch.manual_seed(seed)
        vocabulary = read_vocabulary(vocab) if vocab is not None else None
        reviews, rejects = read_files(files, s.reading, quiet, shard=group and group.shard)
        if vocabulary is None:
            vocabulary = own_vocabulary(reviews, s.terms, files, quiet, group)
        data = to_arrays(reviews, vocabulary)
        net, model_args, metrics = pretrain_arrays(
            data, s.net, s.training, device=dev, seed=seed, quiet=quiet, group=group
        )
        metrics["n_rejected"] = total(len(rejects), group)
        config["sample_rate"] = metrics["sample_rate"]  # as resolved for the vocabulary's size
        if writes(group):
            checkpoint.save(out, "pretrained", net, model_args, config, metrics, vocab=vocabulary.to_dict())
            say(f"pretrained model -> {out}", quiet)
        if group is not None:
            group.barrier()  # every rank returns once the file is there
    return metrics


def too_big(n_features: int, sizes: list[int], n_outputs: int, group=None, device="cpu") -> str | None:
    """Why a stack of `sizes` cannot pre-train in the memory left, or None: the stack, and the
    largest layer's autoencoder while it trains (encoder and decoder, each in its copies)."""
    widest = max(a * b for a, b in zip([n_features, *sizes], sizes))
    need = memory.FLOAT_BYTES * (
        memory.n_weights(n_features, sizes, n_outputs) + 2 * memory.TRAINING_COPIES * widest
    )
    return memory.too_big(need, f"pre-training {n_features:,} inputs x {sizes} needs", group, device)


def pretrain_arrays(
    data,
    net: Net,
    training: Pretraining,
    n_outputs: int = 2,
    device="cpu",
    seed: int = 0,
    quiet: bool = False,
    group=None,
):
    """Pre-train a new stack on the inputs of `data` (ArrayData); return (net, model_args, metrics).
    `n_outputs`: the size of the (unused) output layer, as the fine-tuned network's will be, so
    that both draw the same random start. `group`: the ranks of a distributed run, `data` this
    one's shard."""
    torch.manual_seed(seed)
    sizes = net.sizes(TEXT_NET)
    why = too_big(data.n_features, sizes, n_outputs, group, device)
    if why:
        raise TooLarge(f"{why}: {memory.FEWER}")
    model_args = {
        "n_features": data.n_features,
        "hidden": sizes,
        "activation": net.activation,
        "n_outputs": n_outputs,
        "head": "softmax",
        "symmetric": net.symmetric,
    }
    model = SparseRectifierNet(**model_args)
    say(
        f"pretraining {len(sizes)} x {sizes} {net.activation} layers on {total(len(data), group)} rows "
        f"of {data.n_features} features, on {device}{ranks(group)}",
        quiet,
    )
    started = time.perf_counter()
    history = pretrain_layers(model, data, training, device=device, seed=seed, quiet=quiet, group=group)
    sparsity = hidden_sparsity(model, data, training.batch_size, device, group)
    for row in sparsity:
        if row["dead_units"] > MAX_DEAD_SHARE:
            say(
                f"warning: {row['dead_units']:.0%} of layer {row['layer']}'s units are never active on "
                f"the pre-training reviews (they died in training); lower --learning-rate (now "
                f"{training.learning_rate:g})",
                quiet,
            )
    metrics = {
        "history": history,
        "sparsity": sparsity,
        "sample_rate": sample_rate_for(data.n_features, training.sample_rate)
        if sp.issparse(data.X)
        else None,
        "n_reviews": total(len(data), group),
        "seconds": time.perf_counter() - started,
        "device": str(device),
    }
    return model, model_args, metrics


finished = finished_checkpoint


def lines(metrics: dict) -> list[str]:
    """Per layer: its epochs and final training loss, and its best held-out loss where rows were held out."""
    out = []
    sparsity = {row["layer"]: row for row in metrics.get("sparsity", [])}  # absent before 3196088
    for layer in dict.fromkeys(row["layer"] for row in metrics["history"]):
        rows = [row for row in metrics["history"] if row["layer"] == layer]
        line = (
            f"pretrain layer {layer}: {len(rows)} epoch(s), final reconstruction loss {rows[-1]['loss']:.4f}"
        )
        if "valid_loss" in rows[0]:
            best = min(rows, key=lambda row: row["valid_loss"])
            line += f", best on held-out reviews {best['valid_loss']:.4f} (epoch {best['epoch']}, kept)"
        if layer in sparsity:
            row = sparsity[layer]
            line += f"; {row['exact_zeros']:.0%} exact zeros, {row['dead_units']:.0%} of units never active"
        out.append(line)
    return out


STAGE = declare(
    __name__,
    reads={"vocab": "vocab"},
    optional=("vocab",),
    writes={"out": ("pretrained", "pretrained.pt")},
)
