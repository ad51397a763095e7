"""compare: the paper's comparison table (its Table 2) plus peers, over datasets and seeds.

A pipeline stage, [compare], after [build_vocab] (whose vocabulary it uses):

    [compare]
    task = "sentiment"                       # or "rating"
    seeds = [0, 1, 2]                        # every row is fine-tuned once per seed
    pretrain_files = ["train.csv", "unlabeled.jsonl"]  # labels not read
    pretrain_args = {epochs = 2, sample_rate = 0.05}   # settings of `pretrain`
    finetune_args = {epochs = 30}                      # settings shared by every row
    [compare.datasets.books]                 # one or more datasets: train, test (and valid)
    train = ["books-train.review"]
    test = ["books-test.review"]
    [[compare.rows]]                         # one row per model; keys of `finetune`, plus
    name = "rectifier, 3 layers, pre-trained"  # its label and whether it starts from a
    layers = 3                                 # pre-trained stack
    activation = "relu"
    pretrain = true

Each dataset is read and vectorized once. Each pre-trained architecture (layers, sizes,
activation) is pre-trained once, with the pipeline's seed, on `pretrain_files` and shared by the
rows and datasets that use it (saved as pretrained-<arch>.pt); seeds vary the fine-tuning: the
validation split, the initialization of the layers not pre-trained, the minibatch order and
dropout. `layers = 0` is the linear model on the same inputs ("no hidden layer"). With
`peers = true`, scikit-learn's tuned linear model (textrelu.experiments.peers) runs on the same vectors;
`peers = ["linear", "nb-linear"]` adds it on NB-weighted vectors (NBSVM-style, sentiment).
Models are not saved (a table holds dozens); every result, with its learning curve, sparsity and
hidden-activation histograms, goes to metrics.json, read by `textrelu report`.

Each finished result is also appended to <out>/results.jsonl as it comes: called again with the
same settings and `out` (`textrelu run --resume RUN_DIR`), compare keeps those results and the
saved pre-trained stacks and runs only what is missing. Rows, seeds and peers may be added then
(`textrelu run --resume RUN_DIR --set compare.seeds=[0,1,2]`): they add cells to the table
without changing the ones there. Every other setting is in the folder's fingerprint, and a row
is known by its name: a name met again with other settings is an error.
"""

import hashlib
import json
import os
import statistics
from pathlib import Path

import numpy as np
import torch

from textrelu import checkpoint
from textrelu.data.dataset import read_files, to_arrays
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput
from textrelu.experiments.peers import fit_peer, peer_kinds
from textrelu.io import atomic_path, plain
from textrelu.nn.targets import Target
from textrelu.nn.train import evaluate_model, resolve_device
from textrelu.progress import bar, say
from textrelu.settings import STAGE_SETTINGS, TASKS, Finetuning, Group, Net, Pretraining, Settings
from textrelu.stages import declare
from textrelu.stages.finetune import finetune_arrays, split_valid
from textrelu.stages.pretrain import TEXT_NET, pretrain_arrays

# A row's settings (over finetune_args); valid_fraction and head are shared by every row.
ROW_SETTINGS = Settings(
    Group("net", Net()), Group("training", Finetuning(), exclude=("valid_fraction", "head"))
)
ROW_KEYS = tuple(ROW_SETTINGS.keys)
SHARED_KEYS = ("valid_fraction", "head")
PRETRAIN_SETTINGS = Settings(Group("training", Pretraining()))
SETTINGS = STAGE_SETTINGS["compare"]
HISTOGRAM_ROWS = 2000  # test reviews whose hidden activations are histogrammed
HISTOGRAM_BINS = 40


def check_keys(where: str, given: dict, allowed) -> None:
    for key in given:
        if key not in allowed:
            raise BadInput(
                f"[compare] {where} has unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
            )


def check_spec(
    datasets: dict, rows: list, seeds: list, finetune_args: dict, pretrain_args: dict, pretrain_files
) -> None:
    if not datasets or not isinstance(datasets, dict):
        raise BadInput("[compare] needs datasets: [compare.datasets.NAME] tables with train and test files")
    for name, files in datasets.items():
        check_keys(f"dataset {name!r}", files, ("train", "valid", "test"))
        if not files.get("train") or not files.get("test"):
            raise BadInput(f"[compare] dataset {name!r} needs train and test files")
    if not rows:
        raise BadInput("[compare] needs rows: [[compare.rows]] tables, each with a name")
    names = [row.get("name") for row in rows]
    if None in names or len(set(names)) != len(names):
        raise BadInput(f"[compare] every row needs a name of its own, got {names}")
    for row in rows:
        check_keys(f"row {row['name']!r}", row, ("name", "pretrain", *ROW_KEYS))
        if row.get("pretrain") and {**finetune_args, **row}.get("layers", 1) == 0:
            raise BadInput(
                f"[compare] row {row['name']!r}: a model without hidden layers has nothing to pre-train"
            )
    if any(row.get("pretrain") for row in rows) and not pretrain_files:
        raise BadInput("[compare] rows with pretrain = true need pretrain_files")
    check_keys("finetune_args", finetune_args, (*SHARED_KEYS, *ROW_KEYS))
    check_keys("pretrain_args", pretrain_args, PRETRAIN_SETTINGS.keys)
    shared = {k: v for k, v in finetune_args.items() if k not in SHARED_KEYS}
    Settings(Group("training", Finetuning())).resolve(
        {k: v for k, v in finetune_args.items() if k in SHARED_KEYS}, "[compare] finetune_args: "
    )
    for row in rows:
        ROW_SETTINGS.resolve(
            {**shared, **{k: v for k, v in row.items() if k in ROW_KEYS}}, f"[compare] row {row['name']!r}: "
        )
    PRETRAIN_SETTINGS.resolve(pretrain_args, "[compare] pretrain_args: ")
    if (
        not isinstance(seeds, (list, tuple))
        or not seeds
        or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise BadInput(f"[compare] seeds must be a list of distinct integers, got {seeds!r}")


def check(args: dict) -> None:
    """A [compare] table as a run resolved it (config.json), checked before anything runs:
    `textrelu run --resume --set compare.seeds=...` calls it before saving the change."""
    check_spec(
        args.get("datasets"),
        args.get("rows"),
        args.get("seeds"),
        dict(args.get("finetune_args") or {}),
        dict(args.get("pretrain_args") or {}),
        args.get("pretrain_files"),
    )
    peer_kinds(args.get("peers"))


def architecture(settings: dict) -> tuple:
    """What a pre-trained stack is shared by: (layers, sizes, activation, symmetric), from a row's
    settings over finetune_args."""
    net = ROW_SETTINGS.resolve({k: v for k, v in settings.items() if k in ROW_KEYS}).net
    sizes = net.sizes(TEXT_NET)
    return (len(sizes), tuple(sizes), net.activation, net.symmetric)


def arch_name(arch: tuple) -> str:
    layers, sizes, activation, symmetric = arch
    return f"{activation}-{'x'.join(map(str, sizes))}" + ("-symmetric" if symmetric else "")


@torch.no_grad()
def activation_histograms(net, data, device) -> list[dict]:
    """Per hidden layer: share of exact zeros and a histogram of the other activations, on up to
    HISTOGRAM_ROWS reviews of `data`."""
    net.to(device).eval()
    rows = data.subset(np.arange(min(len(data), HISTOGRAM_ROWS)))
    per_layer = None
    for x, _ in rows.batches(512, device=device):
        _, hiddens = net(x)
        per_layer = (
            [h.cpu() for h in hiddens]
            if per_layer is None
            else [torch.cat([a, h.cpu()]) for a, h in zip(per_layer, hiddens)]
        )
    result = []
    for i, h in enumerate(per_layer or []):
        values = h.flatten().numpy()
        nonzero = values[values != 0]
        counts, edges = np.histogram(nonzero, bins=HISTOGRAM_BINS) if len(nonzero) else ([], [])
        result.append(
            {
                "layer": i + 1,
                "exact_zeros": float(1 - len(nonzero) / len(values)),
                "counts": list(map(int, counts)),
                "edges": list(map(float, edges)),
            }
        )
    return result


def compare(
    datasets: dict,
    task: str,
    rows: list,
    out,
    vocab,
    seeds: list = (0, 1, 2),
    peers: bool | list = True,
    pretrain_files: list | None = None,
    pretrain_args: dict | None = None,
    finetune_args: dict | None = None,
    curve: bool = False,
    device: str = "auto",
    seed: int = 0,
    quiet: bool = False,
    **settings,
) -> dict:
    """Fine-tune every row on every dataset once per seed (and the peer once); return the results.

    `out` is a folder for the pre-trained stacks. `curve` marks datasets that differ in their
    number of labeled reviews (a semi-supervised curve, plotted by `textrelu report`).
    """
    reading = SETTINGS.resolve(settings, "[compare] ").reading
    text_column, label_column = reading.text_column, reading.label_column
    pretrain_args, finetune_args, seeds = dict(pretrain_args or {}), dict(finetune_args or {}), list(seeds)
    check_spec(datasets, rows, seeds, finetune_args, pretrain_args, pretrain_files)
    kinds = peer_kinds(peers)
    if task not in TASKS:
        raise BadInput(f"[compare] task must be one of {TASKS}, got {task!r}")
    if task != "sentiment" and (
        "nb-linear" in kinds or finetune_args.get("nb_weights") or any(row.get("nb_weights") for row in rows)
    ):
        raise BadInput('[compare] NB weights (nb_weights rows, the nb-linear peer) need task = "sentiment"')
    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocabulary = vocab if isinstance(vocab, Vocabulary) else Vocabulary.load(vocab)
    valid_fraction = finetune_args.pop("valid_fraction", Finetuning.valid_fraction)
    head = finetune_args.pop("head", Finetuning.head)
    # The journal's fingerprint leaves out rows, seeds and peers: adding them adds cells without
    # changing the others. Each row's settings are kept under its name.
    fingerprint = settings_fingerprint(
        datasets,
        task,
        pretrain_files,
        pretrain_args,
        finetune_args,
        valid_fraction,
        head,
        text_column,
        label_column,
        seed,
        vocabulary.terms,
    )
    done = Journal(out / "results.jsonl", fingerprint)
    for row in rows:
        done.check_row(row)

    archs = list(dict.fromkeys(architecture({**finetune_args, **r}) for r in rows if r.get("pretrain")))
    pretrained = pretrain_stacks(
        archs, pretrain_files, pretrain_args, vocabulary, out, done, reading, dev, seed, quiet
    )

    results, peer_results, info = [], [], {}
    progress = bar(total=len(datasets) * len(rows) * len(seeds), desc="compare", unit="run", quiet=quiet)
    for name, files in datasets.items():
        target, data, valid, test = read_dataset(name, files, task, head, vocabulary, reading, quiet)
        info[name] = {"n_train": len(data), "n_test": len(test), "n_valid": len(valid) if valid else None}
        for kind in kinds:
            key = ("peer", name) if kind == "linear" else ("peer", name, kind)
            if not done.has(key):
                done.add(key, {"dataset": name, **fit_peer(task, data, test, target, kind)})
            peer_results.append(done.get(key))
            say(f"{name}: {peer_results[-1]['name']} {main_metric(peer_results[-1]['test']):.4f}", quiet)
        for row in rows:
            for s in seeds:
                if done.has((name, row["name"], s)):
                    results.append(done.get((name, row["name"], s)))
                    progress.update(1)
                    continue
                if valid is None:
                    train_rows, valid_rows = split_valid(len(data), valid_fraction, s)
                    train_data, valid_data = data.subset(train_rows), data.subset(valid_rows)
                else:
                    train_data, valid_data = data, valid
                settings = {**finetune_args, **{k: v for k, v in row.items() if k in ROW_KEYS}}
                init = pretrained.get(architecture(settings)) if row.get("pretrain") else None
                r = ROW_SETTINGS.resolve(settings)
                net, _, metrics = finetune_arrays(
                    train_data,
                    valid_data,
                    target,
                    len(vocabulary),
                    init,
                    r.net,
                    r.training,
                    device=dev,
                    seed=s,
                    quiet=True,
                )
                metrics["test"] = evaluate_model(net, target, test, device=dev)
                cell = {"dataset": name, "row": row["name"], "seed": s, **metrics}
                if s == seeds[0]:
                    cell["histograms"] = activation_histograms(net, test, dev)
                results.append(cell)
                done.add((name, row["name"], s), plain(cell))
                progress.update(1)
                say(
                    f"{name} | {row['name']} | seed {s}: test {main_metric(metrics['test']):.4f}, "
                    f"exact zeros {[round(z['exact_zeros'], 3) for z in metrics['test']['sparsity']]}, "
                    f"{metrics['seconds']:.0f}s",
                    quiet,
                )
    progress.close()
    return {
        "task": task,
        "seeds": seeds,
        "curve": curve,
        "datasets": info,
        "rows": [plain(r) for r in rows],
        "results": results,
        "peers": peer_results,
        "pretrained": {arch_name(a): {**p["metrics"], "path": p["path"]} for a, p in pretrained.items()},
        "summary": table_summary(rows, results, peer_results),
    }


def pretrain_stacks(archs, files, pretrain_args, vocabulary, out, done, reading, device, seed, quiet) -> dict:
    """architecture -> pre-trained stack (model_args, state_dict, metrics, path), each pre-trained
    once on `files`, or kept from an earlier call into the same folder."""
    pretrained = {}
    for arch in archs:
        path = out / f"pretrained-{arch_name(arch)}.pt"
        if done.has(("pretrained", arch_name(arch))) and path.is_file():
            pretrained[arch] = {**checkpoint.load(path, kind="pretrained"), "path": str(path)}
            say(f"pre-trained {arch_name(arch)}: kept from {path}", quiet)
    missing = [a for a in archs if a not in pretrained]
    if not missing:
        return pretrained
    reviews, _ = read_files(files, reading, quiet, "pre-training reviews")
    data = to_arrays(reviews, vocabulary)
    del reviews
    for arch in missing:
        layers, sizes, activation, symmetric = arch
        net, model_args, metrics = pretrain_arrays(
            data,
            Net(layers=layers, hidden=list(sizes), activation=activation, symmetric=symmetric),
            PRETRAIN_SETTINGS.resolve(pretrain_args).training,
            device=device,
            seed=seed,
            quiet=quiet,
        )
        path = out / f"pretrained-{arch_name(arch)}.pt"
        checkpoint.save(
            path,
            "pretrained",
            net,
            model_args,
            {"files": files, "seed": seed, **pretrain_args},
            metrics,
            vocab=vocabulary.to_dict(),
        )
        pretrained[arch] = {
            "model_args": model_args,
            "state_dict": net.state_dict(),
            "metrics": metrics,
            "path": str(path),
        }
        done.add(("pretrained", arch_name(arch)), {})
        say(f"pre-trained {arch_name(arch)} in {metrics['seconds']:.0f}s -> {path}", quiet)
    return pretrained


def read_dataset(name, files, task, head, vocabulary, reading, quiet):
    """(target, training data, validation data or None, test data) of one dataset."""
    train_reviews, _ = read_files(files["train"], reading, quiet, f"{name} training")
    target = Target.fit(task, train_reviews, head)
    data = to_arrays(train_reviews, vocabulary, target)
    del train_reviews
    test_reviews, _ = read_files(files["test"], reading, quiet, f"{name} test")
    test = to_arrays(test_reviews, vocabulary, target)
    valid = None
    if files.get("valid"):
        valid_reviews, _ = read_files(files["valid"], reading, quiet, f"{name} validation")
        valid = to_arrays(valid_reviews, vocabulary, target)
    return target, data, valid, test


def settings_fingerprint(*settings) -> str:
    return hashlib.sha256(
        json.dumps(plain(list(settings)), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]


class Journal:
    """Finished results, one JSON line each, appended and flushed as they come (for resuming).

    The first line holds the settings' fingerprint: a folder holding results of other settings is
    an error, not silently mixed in. Each row's settings are kept under its name. A last line cut
    by an interruption is dropped."""

    VERSION = 2

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.entries = path, {}
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            header = json.loads(lines[0]) if lines else {}
            if lines and (header.get("fingerprint"), header.get("version")) != (fingerprint, self.VERSION):
                raise BadInput(
                    f"{path} holds results of other settings (only rows, seeds and peers "
                    "may be added to a table); compare into a new folder"
                )
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    break  # cut by an interruption: that result runs again
                self.entries[tuple(entry["key"])] = entry["value"]
            # rewrite without a cut last line, so that appends start on a line of their own
            with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"fingerprint": fingerprint, "version": self.VERSION}) + "\n")
                f.writelines(json.dumps({"key": list(k), "value": v}) + "\n" for k, v in self.entries.items())
        else:
            with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps({"fingerprint": fingerprint, "version": self.VERSION}) + "\n")

    def check_row(self, row: dict) -> None:
        """Keep a row's settings under its name; the same name with other settings is an error."""
        key, settings = ("row", row["name"]), plain(row)
        if not self.has(key):
            self.add(key, settings)
        elif self.get(key) != settings:
            raise BadInput(
                f"{self.path}: row {row['name']!r} ran here with other settings "
                f"({json.dumps(self.get(key), sort_keys=True)}); give the new row a new name "
                "or compare into a new folder"
            )

    def has(self, key: tuple) -> bool:
        return tuple(key) in self.entries

    def get(self, key: tuple):
        return self.entries[tuple(key)]

    def add(self, key: tuple, value) -> None:
        self.entries[tuple(key)] = value
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": list(key), "value": plain(value)}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def main_metric(metrics: dict) -> float:
    return metrics["accuracy"] if "accuracy" in metrics else metrics["rmse"]


def table_summary(rows, results, peer_results) -> list[dict]:
    """Per row: the mean test metric over seeds per dataset, and their average (the table's cells)."""
    table = []
    for row in rows:
        cells = {}
        for r in results:
            if r["row"] == row["name"]:
                cells.setdefault(r["dataset"], []).append(main_metric(r["test"]))
        means = {d: statistics.mean(v) for d, v in cells.items()}
        table.append(
            {"row": row["name"], "mean": means, "average": statistics.mean(means.values()) if means else None}
        )
    for name in dict.fromkeys(p["name"] for p in peer_results):
        means = {p["dataset"]: main_metric(p["test"]) for p in peer_results if p["name"] == name}
        table.append({"row": name, "mean": means, "average": statistics.mean(means.values())})
    return table


def paths(args: dict, resolve) -> None:
    """[compare] holds files in pretrain_files and in each dataset's train, valid and test."""
    if isinstance(args.get("pretrain_files"), str):
        args["pretrain_files"] = [args["pretrain_files"]]
    if isinstance(args.get("pretrain_files"), list):
        args["pretrain_files"] = [resolve(f) for f in args["pretrain_files"]]
    datasets = args.get("datasets")
    if not isinstance(datasets, dict):
        return
    for name, files in datasets.items():
        if not isinstance(files, dict):
            raise BadInput(f"[compare.datasets.{name}] must be a table with train and test files")
        for key in ("train", "valid", "test"):
            if isinstance(files.get(key), str):
                files[key] = [files[key]]
            if key in files:
                files[key] = [resolve(f) for f in files[key]]


def lines(c: dict) -> list[str]:
    out = [f"compare ({c['task']}, test, mean over seeds {c['seeds']}):"]
    for entry in c["summary"]:
        cells = ", ".join(f"{d} {v:.4f}" for d, v in entry["mean"].items())
        out.append(f"  {entry['row']}: {cells}; average {entry['average']:.4f}")
    return out


STAGE = declare(
    __name__,
    reads={"vocab": "vocab"},
    writes={"out": ("compare", "compare")},
    extendable=("rows", "seeds", "peers"),
)
