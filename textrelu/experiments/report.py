"""report: results tables and plots from run folders, as one Markdown file.

    textrelu report runs/amazon-sentiment-* runs/imdb-sentiment-* --out docs/results.md

Reads each run folder's config.json and metrics.json (written by `textrelu run`), never anything
typed by hand: a comparison run ([compare]) becomes the paper's Table 2 with peers (mean ± standard
deviation over seeds per dataset, their average, exact zeros per hidden layer, time) and PNG plots
(learning curves, test metric against sparsity, hidden-activation histograms, and the labeled-
reviews curve of a semi-supervised run) in a folder beside the Markdown file; an image
benchmark run ([images]) becomes a row of the images table; other runs a line of metrics.
"""

import json
import statistics
import time
from pathlib import Path

from textrelu.errors import BadInput
from textrelu.io import atomic_path
from textrelu.settings import STAGE_SETTINGS


def load_run(run_dir: Path) -> dict:
    """config.json and metrics.json of a run folder, with a clear error for anything else."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except FileNotFoundError as e:
        raise BadInput(
            f"{run_dir} is not a finished run folder: {Path(e.filename).name} is missing "
            "(a run still going, or one that stopped early, has no metrics.json)"
        ) from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{run_dir}: config.json or metrics.json is not valid JSON: {e}") from None
    if "stages" not in config and "test_error" in metrics:  # a `textrelu images --out` folder
        config = {"pipeline": "", "stages": {"images": config}}
        metrics = {"images": metrics, "seconds": metrics["seconds"]}
    if "images" in config["stages"]:  # its settings as the run resolved them, defaults filled in
        images = STAGE_SETTINGS["images"]
        cfg = config["stages"]["images"]
        cfg.update(images.flat(images.resolve({k: v for k, v in cfg.items() if k in images.keys})))
    return {"dir": run_dir, "name": run_dir.name, "config": config, "metrics": metrics}


def spread(values: list[float], scale: float, digits: int) -> str:
    mean = statistics.mean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def metric_of(task: str):
    """(key, label, scale, digits, better) of the table's metric."""
    if task == "sentiment":
        return "accuracy", "accuracy %", 100, 2, "higher"
    return "rmse", "RMSE", 1, 3, "lower"


def compare_section(run: dict, figures: Path, rel: str) -> list[str]:
    from textrelu.experiments.plots import (
        plot_compare_curves,
        plot_histograms,
        plot_label_curve,
        plot_metric_vs_sparsity,
    )

    c, m = run["metrics"]["compare"], run["metrics"]
    key, label, scale, digits, better = metric_of(c["task"])
    datasets, rows = list(c["datasets"]), [r["name"] for r in c["rows"]]
    stage = run["config"]["stages"]["compare"]
    lines = [f"## {run['name']}", ""]
    vocab = m.get("build_vocab", {})
    lines.append(
        f"Task: {c['task']}; test {label} ({better} is better), mean ± standard deviation over "
        f"fine-tuning seeds {c['seeds']} (the average column: over datasets, per seed; "
        f"validation: the early-stopping split, mean over datasets and seeds); "
        f"{vocab.get('terms', '?')} terms from "
        f"{vocab.get('documents', '?')} training reviews. Pipeline `{Path(run['config']['pipeline']).name}`"
        + (
            f" with --set {' --set '.join(run['config']['overrides'])}"
            if run["config"].get("overrides")
            else ""
        )
        + f"; the run took {m['seconds'] / 60:.0f} min; run folder `{run['name']}`."
    )
    lines.append("")
    lines.append(
        "Datasets: "
        + "; ".join(
            f"{d} ({i['n_train']} training, {i['n_test']} test reviews)" for d, i in c["datasets"].items()
        )
        + "."
    )
    if c["pretrained"]:
        lines.append("")
        lines.append(
            "Pre-training (once per architecture, seed "
            + str(stage.get("seed"))
            + ", on "
            + f"{next(iter(c['pretrained'].values()))['n_reviews']} reviews, labels unread; "
            + ", ".join(f"{k}=`{v}`" for k, v in stage.get("pretrain_args", {}).items())
            + "): "
            + "; ".join(f"{a} {p['seconds']:.0f} s" for a, p in c["pretrained"].items())
            + "."
        )
    lines += [
        "",
        f"| model | {' | '.join(datasets)} | average | validation | exact zeros per hidden layer | fine-tune s |",
        "|---|" + "---|" * (len(datasets) + 4),
    ]
    best = {}
    for row in rows:
        cells = [r for r in c["results"] if r["row"] == row]
        if not cells:
            continue
        per = {d: [r["test"][key] for r in cells if r["dataset"] == d] for d in datasets}
        avg = [statistics.mean(v[i] for v in per.values()) for i in range(min(map(len, per.values())))]
        zeros = zeros_text([r["test"]["sparsity"] for r in cells], digits=0) or "—"
        secs = statistics.median(r["seconds"] for r in cells)
        valid = statistics.mean(r["valid"][key] for r in cells)
        best[row] = statistics.mean(avg)
        lines.append(
            f"| {row} | "
            + " | ".join(spread(per[d], scale, digits) for d in datasets)
            + f" | **{spread(avg, scale, digits)}** | {valid * scale:.{digits}f} | {zeros} | {secs:.0f} |"
        )
    for peer in dict.fromkeys(q["name"] for q in c["peers"]):
        same = [q for q in c["peers"] if q["name"] == peer]
        per = {q["dataset"]: q["test"][key] for q in same}
        secs = statistics.median(q["seconds"] for q in same)
        lines.append(
            f"| {peer} (scikit-learn, same vectors) | "
            + " | ".join(f"{per[d] * scale:.{digits}f}" for d in datasets)
            + f" | **{statistics.mean(per.values()) * scale:.{digits}f}** | — | — | {secs:.0f} |"
        )
    lines.append("")
    if best:
        top = (max if better == "higher" else min)(best, key=best.get)
        lines.append(f"Best textrelu row: {top} ({best[top] * scale:.{digits}f}).")
        lines.append("")

    name = run["name"]
    first = datasets[0]
    seed0 = c["seeds"][0]
    firsts = {r["row"]: r for r in c["results"] if r["dataset"] == first and r["seed"] == seed0}
    curves = {row: [(h["epoch"], h[f"valid_{key}"]) for h in r["history"]] for row, r in firsts.items()}
    plots = [
        (
            f"learning curves ({first}, seed {seed0})",
            plot_compare_curves(curves, key, figures / f"{name}-learning-curves.png"),
        )
    ]
    points = {}
    for r in c["results"]:
        if r["test"]["sparsity"]:
            z = statistics.mean(s["exact_zeros"] for s in r["test"]["sparsity"])
            points.setdefault(r["row"], []).append((z, r["test"][key]))
    if points:
        plots.append(
            (
                "test metric against sparsity (every dataset and seed)",
                plot_metric_vs_sparsity(points, key, figures / f"{name}-sparsity.png"),
            )
        )
    hists = {row: r.get("histograms") for row, r in firsts.items() if r.get("histograms")}
    if hists:
        plots.append(
            (
                f"hidden activations on {first}'s test reviews (seed {seed0}; log counts of "
                "the non-zero values)",
                plot_histograms(hists, figures / f"{name}-histograms.png"),
            )
        )
    if c.get("curve"):
        label_curves = {}
        for row in rows:
            for d in datasets:
                vals = [r["test"][key] for r in c["results"] if r["row"] == row and r["dataset"] == d]
                if vals:
                    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                    label_curves.setdefault(row, []).append(
                        (c["datasets"][d]["n_train"], statistics.mean(vals), sd)
                    )
        for p in c["peers"]:
            label_curves.setdefault(f"{p['name']} (scikit-learn)", []).append(
                (c["datasets"][p["dataset"]]["n_train"], p["test"][key], 0.0)
            )
        plots.append(
            (
                "test metric against the number of labeled reviews",
                plot_label_curve(label_curves, key, figures / f"{name}-labels.png"),
            )
        )
    for title, path in plots:
        lines += [f"![{title}]({rel}/{Path(path).name})", ""]
    return lines


# The paper's test errors (%, its Table 1) for (dataset, activation, pre-trained).
PAPER_ERRORS = {
    ("mnist", "relu", True): 1.20,
    ("mnist", "tanh", True): 1.16,
    ("mnist", "softplus", True): 1.17,
    ("mnist", "relu", False): 1.43,
    ("mnist", "tanh", False): 1.57,
    ("mnist", "softplus", False): 1.77,
    ("cifar10", "relu", True): 49.96,
    ("cifar10", "tanh", True): 50.79,
    ("cifar10", "softplus", True): 49.52,
    ("cifar10", "relu", False): 50.86,
    ("cifar10", "tanh", False): 52.62,
    ("cifar10", "softplus", False): 53.20,
    ("norb", "relu", True): 16.46,
    ("norb", "tanh", True): 17.66,
    ("norb", "softplus", True): 19.19,
    ("norb", "relu", False): 16.40,
    ("norb", "tanh", False): 19.29,
    ("norb", "softplus", False): 17.68,
}


# The paper's softplus-to-rectifier interpolation, (1/a) softplus(a x), on NORB: a -> test error %.
PAPER_INTERPOLATION = {"1": 17.68, "1.3": 17.53, "2": 16.9, "3": 16.66, "6": 16.54, "inf": 16.40}


def interpolation_section(image_runs: list) -> list[str]:
    """A table of the runs with activation softplus:A, per dataset and number of training images,
    ordered by A, beside the paper's NORB figures (when two or more A values were run)."""
    groups = {}
    for r in image_runs:
        activation = r["config"]["stages"]["images"]["activation"]
        if activation.startswith("softplus:"):
            m = r["metrics"]["images"]
            groups.setdefault((m["dataset"], m["n_train"]), []).append((activation.split(":", 1)[1], r))
    lines = []
    for (dataset, n_train), runs in groups.items():
        if len(runs) < 2:
            continue
        runs.sort(key=lambda a_run: float(a_run[0]))  # float("inf") sorts last
        lines += [
            f"## Softplus-to-rectifier interpolation, (1/a) softplus(a x): {dataset}, {n_train} training images",
            "",
            "| a | test error | mean exact zeros | the paper's (NORB) | run |",
            "|---|---|---|---|---|",
        ]
        for a, r in runs:
            m = r["metrics"]["images"]
            paper = PAPER_INTERPOLATION.get(a)
            lines.append(
                f"| {a} | **{m['test_error']:.2%}** | {m['mean_sparsity']:.1%} | "
                f"{f'{paper:.2f}%' if paper is not None else '—'} | {r['name']} |"
            )
        lines.append("")
    return lines


# What makes an image run what it is, but for its L1 penalty and seed: a sparsity sweep groups
# the runs alike in every setting of the images stage but these (the sizes stand for hidden,
# pre-training's L1 goes with the run's L1 when it followed it, threads change no result); the
# pre-training settings count for pre-trained runs only.
IMAGES_SETTINGS = STAGE_SETTINGS["images"].keys
NOT_SWEPT = ("l1", "pretrain_l1", "hidden", "threads")
PRETRAINING = tuple(k for k, (group, _, _) in IMAGES_SETTINGS.items() if group.name == "pretraining")


def sweep_group(r: dict):
    """(key, title) of an image run's sparsity-sweep group; None for a run that fine-tuned another
    run's stack (that stack was pre-trained with its own L1)."""
    cfg, m = r["config"]["stages"]["images"], r["metrics"]["images"]
    if cfg["pretrained"]:
        return None
    values = {
        k: cfg[k] for k in IMAGES_SETTINGS if k not in NOT_SWEPT and (cfg["pretrain"] or k not in PRETRAINING)
    }
    if cfg["pretrain"] and cfg["pretrain_l1"] != cfg["l1"]:
        values["pretrain_l1"] = cfg["pretrain_l1"]
    sizes = hidden_text(cfg)
    key = (m["dataset"], m["n_train"], sizes, tuple(sorted(values.items(), key=str)))
    how = (
        f"{values['optimizer']} lr {values['learning_rate']}, batch {values['batch_size']}, "
        f"{values['epochs']} epochs at most"
    )
    if values["pretrain"]:
        how += (
            f", pre-training {values['pretrain_epochs']} epochs/layer at lr "
            f"{values['pretrain_learning_rate']}{', tied decoders' if values['tied'] else ''}"
        )
    extras = [
        name
        for name, on in (
            ("symmetric", values["symmetric"]),
            ("dropout", values["dropout"]),
            ("shifts", values["shift"]),
            ("few labels", values["labels"]),
        )
        if on
    ]
    title = (
        f"{m['dataset']} {sizes} {values['activation']}"
        f"{' pre-trained' if values['pretrain'] else ''} ({m['n_train']} images; {how}"
        f"{''.join(', ' + e for e in extras)})"
    )
    return key, title


def sparsity_sweep_section(image_runs: list, figures: Path) -> list[str]:
    """The sparsity sweep: runs alike in everything but their L1 penalty and seed (sweep_group),
    one row per L1 (mean and spread over seeds), test error against exact zeros, as tables and
    one plot; units without exact zeros (tanh, softplus) have none."""
    groups = {}
    for r in image_runs:
        group = sweep_group(r)
        if group is not None:
            cfg = r["config"]["stages"]["images"]
            groups.setdefault(group, {}).setdefault(float(cfg["l1"]), []).append(r)
    lines, points = [], []
    for (_, title), by_l1 in groups.items():
        # tanh and softplus give no exact zeros to plot against (a tanh run may have a stray one)
        zeros_seen = any(
            r["metrics"]["images"]["mean_sparsity"] >= 0.01 for runs in by_l1.values() for r in runs
        )
        if len(by_l1) < 2 or not zeros_seen:
            continue
        lines += [
            f"## Sparsity sweep: {title}",
            "",
            "| L1 | test error % (seeds) | mean exact zeros | exact zeros per layer | runs |",
            "|---|---|---|---|---|",
        ]
        for l1 in sorted(by_l1):
            ms = [r["metrics"]["images"] for r in by_l1[l1]]
            errors = [m["test_error"] for m in ms]
            zeros = statistics.mean(m["mean_sparsity"] for m in ms)
            lines.append(
                f"| {l1:g} | **{spread(errors, 100, 2)}** ({len(ms)}) | {zeros:.1%} | "
                f"{zeros_text([m['sparsity'] for m in ms])} | "
                f"{', '.join(r['name'] for r in by_l1[l1])} |"
            )
            points.append((title, f"L1 {l1:g}", zeros, statistics.mean(errors)))
        lines.append("")
    if points:
        from textrelu.experiments.plots import plot_error_vs_sparsity

        path = plot_error_vs_sparsity(points, figures / "images-error-vs-sparsity.png")
        lines += [f"![test error against sparsity]({figures.name}/{path.name})", ""]
    return lines


def zeros_text(sparsities: list, digits: int = 1) -> str:
    """Exact zeros per hidden layer, averaged over runs (each run's list of per-layer sparsity
    dicts): 87.1% / 84.0% / 83.2%; empty for networks without hidden layers."""
    return " / ".join(
        f"{statistics.mean(s[j]['exact_zeros'] for s in sparsities):.{digits}%}"
        for j in range(len(sparsities[0]))
    )


def hidden_text(cfg: dict) -> str:
    """An image run's hidden sizes, 1000x1000x1000, from its config (a list, or one size a layer)."""
    hidden = cfg["hidden"]
    if isinstance(hidden, list):
        return "x".join(map(str, hidden))
    if hidden is not None and cfg["layers"]:
        return "x".join([str(hidden)] * cfg["layers"])
    return "default sizes"


def few_labels_section(image_runs: list, figures: Path) -> list[str]:
    """The few-labels experiment: runs made with `labels` set, per dataset and model, test error
    against the number of labeled images, with and without pre-training (a table and a plot)."""
    groups = {}
    for r in image_runs:
        cfg, m = r["config"]["stages"]["images"], r["metrics"]["images"]
        if cfg["labels"]:
            model = f"{hidden_text(cfg)} {cfg['activation']}"
            pretrained = "pre-trained" if cfg["pretrain"] else "no pre-training"
            groups.setdefault((m["dataset"], model), {}).setdefault(m["n_train"], {}).setdefault(
                pretrained, []
            ).append(r)
    lines = []
    for (dataset, model), by_n in groups.items():
        unlabeled = max(
            r["metrics"]["images"]["n_pretrain"]
            for rows in by_n.values()
            for runs in rows.values()
            for r in runs
        )
        source = f", pre-training on {unlabeled} images without their labels" if unlabeled else ""
        lines += [
            f"## Few labels: {dataset}, {model}{source}",
            "",
            "| labeled images | no pre-training | pre-trained | gain (points) | exact zeros (pre-trained) | runs |",
            "|---|---|---|---|---|---|",
        ]
        curves = {}
        for n in sorted(by_n):
            cells, errors = [], {}
            for kind in ("no pre-training", "pre-trained"):
                runs = by_n[n].get(kind, [])
                values = [100 * r["metrics"]["images"]["test_error"] for r in runs]
                if values:
                    errors[kind] = statistics.mean(values)
                    sd = statistics.stdev(values) if len(values) > 1 else 0.0
                    curves.setdefault(kind, []).append((n, errors[kind], sd))
                cells.append(spread([v / 100 for v in values], 100, 2) + "%" if values else "—")
            gain = f"{errors['no pre-training'] - errors['pre-trained']:+.2f}" if len(errors) == 2 else "—"
            zeros = by_n[n].get("pre-trained", [])
            zeros = f"{zeros[0]['metrics']['images']['mean_sparsity']:.1%}" if zeros else "—"
            names = ", ".join(r["name"] for runs in by_n[n].values() for r in runs)
            lines.append(f"| {n} | {cells[0]} | {cells[1]} | {gain} | {zeros} | {names} |")
        from textrelu.experiments.plots import plot_label_curve

        slug = f"{dataset}-{model}".lower().replace(" ", "-")
        path = plot_label_curve(
            curves, "error %", figures / f"images-few-labels-{slug}.png", examples="images"
        )
        lines += ["", f"![test error against labeled images]({figures.name}/{path.name})", ""]
    return lines


def images_line(run: dict) -> str:
    m = run["metrics"]["images"]
    cfg = run["config"]["stages"]["images"]
    zeros = zeros_text([m["sparsity"]])
    sizes = hidden_text(cfg)
    paper = PAPER_ERRORS.get((m["dataset"], cfg["activation"], bool(cfg["pretrain"])))
    settings = f"{cfg['optimizer']} lr {cfg['learning_rate']}, batch {cfg['batch_size']}, L1 {cfg['l1']}"
    source = m.get("pretrained_from")  # a stack pre-trained by another run, with its own settings
    if cfg["pretrain"]:
        made = {**cfg, **(source or {})}  # a pipeline's config gives its own pre-training settings
        settings += (
            f", pre-training {made['pretrain_epochs']} epochs/layer at lr "
            f"{made['pretrain_learning_rate']}, masking noise {made['noise']}"
            f"{', tied decoders' if made['tied'] else ''}"
        )
    if source:
        folder = Path(source["path"]).parent  # RUN_DIR/pretrained.pt, or a pipeline's RUN_DIR/images/
        run_name = folder.parent.name if folder.name == "images" else folder.name
        settings += f" (the stack of `{run_name}`: L1 {source['pretrain_l1']}, seed {source['seed']})"
    if cfg["dropout"] or cfg["input_dropout"]:
        settings += f", dropout {cfg['dropout']} (inputs {cfg['input_dropout']})"
    if cfg["shift"]:
        settings += f", random shifts of up to {cfg['shift']} px"
    if cfg["symmetric"]:
        settings += ", symmetric"
    if cfg["labels"]:
        settings += f", few labels: pre-training on {m['n_pretrain']} images"
    settings += f", best epoch {m['best_epoch']}"
    return (
        f"| {m['dataset']} | {sizes} {cfg['activation']} | {'yes' if cfg['pretrain'] else 'no'} | "
        f"**{m['test_error']:.2%}** | {f'{paper:.2f}%' if paper is not None else '—'} | "
        f"{m['valid_error']:.2%} | {zeros} | {m['n_train']} | {settings} | "
        f"{m['seconds'] / 60:.0f} | {run['name']} |"
    )


def report(run_dirs: list, out, title: str = "textrelu results", intro=None) -> str:
    """Write the Markdown report of `run_dirs` to `out` (plots in <out stem>/ beside it); return it.

    `intro` is a Markdown file put under the title (how the runs were made, say)."""
    if not run_dirs:
        raise BadInput("report needs at least one run folder")
    try:
        intro_text = Path(intro).read_text(encoding="utf-8").strip() if intro else ""
    except FileNotFoundError:
        raise BadInput(f"--intro file {intro} not found") from None
    runs = [load_run(d) for d in run_dirs]
    out = Path(out)
    figures = out.parent / out.stem
    figures.mkdir(parents=True, exist_ok=True)
    names = ", ".join(f"`{r['name']}`" for r in runs)
    lines = [
        f"# {title}",
        "",
        f"Generated by `textrelu report` on {time.strftime('%Y-%m-%d')} from the run folders "
        f"{names}; do not edit by hand: rerun the pipelines "
        "(`textrelu run pipelines/<name>.toml`) and this command.",
        "",
    ]
    if intro_text:
        lines += [intro_text, ""]
    images = []
    for run in runs:
        if "compare" in run["metrics"]:
            lines += compare_section(run, figures, figures.name)
        elif "images" in run["metrics"]:
            images.append(run)
        else:
            from textrelu.experiments.pipeline import summary_lines

            lines += [
                f"## {run['name']}",
                "",
                "```",
                f"run folder: {run['dir']}",
                *summary_lines(run["metrics"]),
                "```",
                "",
            ]
    if images:
        lines += [
            "## Image benchmarks",
            "",
            "| dataset | model | pre-trained | test error | paper | validation error | exact zeros per layer | training images | settings | minutes | run |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [images_line(r) for r in images] + [""]
        lines += sparsity_sweep_section(images, figures)
        lines += interpolation_section(images)
        lines += few_labels_section(images, figures)
    text = "\n".join(lines)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    return text
