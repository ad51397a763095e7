"""The memory a network's training needs, against what the machine has left: checked before a
run starts, so that a model too big stops at once with a message rather than being killed by the
system minutes later (on IMDB at 1,000,000 terms, finetune's 1000-unit search candidate was
killed at 24 GB)."""

import os
import sys

import torch

# float32 copies of a layer's weights while it trains: the weights, their gradients and Adam's
# two moments (RowAdam keeps both moments too; its sparse gradients are smaller, not counted less)
TRAINING_COPIES = 4
FLOAT_BYTES = 4
FEWER = "give fewer terms (--size) or fewer --hidden units"  # what a network too big can drop


def n_weights(n_features: int, hidden: list[int], n_outputs: int) -> int:
    """The weights of a network of `hidden` layers (none: a linear model) between its inputs and
    outputs, biases left out."""
    sizes = [n_features, *hidden, n_outputs]
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def search_bytes(weights: int, n_folds: int) -> int:
    """The memory a search's candidate of `weights` weights needs over `n_folds` folds: while a
    fold trains, its TRAINING_COPIES; each fold's model once trained, and their merge (one
    network of all the folds' units; benchmarks/search_memory.py checks it against real peaks)."""
    return FLOAT_BYTES * weights * (TRAINING_COPIES + 2 * n_folds)


def available(device="cpu", meminfo: str = "/proc/meminfo") -> int:
    """Bytes `device` can still give. On a CUDA device its free memory (the networks train and
    stay there). On the CPU MemAvailable of /proc/meminfo (the free memory and the caches it can
    drop); where there is none, all of its memory (sysconf); where that is unknown too
    (Windows), no bound."""
    if torch.device(device).type == "cuda":
        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return sys.maxsize


def text(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def too_big(need: int, what: str, group=None, device="cpu") -> str | None:
    """Why `need` bytes cannot be had on `device` ("`what` about 52.2 GB of memory, 17.4 GB is
    available"), or None when they can. Under torchrun too big on one rank is too big on all, so
    that every rank makes the same choice."""
    free = available(device)
    over = need > free if group is None else bool(group.max(int(need > free)))
    kind = "GPU memory" if torch.device(device).type == "cuda" else "memory"
    return f"{what} about {text(need)} of {kind}, {text(free)} is available" if over else None
