"""What a pre-trained stack's first layer is worth, and whether its units are alive.

    python benchmarks/pretrained_features.py STACK.pt TRAIN.jsonl TEST.jsonl [--starts ...]

STACK.pt is a `textrelu pretrain` output; TRAIN and TEST are labeled sentiment files (two
classes). Prints the stack's layer 1 activity on the test reviews (units ever active, exact
zeros, reviews whose code is all zero), then one row per way of starting a fine-tuned network,
each trained on 90% of TRAIN with early stopping on the other 10% (one split, `--seed`) and
tested on TEST:

- nb-linear: no hidden layer, NB-weighted inputs (finetune's linear search candidate);
- pretrained: the stack's layer, fine-tuned, on plain inputs (at --learning-rate and at 1e-4);
- pretrained-nb: the same on NB-weighted inputs;
- wide-fixed: the stack's layer kept fixed, its output beside an NB-weighted linear map of the
  inputs (wide and deep); wide-tuned: the same, the layer fine-tuned too;
- wide-random: a random layer of the stack's width beside the NB-weighted linear map.

The wide-and-deep network is defined here, not in the package: it was built to measure whether a
pre-trained layer adds to NB-weighted n-grams (docs/findings.md), and it did not pay.
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from textrelu import checkpoint
from textrelu.data.dataset import read_files, to_arrays
from textrelu.data.vectorize import nb_log_ratios
from textrelu.data.vocab import Vocabulary
from textrelu.errors import TrainingFailed
from textrelu.nn.model import SparseRectifierNet, SparsityMeter, drop_inputs, scale_inputs, sparse_affine
from textrelu.nn.targets import Target
from textrelu.nn.train import evaluate_model, fit
from textrelu.settings import Finetuning
from textrelu.stages.finetune import split_valid

STARTS = (
    "nb-linear",
    "pretrained",
    "pretrained-1e-4",
    "pretrained-nb",
    "wide-fixed",
    "wide-tuned",
    "wide-random",
)


class WideAndDeep(SparseRectifierNet):
    """The hidden layers read the plain inputs; a linear map of the NB-weighted inputs is added
    to the output layer's. `fixed`: the hidden layers are not trained."""

    def __init__(self, fixed: bool, **args):
        super().__init__(**args, input_scale=True)
        self.fixed = fixed
        self.wide = nn.Parameter(torch.zeros(args["n_features"], args["n_outputs"]))

    def forward(self, x):
        scaled = scale_inputs(x, self.input_scale)
        if self.training and self.input_dropout > 0:
            x, scaled = drop_inputs(x, self.input_dropout), drop_inputs(scaled, self.input_dropout)
        hiddens = []
        for layer in self.layers:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fixed):
                h = layer(x)
            hiddens.append(h)
            x = F.dropout(layer.signed(h), self.dropout, self.training)
        return sparse_affine(scaled, self.wide, self.output(x)), hiddens


def network(start: str, payload: dict, ratios: torch.Tensor, training: Finetuning):
    stack = stack_args(payload)
    args = dict(
        n_features=stack["n_features"],
        hidden=stack["hidden"],
        n_outputs=2,
        dropout=training.dropout,
        input_dropout=training.input_dropout,
    )
    if start == "nb-linear":
        net = SparseRectifierNet(**{**args, "hidden": []}, input_scale=True)
    elif start.startswith("wide"):
        net = WideAndDeep(start == "wide-fixed", **args)
    else:
        net = SparseRectifierNet(**args, input_scale=start == "pretrained-nb")
    if net.input_scale is not None:
        net.input_scale.copy_(ratios)
    if start.startswith("pretrained") or start in ("wide-fixed", "wide-tuned"):
        checkpoint.load_stack(net, {**payload, "model_args": stack})
    return net


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack")
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--starts", nargs="+", choices=STARTS, default=list(STARTS))
    parser.add_argument("--learning-rate", type=float, default=Finetuning().learning_rate)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    payload = checkpoint.load(args.stack, kind="pretrained")
    vocab = Vocabulary.from_dict(payload["vocab"])
    target = Target.fit("sentiment", read_files([args.train], quiet=True)[0], None)
    data = to_arrays(read_files([args.train], quiet=True)[0], vocab, target)
    test = to_arrays(read_files([args.test], quiet=True)[0], vocab, target)
    train_rows, valid_rows = split_valid(len(data), 0.1, args.seed)
    train, valid = data.subset(train_rows), data.subset(valid_rows)
    ratios = torch.from_numpy(nb_log_ratios(train.X, train.y.numpy()))

    first_layer = stack_args(payload)
    stack = SparseRectifierNet(**first_layer).eval()
    checkpoint.load_stack(stack, {**payload, "model_args": first_layer})
    meter, silent = SparsityMeter(), 0  # one pass: the layer's activity and its all-zero codes
    with torch.no_grad():
        for x, _ in test.batches(1024):
            hiddens = stack(x)[1]
            meter.update(hiddens)
            silent += int((hiddens[0] == 0).all(1).sum())
    (activity,) = meter.result()
    print(
        f"stack {args.stack}, layer 1 on the {len(test)} test reviews: "
        f"{1 - activity['dead_units']:.1%} of units ever active, {activity['exact_zeros']:.1%} exact zeros, "
        f"{silent / len(test):.1%} of reviews with an all-zero code\n"
    )
    print("| start | valid accuracy | test accuracy | layer 1 exact zeros | units never active | s |")
    print("|---|---|---|---|---|---|")
    for start in args.starts:
        started = time.perf_counter()
        torch.manual_seed(args.seed)
        rate = 1e-4 if start == "pretrained-1e-4" else args.learning_rate
        training = Finetuning(learning_rate=rate)
        net = network(start, payload, ratios, training)
        try:
            fit(net, target, train, valid, training, seed=args.seed, quiet=True)
        except TrainingFailed as e:  # a dead or diverged network: a row that says so
            print(f"| {start} | failed: {str(e).split(':')[0]} | | | | |", flush=True)
            continue
        v, t = evaluate_model(net, target, valid), evaluate_model(net, target, test)
        layer = t["sparsity"][0] if t["sparsity"] else None
        zeros = f"{layer['exact_zeros']:.1%}" if layer else "—"
        dead = f"{layer['dead_units']:.1%}" if layer else "—"
        print(
            f"| {start} | {v['accuracy']:.2%} | {t['accuracy']:.2%} | {zeros} | {dead} "
            f"| {time.perf_counter() - started:.0f} |",
            flush=True,
        )


def stack_args(payload: dict) -> dict:
    """The stack's model arguments with its first layer only."""
    return {**payload["model_args"], "hidden": payload["model_args"]["hidden"][:1]}


if __name__ == "__main__":
    main()
