"""run: a pipeline file (TOML) that names the stages and their settings, run into one run folder.

    textrelu run pipelines/demo.toml

A pipeline is data. Top-level keys: `name`, `seed` and `device` (passed to every stage that takes
them). Then one table per stage, run in the order of STAGES when present: [build_vocab],
[pretrain], [finetune], [evaluate], [score], [compare] (a comparison table over datasets, models
and seeds, see compare.py) and [images] (an image benchmark). A stage's keys are the arguments
and settings of the library function of the same name (and of the CLI command), as its `Stage`
declaration says; unknown keys, wrong types and values out of range are errors before anything
is made. Relative paths are relative to the pipeline file. The run fills in what links the
stages (each stage's `reads` and `writes`: the vocabulary, the pre-trained stack, the model) and
writes every output, the resolved config (config.json) and the metrics (metrics.json) into
runs/<name>-<time>/.
"""

import inspect
import json
import time
import tomllib
from pathlib import Path

from textrelu.errors import BadInput
from textrelu.experiments import compare
from textrelu.io import atomic_path, inside, plain
from textrelu.nn.distributed import session, writes
from textrelu.progress import say
from textrelu.stages import build_vocab, evaluate, finetune, images, pretrain, score

STAGES = {
    s.name: s
    for s in (
        build_vocab.STAGE,
        pretrain.STAGE,
        finetune.STAGE,
        evaluate.STAGE,
        score.STAGE,
        compare.STAGE,
        images.STAGE,
    )
}
TOP_LEVEL = ("name", "seed", "device", "quiet")


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


def linked(stage) -> set:
    """The arguments the run sets: what a stage reads from others and where it writes."""
    return set(stage.reads) | set(stage.writes)


def arguments(stage) -> dict:
    """A stage function's own arguments (not its settings) -> their defaults (None if required)."""
    return {
        name: None if p.default is inspect.Parameter.empty else p.default
        for name, p in inspect.signature(stage.run).parameters.items()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }


PATH_LISTS = ("files", "valid", "test", "unlabeled", "pretrain_files")  # a path or a list of paths
TOP_LEVEL_TYPES = {"name": str, "seed": int, "device": str, "quiet": bool}
TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}


def fits(value, kind) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind) if isinstance(kind, type) else True


def check_argument(where: str, key: str, value, annotation) -> None:
    """A stage argument given in a pipeline table has its function's type (an unannotated one
    is a path: a string); a list of paths may be one path."""
    if key in PATH_LISTS:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return
        raise BadInput(f"{where} {key} must be a path or a list of paths, got {value!r}")
    if annotation is inspect.Parameter.empty:
        kinds = (str,)
    else:
        kinds = tuple(k for k in getattr(annotation, "__args__", (annotation,)) if k is not type(None))
    if value is None or any(fits(value, k) for k in kinds):
        return
    names = " or ".join(TYPE_NAMES.get(k, getattr(k, "__name__", str(k))) for k in kinds)
    raise BadInput(f"{where} {key} must be {names}, got {value!r}")


def load_pipeline(path: Path, overrides=()) -> dict:
    """Parse and check a pipeline file (with --set overrides): known stages, known keys, settings
    of the right types and ranges, paths made absolute."""
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"pipeline file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: not valid TOML: {e}") from None
    for override in overrides:
        table = override.partition("=")[0].strip().split(".")[0]
        if table in STAGES and table not in spec:
            raise BadInput(f"--set {override}: {path} has no [{table}] stage")
        apply_override(spec, override)
    for key, kind in TOP_LEVEL_TYPES.items():
        if key in spec and not fits(spec[key], kind):
            raise BadInput(f"{path}: {key} must be {TYPE_NAMES[kind]}, got {spec[key]!r}")
    for key in spec:
        if key not in STAGES and key not in TOP_LEVEL:
            raise BadInput(
                f"{path}: unknown key or stage [{key}]; stages are {', '.join(STAGES)}, "
                f"top-level keys {', '.join(TOP_LEVEL)}"
            )
    if not any(name in spec for name in STAGES):
        raise BadInput(f"{path}: no stage to run; add one of {', '.join(f'[{s}]' for s in STAGES)}")
    for name, stage in STAGES.items():
        if name not in spec:
            continue
        table = spec[name]
        if not isinstance(table, dict):
            raise BadInput(f"{path}: [{name}] must be a table of settings, got {table!r}")
        allowed = (set(arguments(stage)) | set(stage.settings.keys)) - linked(stage)
        for key in table:
            if key not in allowed:
                hint = " (the run sets it)" if key in linked(stage) else ""
                raise BadInput(
                    f"{path}: [{name}] has unknown key {key!r}{hint}; allowed: {', '.join(sorted(allowed))}"
                )
        stage.settings.resolve(
            {k: v for k, v in table.items() if k in stage.settings.keys}, f"{path}: [{name}] "
        )
        parameters = inspect.signature(stage.run).parameters
        for key, value in table.items():
            if key in parameters:
                check_argument(f"{path}: [{name}]", key, value, parameters[key].annotation)
        required = [k for k, q in parameters.items() if q.default is q.empty and q.kind is not q.VAR_KEYWORD]
        for key in required:
            if key not in table and key not in linked(stage):
                raise BadInput(f"{path}: [{name}] needs {key}")
        made = {output for n in spec if n in STAGES for output, _ in STAGES[n].writes.values()}
        for arg, output in stage.reads.items():
            if output not in made and arg not in stage.optional:
                makers = [f"[{n}]" for n, s in STAGES.items() if output in (o for o, _ in s.writes.values())]
                raise BadInput(
                    f"{path}: [{name}] reads the {output} that {' or '.join(makers)} makes; add it"
                )
        stage.paths(table, lambda f: resolve_against(path, f))
        stage.check(table)
    return spec


def resolve_against(pipeline: Path, path: str) -> str:
    """A path of a pipeline file, resolved against the file's folder unless absolute."""
    return path if Path(path).is_absolute() else str((pipeline.parent / path).resolve())


def resolved_args(stage, given: dict) -> dict:
    """A stage's arguments and every setting, defaults filled in (what is saved and run), but
    the settings the stage chooses itself (`searched`) where they are not given."""
    settings = {k: v for k, v in given.items() if k in stage.settings.keys}
    args = {**arguments(stage), **{k: v for k, v in given.items() if k not in settings}}
    resolved = stage.settings.flat(stage.settings.resolve(settings))
    return {**args, **{k: v for k, v in resolved.items() if k in settings or k not in stage.searched}}


def run_name(name, where) -> str:
    """A pipeline's `name` as the stem of a folder made inside --runs-dir: one plain name, no
    path (no / or \\, not . or .., not absolute), so that a run writes nowhere else."""
    if not isinstance(name, str):
        raise BadInput(f"{where}: name must be a string, got {name!r}")
    if (
        not name.strip()
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or Path(name).is_absolute()
        or name.startswith(".")
    ):
        raise BadInput(
            f"{where}: name {name!r} must be a plain folder name (no path, no leading dot): "
            "run folders are made inside --runs-dir"
        )
    return name


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


# The stages that every rank of a torchrun runs, data-parallel; rank 0 alone runs the others.
TORCHRUN_STAGES = ("pretrain", "finetune")


def outputs(run_dir: Path) -> dict:
    """Where each output of the stages goes inside a run folder (their `writes`)."""
    return {output: run_dir / file for stage in STAGES.values() for output, file in stage.writes.values()}


def run(pipeline=None, runs_dir="runs", quiet: bool = False, overrides=()) -> dict:
    """Run every stage of `pipeline` into a new run folder; return the metrics and a report.

    `overrides` ("stage.key=VALUE") change the pipeline's settings for this run; config.json
    records them and the settings that resulted."""
    path = Path(pipeline) if pipeline is not None else default_pipeline()
    spec = load_pipeline(path, overrides)
    name = run_name(spec.get("name", path.stem), path)
    quiet = quiet or spec.get("quiet", False)
    runs_dir = Path(runs_dir)
    placeholder = runs_dir / f"{name}-TIME"
    stages = resolve_stages(spec, outputs(placeholder), quiet)  # every error before a folder is made
    with session() as group:
        run_dir = new_run_dir(runs_dir, name) if writes(group) else None
        if group is not None:  # rank 0's folder
            run_dir = Path(group.gather(run_dir and str(run_dir))[0])
        config = {"pipeline": str(path), "run_dir": str(run_dir), "overrides": list(overrides), "stages": {}}
        config["stages"] = {
            n: {k: rebase(v, placeholder, run_dir) for k, v in args.items()} for n, args in stages.items()
        }
        if writes(group):
            with atomic_path(run_dir / "config.json") as tmp, open(tmp, "w") as f:
                json.dump(config, f, indent=2)
        return execute(run_dir, config, group=group)


def rebase(value, old: Path, new: Path):
    """A resolved argument with the placeholder run folder `old` replaced by the real one."""
    if isinstance(value, str) and (value == str(old) or value.startswith(str(old) + "/")):
        return str(new) + value[len(str(old)) :]
    return value


def resolve_stages(spec: dict, files: dict, quiet: bool) -> dict:
    """Each stage's resolved arguments (plain data), links to the run folder's `files` filled in."""
    made = {output for n in spec if n in STAGES for output, _ in STAGES[n].writes.values()}
    resolved = {}
    for name, stage in STAGES.items():
        if name not in spec:
            continue
        given = dict(spec[name])
        for key in ("seed", "device"):
            if key in spec and key in arguments(stage) and key not in given:
                given[key] = spec[key]
        links = {arg: files[output] if output in made else None for arg, output in stage.reads.items()}
        links.update({arg: files[output] for arg, (output, _) in stage.writes.items()})
        resolved[name] = plain(resolved_args(stage, {**given, **links, "quiet": quiet}))
    return resolved


def resume(run_dir, overrides=(), quiet: bool = False) -> dict:
    """Finish an interrupted run in its own folder, with the settings of its config.json.

    Stages whose output is complete (the vocabulary, the pre-trained stack, the model: files
    are written atomically) are not run again; [compare] keeps every finished result; [images]
    keeps a finished run and fine-tunes an unfinished one from its saved pre-training; evaluate
    and score run again. `overrides` may extend what a stage declares `extendable` (add rows,
    seeds or peers to the comparison table); config.json records them. `quiet` silences this
    session's progress, whatever the run's settings."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise BadInput(f"{run_dir} is not a run folder: it has no config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{run_dir / 'config.json'} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise BadInput(f"{run_dir / 'config.json'} is not a run's config: it holds no table")
    if Path(str(config.get("run_dir", ""))).resolve() != run_dir.resolve():
        raise BadInput(
            f"{run_dir / 'config.json'} belongs to the run folder {config.get('run_dir')}; "
            "resume a run in the folder it was made in"
        )
    check_config(run_dir, config)
    with session() as group:
        if overrides:
            extend(config, overrides)
            for name in {o.partition("=")[0].strip().split(".")[0] for o in overrides}:
                STAGES[name].check(config["stages"][name])  # before the change is saved
            if writes(group):
                with atomic_path(run_dir / "config.json") as tmp, open(tmp, "w") as f:
                    json.dump(config, f, indent=2)
        if quiet:  # output only: not saved, as it changes no result
            for settings in config["stages"].values():
                settings["quiet"] = True
        return execute(run_dir, config, resume=True, group=group)


def check_config(run_dir: Path, config: dict) -> None:
    """A config.json that may have been edited: known stages, tables of arguments, and every
    output path (each stage's `writes`) inside the run folder, before anything runs."""
    where = run_dir / "config.json"
    stages = config.get("stages") if isinstance(config, dict) else None
    if not isinstance(stages, dict):
        raise BadInput(f"{where}: has no table of stages; it was not written by textrelu run")
    for name, args in stages.items():
        if name not in STAGES:
            raise BadInput(f"{where}: unknown stage {name!r}; stages are {', '.join(STAGES)}")
        if not isinstance(args, dict):
            raise BadInput(f"{where}: stage {name} must be a table of arguments, got {args!r}")
        for arg in STAGES[name].writes:
            value = args.get(arg)
            if not isinstance(value, str):
                raise BadInput(f"{where}: [{name}] {arg} must be a path in the run folder, got {value!r}")
            inside(run_dir, value, f"{where}: [{name}] {arg}")


def extend(config: dict, overrides) -> None:
    """Apply --set overrides that extend a finished run (a stage's `extendable` arguments)."""
    extendable = [f"{n}.{a}" for n, s in STAGES.items() for a in s.extendable]
    for override in overrides:
        key = override.partition("=")[0].strip()
        if key not in extendable:
            raise BadInput(
                f"--set {override}: a run folder keeps its settings; only "
                f"{', '.join(extendable)} may change there, as they add cells to the "
                "comparison table without changing the ones it holds; start a new run to change more"
            )
        if key.split(".")[0] not in config["stages"]:
            raise BadInput(f"--set {override}: the run has no [{key.split('.')[0]}] stage to add to")
        apply_override(config["stages"], override)
    config["overrides"] = config.get("overrides", []) + list(overrides)


def execute(run_dir: Path, config: dict, resume: bool = False, group=None) -> dict:
    """Run the stages of a resolved config (config.json) in `run_dir`; write metrics.json.

    group: the ranks of a torchrun (nn.distributed.Group): every rank runs the stages that
    train data-parallel (TORCHRUN_STAGES); rank 0 alone runs the others, while the rest wait,
    and writes metrics.json. Every rank sees the same finished outputs on resume, since no
    stage starts before the one before it has ended on every rank."""
    metrics, started = {}, time.perf_counter()
    for name, args in config["stages"].items():
        stage, quiet = STAGES[name], args.get("quiet", False) or not writes(group)
        done = stage.finished(args) if resume else None
        if done is not None:
            say(f"== {name}: done before, kept", quiet)
            metrics[name] = stage.summary(done)
            continue
        say(f"== {name}", quiet)
        if resume:
            args = stage.resumed(args)
        if group is None or name in TORCHRUN_STAGES or group.main:
            metrics[name] = stage.summary(stage.run(**args))  # what is saved is what runs
        if group is not None and name not in TORCHRUN_STAGES:
            group.wait()
    if not writes(group):
        return {"run_dir": str(run_dir), "metrics": metrics, "report": ""}
    metrics["seconds"] = time.perf_counter() - started
    if resume and (run_dir / "metrics.json").is_file():  # a finished run extended: its time and this
        metrics["seconds"] += json.loads((run_dir / "metrics.json").read_text()).get("seconds", 0.0)
    with atomic_path(run_dir / "metrics.json") as tmp, open(tmp, "w") as f:
        json.dump(plain(metrics), f, indent=2)
    plots = []
    if "finetune" in metrics:
        from textrelu.experiments.plots import plot_learning_curve

        plots.append(plot_learning_curve(metrics["finetune"]["history"], run_dir / "learning_curve.png"))
    made = [p for p in outputs(run_dir).values() if p.exists()] + plots
    return {"run_dir": str(run_dir), "metrics": metrics, "report": report(run_dir, metrics, made)}


def summary_lines(metrics: dict) -> list[str]:
    """What each stage of a run found, from its metrics (metrics.json), in stage order."""
    return [line for name, stage in STAGES.items() if name in metrics for line in stage.lines(metrics[name])]


def report(run_dir: Path, metrics: dict, made) -> str:
    """The closing lines of a run: what each stage found, and where each output went."""
    lines = [f"run folder: {run_dir}", *summary_lines(metrics), f"took {metrics['seconds']:.1f}s; outputs:"]
    lines += [f"  {p}" for p in made]
    lines += [f"  {run_dir / 'config.json'} (resolved config)", f"  {run_dir / 'metrics.json'}"]
    return "\n".join(lines)
