"""images: the paper's image benchmarks (MNIST, CIFAR-10, NORB) on the same model and loops as text.

    textrelu images mnist --data-dir ../shared/data/mnist --subset 10000 --epochs 5 --no-pretrain --out runs/mnist
    textrelu images cifar10 --data-dir ../shared/data/cifar10 --activation softplus
    textrelu images norb --data-dir /data/norb          # jittered-cluttered NORB, 4000-2000 units

    from textrelu.stages.images import images
    metrics = images("mnist", "../shared/data/mnist", layers=3, hidden=1000, pretrain=False, epochs=5)

The loaders (textrelu.data.image_sets) read each dataset's official files, split as in the paper.
`images()` builds a SparseRectifierNet, optionally pre-trains it layer by layer as denoising
autoencoders (masking noise), fine-tunes with early stopping on validation, evaluates on test and
writes metrics.json, config.json and model.pt into the run folder `out`, and the pre-trained stack
as pretrained.pt as soon as pre-training ends. `pretrained=<a run's pretrained.pt>` starts from
that stack instead of pre-training (fine-tuning variants of one pre-training; a pipeline resumed
after pre-training). `labels=N` is the few-labels setting: pre-training reads every training image
(of `subset`), without its label, and fine-tuning only the first N.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from textrelu import checkpoint
from textrelu.data.image_sets import LOADERS, ShiftedImages
from textrelu.errors import BadInput
from textrelu.io import atomic_path, check_outputs, plain
from textrelu.nn.batches import ArrayData
from textrelu.nn.targets import Target
from textrelu.nn.train import evaluate_model, resolve_device
from textrelu.progress import say
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare, path_args, sparsity_line
from textrelu.stages.finetune import finetune_arrays
from textrelu.stages.pretrain import pretrain_arrays

SETTINGS = STAGE_SETTINGS["images"]
# The paper's networks: 3 x 1000 units; NORB 4000 then 2000.
DEFAULT_HIDDEN = {"mnist": [1000, 1000, 1000], "cifar10": [1000, 1000, 1000], "norb": [4000, 2000]}
# The paper's reconstruction for pre-training images: softplus + squared error with rectifier and
# softplus units; tanh units reconstruct through a sigmoid with cross-entropy.
DEFAULT_RECONSTRUCTION = {"relu": "softplus-mse", "softplus": "softplus-mse", "tanh": "sigmoid-ce"}
# The settings that made a pre-trained stack: a run that fine-tunes it records them.
STACK_KEYS = ("subset", "seed", *(k for k, (g, _, _) in SETTINGS.keys.items() if g.name == "pretraining"))


def images(
    dataset: str,
    data_dir,
    out=None,
    pretrained=None,
    device: str = "auto",
    seed: int = 0,
    quiet: bool = False,
    **settings,
) -> dict:
    """Train and test a sparse rectifier net on an image benchmark; return (and write to `out`)
    its metrics. settings: the keys of Net, Finetuning, Pretraining (pretrain_epochs and the
    like) and Images (textrelu.settings); their defaults here are the paper's protocol.

    `pretrained` (the pretrained.pt of an earlier run with the same network) replaces
    pre-training: config.json then gives that stack's settings, under `pretrained_from`."""
    args = dict(locals())
    if out is not None:  # the run folder's files: not the inputs (an earlier run's pretrained.pt)
        written = ("model.pt", "metrics.json", "config.json") + (
            ("pretrained.pt",) if pretrained is None else ()
        )
        check_outputs({f"out {name}": Path(out) / name for name in written}, [data_dir, pretrained])
        finished_run = (Path(out) / "model.pt").exists()
        if (
            pretrained is not None
            and finished_run
            and Path(pretrained).resolve().parent == Path(out).resolve()
        ):
            raise BadInput(
                f"out {out} is the run that made the input {pretrained} (it has its model.pt): "
                "fine-tuning there would overwrite that run; give another out"
            )
    s = SETTINGS.resolve(settings)
    if dataset not in LOADERS:
        raise BadInput(f"dataset must be one of {', '.join(LOADERS)}, got {dataset!r}")
    sizes = s.net.sizes(DEFAULT_HIDDEN[dataset])
    if not sizes:
        raise BadInput("the image benchmarks need at least one hidden layer (layers >= 1)")
    net = dataclasses.replace(s.net, layers=len(sizes), hidden=sizes)
    unit = net.activation.split(":")[0]
    pretraining = dataclasses.replace(
        s.pretraining, reconstruction=s.pretraining.reconstruction or DEFAULT_RECONSTRUCTION[unit]
    )
    run = s.images
    if pretrained is not None and not run.pretrain:
        raise BadInput("pretrained gives a pre-trained stack to fine-tune; leave pre-training on")
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    s.net, s.pretraining = net, pretraining  # as resolved for this dataset and unit
    config = SETTINGS.config(args, s)
    dev = resolve_device(device)

    started = time.perf_counter()
    data = LOADERS[dataset](data_dir)
    load_seconds = time.perf_counter() - started
    n_train = len(data.X_train) if run.subset is None else min(run.subset, len(data.X_train))
    if run.labels is not None and run.labels > n_train:
        raise BadInput(f"labels {run.labels} is more than the {n_train} training images")
    if run.shift >= min(data.shape[1:]):
        raise BadInput(f"shift {run.shift} is not less than the {data.shape[1]}x{data.shape[2]} images")
    n_labeled = n_train if run.labels is None else run.labels
    unlabeled = ArrayData(data.X_train[:n_train])  # pre-training reads no labels
    train = ShiftedImages(data.X_train[:n_labeled], data.y_train[:n_labeled], data.shape, run.shift, seed)
    valid, test = ArrayData(data.X_valid, data.y_valid), ArrayData(data.X_test, data.y_test)
    target = Target("classification", "softmax", classes=list(data.classes))
    say(
        f"{data.name}: {len(train)} labeled train{f' (of {n_train})' if run.labels else ''} / "
        f"{len(valid)} validation / {len(test)} test images of {data.n_features} features, "
        f"loaded in {load_seconds:.1f}s; {sizes} {net.activation} units"
        f"{' (symmetric)' if net.symmetric else ''}, {'pre-trained' if run.pretrain else 'no pre-training'}, "
        f"on {dev}",
        quiet,
    )

    stack, pretrain_metrics = (
        None,
        {
            "pretrain_history": [],
            "pretrain_seconds": 0.0,
            "n_pretrain": len(unlabeled) if run.pretrain else 0,
        },
    )
    if pretrained is not None:
        stack = load_pretrained(pretrained, data.name, net, data.n_features)
        made_with = stack["config"]
        pretrain_metrics.update(
            pretrain_history=stack["metrics"]["pretrain_history"], n_pretrain=stack["metrics"]["n_pretrain"]
        )
        config["pretrained_from"] = {"path": str(pretrained), **{k: made_with[k] for k in STACK_KEYS}}
        config.update({k: made_with[k] for k in STACK_KEYS if k not in ("subset", "seed")})
        n = made_with["pretrain_epochs"]
        say(
            f"pre-trained stack from {pretrained} ({n} epoch{'s' * (n != 1)} per layer, "
            f"L1 {made_with['pretrain_l1']}, {'tied' if made_with['tied'] else 'untied'} decoders)",
            quiet,
        )
    elif run.pretrain:
        model, model_args, m = pretrain_arrays(
            unlabeled, net, pretraining, n_outputs=len(data.classes), device=dev, seed=seed, quiet=quiet
        )
        pretrain_metrics.update(pretrain_history=m["history"], pretrain_seconds=m["seconds"])
        stack = {"model_args": model_args, "state_dict": model.state_dict()}
        if out is not None:  # a run stopped while fine-tuning can start again from here
            checkpoint.save(
                Path(out) / "pretrained.pt",
                "image-pretrained",
                model,
                model_args,
                config,
                {"dataset": data.name, **pretrain_metrics},
            )
    model, model_args, m = finetune_arrays(
        train, valid, target, data.n_features, stack, net, s.training, device=dev, seed=seed, quiet=quiet
    )
    test_metrics = evaluate_model(model, target, test, device=dev)
    sparsity = test_metrics["sparsity"]
    metrics = {
        "dataset": data.name,
        "test_error": 1.0 - test_metrics["accuracy"],
        "valid_error": 1.0 - m["valid"]["accuracy"],
        "sparsity": sparsity,  # per hidden layer, on the test images
        "mean_sparsity": float(np.mean([s["exact_zeros"] for s in sparsity])),
        "test": error_summary(test_metrics),
        "valid": error_summary(m["valid"]),
        "best_epoch": m["best_epoch"],
        "history": m["history"],
        "pretrain_history": pretrain_metrics["pretrain_history"],
        "n_train": len(train),
        "n_pretrain": pretrain_metrics["n_pretrain"],
        "n_valid": len(valid),
        "n_test": len(test),
        "seconds": time.perf_counter() - started,
        "load_seconds": load_seconds,
        "pretrain_seconds": pretrain_metrics["pretrain_seconds"],
        "finetune_seconds": m["seconds"],
        "device": str(dev),
    }
    if "pretrained_from" in config:  # also here, so that a pipeline's metrics.json tells it
        metrics["pretrained_from"] = config["pretrained_from"]
    if out is not None:
        out = Path(out)
        for name, payload in (("config.json", config), ("metrics.json", metrics)):
            with atomic_path(out / name) as tmp:
                Path(tmp).write_text(json.dumps(plain(payload), indent=2) + "\n", encoding="utf-8")
        checkpoint.save(
            out / "model.pt", "image-model", model, model_args, config, metrics, target=target.to_dict()
        )
    return metrics


def error_summary(metrics: dict) -> dict:
    return {"error": 1.0 - metrics["accuracy"], "loss": metrics["loss"], "n": metrics["n"]}


def load_pretrained(path, dataset: str, net, n_features: int) -> dict:
    """The payload of an images run's pretrained.pt, checked to fit this dataset and network."""
    source = checkpoint.load(path, kind="image-pretrained")
    if source["metrics"]["dataset"] != dataset:
        raise BadInput(f"pretrained {path} was pre-trained on {source['metrics']['dataset']}, not {dataset}")
    wanted = {
        "n_features": n_features,
        "hidden": net.hidden,
        "activation": net.activation,
        "symmetric": net.symmetric,
    }
    for key, value in wanted.items():
        if source["model_args"][key] != value:
            raise BadInput(
                f"pretrained {path} has {key} {source['model_args'][key]}, but this run "
                f"asks for {value}; give the same network"
            )
    return source


def finished(args: dict):
    """A finished run (model.pt is written last) keeps its metrics on resume."""
    model = Path(args["out"]) / "model.pt"
    return checkpoint.load(model)["metrics"] if model.is_file() else None


def resumed(args: dict) -> dict:
    """An unfinished run starts again from the stack its pre-training saved, if it got that far."""
    stack = Path(args["out"]) / "pretrained.pt"
    if stack.is_file() and args.get("pretrain") and not args.get("pretrained"):
        return {**args, "pretrained": str(stack)}
    return args


def lines(m: dict) -> list[str]:
    return [
        f"images {m['dataset']}: test error {m['test_error']:.2%} (validation "
        f"{m['valid_error']:.2%}); exact zeros: {sparsity_line(m)}"
    ]


paths = path_args(single=("data_dir", "pretrained"))  # relative to a pipeline file
STAGE = declare(__name__, writes={"out": ("images", "images")})
