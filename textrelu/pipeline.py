"""run: a pipeline file (TOML) that names the stages and their settings, run into one run folder.

    textrelu run pipelines/demo.toml

A pipeline is data. Top-level keys: `name`, `seed` and `device` (passed to every stage that takes
them). Then one table per stage, run in this order when present: [build_vocab], [pretrain],
[finetune], [evaluate], [score], [compare] (a comparison table over datasets, models and seeds,
see compare.py) and [images] (an image benchmark, `textrelu images`). A stage's
keys are the arguments of the library function of the same name (and of the CLI command); unknown keys are errors. Relative paths are relative to the
pipeline file. The run fills in what links the stages (the vocabulary, the pre-trained stack,
the model) and writes every output, the resolved config (config.json) and the metrics
(metrics.json) into runs/<name>-<time>/.
"""

import inspect
import json
import time
import tomllib
from pathlib import Path

from . import checkpoint
from .compare import compare, upgrade_journal
from .errors import BadInput
from .evaluate import evaluate
from .finetune import finetune
from .images import images
from .io import atomic_path, plain
from .pretrain import pretrain
from .progress import say
from .score import score
from .vocab import Vocabulary, build_vocab

STAGES = {"build_vocab": build_vocab, "pretrain": pretrain, "finetune": finetune,
          "evaluate": evaluate, "score": score, "compare": compare, "images": images}
PATH_KEYS = ("files", "valid", "test")
# Arguments that link the stages: the run sets them, a pipeline file may not.
LINKED = {"build_vocab": ("out",), "pretrain": ("vocab", "out"), "finetune": ("vocab", "init", "out"),
          "evaluate": ("model",), "score": ("model", "out", "rejects"), "compare": ("vocab", "out"),
          "images": ("out",)}
TOP_LEVEL = ("name", "seed", "device", "quiet")
# What `textrelu run --resume RUN_DIR --set ...` may change: it adds to the comparison table.
EXTENDABLE = ("compare.rows", "compare.seeds", "compare.peers")


def default_pipeline() -> Path:
    """pipelines/demo.toml in the working directory, else in the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = root / "pipelines" / "demo.toml"
        if candidate.is_file():
            return candidate
    raise BadInput("no pipeline given and no pipelines/demo.toml found here or in the textrelu checkout")


def apply_override(spec: dict, override: str) -> None:
    """--set stage.key=VALUE: VALUE is read as TOML (3, 0.5, true, [0, 1], "text"), else as text."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise BadInput(f"--set takes KEY=VALUE (e.g. compare.seeds=[0]), got {override!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    *tables, last = key.strip().split(".")
    node = spec
    for name in tables:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise BadInput(f"--set {override}: {name} is not a table")
    node[last] = value


def load_pipeline(path: Path, overrides=()) -> dict:
    """Parse and check a pipeline file (with --set overrides): known stages, known keys, paths
    made absolute."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"pipeline file {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: not valid TOML: {e}") from None
    for override in overrides:
        apply_override(spec, override)
    for key, value in spec.items():
        if key not in STAGES and key not in TOP_LEVEL:
            raise BadInput(f"{path}: unknown key or stage [{key}]; stages are {', '.join(STAGES)}, "
                           f"top-level keys {', '.join(TOP_LEVEL)}")
    if not any(stage in spec for stage in STAGES):
        raise BadInput(f"{path}: no stage to run; add one of {', '.join(f'[{s}]' for s in STAGES)}")
    for stage, fn in STAGES.items():
        if stage not in spec:
            continue
        if not isinstance(spec[stage], dict):
            raise BadInput(f"{path}: [{stage}] must be a table of settings, got {spec[stage]!r}")
        allowed = set(inspect.signature(fn).parameters) - set(LINKED[stage])
        for key in spec[stage]:
            if key not in allowed:
                hint = " (the run sets it)" if key in LINKED[stage] else ""
                raise BadInput(f"{path}: [{stage}] has unknown key {key!r}{hint}; allowed: "
                               f"{', '.join(sorted(allowed))}")
        for key in PATH_KEYS:
            if isinstance(spec[stage].get(key), str):
                spec[stage][key] = [spec[stage][key]]
            if key in spec[stage]:
                spec[stage][key] = [resolve_against(path, f) for f in spec[stage][key]]
        if stage == "images":
            for key in ("data_dir", "pretrained"):
                if key in spec[stage]:
                    spec[stage][key] = resolve_against(path, spec[stage][key])
        if stage == "compare":
            resolve_compare_paths(path, spec[stage])
    return spec


def resolve_compare_paths(path: Path, settings: dict) -> None:
    """[compare] holds files in pretrain_files and in each dataset's train, valid and test."""
    if isinstance(settings.get("pretrain_files"), list):
        settings["pretrain_files"] = [resolve_against(path, f) for f in settings["pretrain_files"]]
    datasets = settings.get("datasets")
    if not isinstance(datasets, dict):
        return
    for name, files in datasets.items():
        if not isinstance(files, dict):
            raise BadInput(f"{path}: [compare.datasets.{name}] must be a table with train and test files")
        for key in PATH_KEYS[1:] + ("train",):
            if isinstance(files.get(key), str):
                files[key] = [files[key]]
            if key in files:
                files[key] = [resolve_against(path, f) for f in files[key]]


def resolve_against(pipeline: Path, path: str) -> str:
    """A path of a pipeline file, resolved against the file's folder unless absolute."""
    return path if Path(path).is_absolute() else str((pipeline.parent / path).resolve())


def resolved_args(fn, given: dict) -> dict:
    """The stage's arguments with the function's defaults filled in (what is saved and run)."""
    args = {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}
    args.update(given)
    return args


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """runs/<name>-<time>, with -2, -3, ... when runs start within the same second."""
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        run_dir = runs_dir / (stem if n == 1 else f"{stem}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"could not make a new run folder {stem}-N in {runs_dir}")


def run_outputs(run_dir: Path) -> dict:
    """Where each stage writes inside a run folder."""
    return {"vocab": run_dir / "vocab.txt", "pretrained": run_dir / "pretrained.pt",
            "model": run_dir / "model.pt", "predictions": run_dir / "predictions.jsonl",
            "rejects": run_dir / "rejects.jsonl", "images": run_dir / "images",
            "compare": run_dir / "compare"}


def run(pipeline=None, runs_dir="runs", quiet: bool = False, overrides=()) -> dict:
    """Run every stage of `pipeline` into a new run folder; return the metrics and a report.

    `overrides` ("stage.key=VALUE") change the pipeline's settings for this run; config.json
    records them and the settings that resulted."""
    path = Path(pipeline) if pipeline is not None else default_pipeline()
    spec = load_pipeline(path, overrides)
    name = spec.get("name", path.stem)
    run_dir = new_run_dir(Path(runs_dir), name)
    quiet = quiet or spec.get("quiet", False)
    out = run_outputs(run_dir)
    links = {
        "build_vocab": {"out": out["vocab"]},
        "pretrain": {"vocab": out["vocab"], "out": out["pretrained"]},
        "finetune": {"vocab": out["vocab"], "out": out["model"],
                     "init": out["pretrained"] if "pretrain" in spec else None},
        "evaluate": {"model": out["model"]},
        "score": {"model": out["model"], "out": out["predictions"], "rejects": out["rejects"]},
        "compare": {"vocab": out["vocab"], "out": out["compare"]},
        "images": {"out": out["images"]},
    }
    config = {"pipeline": str(path), "run_dir": str(run_dir), "overrides": list(overrides),
              "stages": {}}
    for stage, fn in STAGES.items():
        if stage not in spec:
            continue
        given = dict(spec[stage])
        params = inspect.signature(fn).parameters
        for key in ("seed", "device"):
            if key in spec and key in params and key not in given:
                given[key] = spec[key]
        config["stages"][stage] = plain(resolved_args(fn, {**given, **links[stage], "quiet": quiet}))
    with atomic_path(run_dir / "config.json") as tmp, open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    return execute(run_dir, config)


def resume(run_dir, overrides=(), quiet: bool = False) -> dict:
    """Finish an interrupted run in its own folder, with the settings of its config.json.

    Stages whose output is complete (the vocabulary, the pre-trained stack, the model: files
    are written atomically) are not run again; [compare] keeps every finished result; [images]
    keeps a finished run and fine-tunes an unfinished one from its saved pre-training; evaluate
    and score run again. `overrides` may add rows, seeds or peers to the comparison table
    (compare.rows, compare.seeds, compare.peers: EXTENDABLE); config.json records them. `quiet`
    silences this session's progress, whatever the run's settings."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise BadInput(f"{run_dir} is not a run folder: it has no config.json") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{run_dir / 'config.json'} is not valid JSON: {e}") from None
    if Path(config.get("run_dir", "")).resolve() != run_dir.resolve():
        raise BadInput(f"{run_dir / 'config.json'} belongs to the run folder {config.get('run_dir')}; "
                       "resume a run in the folder it was made in")
    if overrides:
        if "compare" in config["stages"]:
            upgrade_journal(config["stages"]["compare"])  # checked against the settings it was made with
        extend(config, overrides)
        with atomic_path(run_dir / "config.json") as tmp, open(tmp, "w") as f:
            json.dump(config, f, indent=2)
    if quiet:  # output only: not saved, as it changes no result
        for settings in config["stages"].values():
            settings["quiet"] = True
    return execute(run_dir, config, resume=True)


def extend(config: dict, overrides) -> None:
    """Apply --set overrides that add cells to a run's comparison table to its resolved config."""
    for override in overrides:
        key = override.partition("=")[0].strip()
        if key not in EXTENDABLE:
            raise BadInput(f"--set {override}: a run folder keeps its settings; only "
                           f"{', '.join(EXTENDABLE)} may change there, as they add cells to the "
                           "comparison table without changing the ones it holds; start a new run to change more")
        if "compare" not in config["stages"]:
            raise BadInput(f"--set {override}: the run has no [compare] stage to add to")
        apply_override(config["stages"], override)
    config["overrides"] = config.get("overrides", []) + list(overrides)


def finished_output(stage: str, settings: dict):
    """The metrics of a stage whose output is already complete, else None (resume)."""
    if stage == "build_vocab" and Path(settings["out"]).is_file():
        return Vocabulary.load(settings["out"])
    if stage in ("pretrain", "finetune") and Path(settings["out"]).is_file():
        return checkpoint.load(settings["out"])["metrics"]
    if stage == "images" and (Path(settings["out"]) / "model.pt").is_file():  # written last
        return checkpoint.load(Path(settings["out"]) / "model.pt")["metrics"]
    return None


def resumed_settings(stage: str, settings: dict) -> dict:
    """An unfinished stage's settings on resume: an images run starts from its saved pre-training."""
    stack = Path(settings["out"]) / "pretrained.pt" if stage == "images" else None
    if stack is not None and stack.is_file() and settings.get("pretrain") and not settings.get("pretrained"):
        return {**settings, "pretrained": str(stack)}
    return settings


def execute(run_dir: Path, config: dict, resume: bool = False) -> dict:
    """Run the stages of a resolved config (config.json) in `run_dir`; write metrics.json."""
    metrics, started = {}, time.perf_counter()
    for stage, settings in config["stages"].items():
        quiet = settings.get("quiet", False)
        done = finished_output(stage, settings) if resume else None
        if done is not None:
            say(f"== {stage}: done before, kept", quiet)
            metrics[stage] = summarize(stage, done)
            continue
        say(f"== {stage}", quiet)
        if resume:
            settings = resumed_settings(stage, settings)
        result = STAGES[stage](**settings)  # what is saved is what runs
        metrics[stage] = summarize(stage, result)
    metrics["seconds"] = time.perf_counter() - started
    if resume and (run_dir / "metrics.json").is_file():  # a finished run extended: its time and this
        metrics["seconds"] += json.loads((run_dir / "metrics.json").read_text()).get("seconds", 0.0)
    with atomic_path(run_dir / "metrics.json") as tmp, open(tmp, "w") as f:
        json.dump(plain(metrics), f, indent=2)
    plots = []
    if "finetune" in metrics:
        from .plots import plot_learning_curve
        plots.append(plot_learning_curve(metrics["finetune"]["history"], run_dir / "learning_curve.png"))
    outputs = [p for p in run_outputs(run_dir).values() if p.exists()] + plots
    return {"run_dir": str(run_dir), "metrics": metrics, "report": report(run_dir, metrics, outputs)}


def summarize(stage: str, result):
    """What each stage returns, as JSON-able metrics."""
    if stage == "build_vocab":
        return {"terms": len(result), "documents": result.n_documents}
    return result


def sparsity_line(metrics: dict) -> str:
    return ", ".join(f"layer {s['layer']} {s['exact_zeros']:.1%}" for s in metrics["sparsity"])


def report(run_dir: Path, metrics: dict, outputs) -> str:
    """The closing lines of a run: metrics, sparsity, and where each output went."""
    lines = [f"run folder: {run_dir}"]
    splits = []  # (what, metrics with a "sparsity" list)
    if "finetune" in metrics:
        splits += [("finetune validation", metrics["finetune"]["valid"])]
        if "test" in metrics["finetune"]:
            splits += [("finetune test", metrics["finetune"]["test"])]
    if "evaluate" in metrics:
        splits += [("evaluate", metrics["evaluate"])]
    for what, values in splits:
        main = ", ".join(f"{k} {values[k]:.4f}" for k in ("accuracy", "rmse", "mae") if k in values)
        lines.append(f"{what}: {main} (n={values['n']}); exact zeros: {sparsity_line(values)}")
    if "compare" in metrics:
        c = metrics["compare"]
        lines.append(f"compare ({c['task']}, test, mean over seeds {c['seeds']}):")
        for entry in c["summary"]:
            cells = ", ".join(f"{d} {v:.4f}" for d, v in entry["mean"].items())
            lines.append(f"  {entry['row']}: {cells}; average {entry['average']:.4f}")
    if "images" in metrics:
        m = metrics["images"]
        lines.append(f"images {m['dataset']}: test error {m['test_error']:.2%} (validation "
                     f"{m['valid_error']:.2%}); exact zeros: {sparsity_line(m)}")
    if "score" in metrics:
        s = metrics["score"]
        lines.append(f"score: read {s['read']} = scored {s['scored']} + rejected {s['rejected']}")
    lines.append(f"took {metrics['seconds']:.1f}s; outputs:")
    lines += [f"  {p}" for p in outputs]
    lines += [f"  {run_dir / 'config.json'} (resolved config)", f"  {run_dir / 'metrics.json'}"]
    return "\n".join(lines)
