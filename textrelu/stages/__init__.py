"""The stages: one module each, a library function of the same name as its CLI command.

Each stage module ends with its `Stage` declaration: the function, its settings (a
settings.Settings namespace of flat keys), which outputs of earlier stages it reads and what it
writes, how to find a finished output again (resume), and its structured result's summary lines.
`textrelu run` (experiments/pipeline.py) runs, links, resumes and reports stages through these
declarations (and plots the learning curve of a [finetune] stage's history).
"""

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textrelu.settings import STAGE_SETTINGS, Settings


def no_lines(metrics: dict) -> list[str]:
    return []


def path_args(lists: tuple = ("files", "valid", "test"), single: tuple = ()):
    """A `Stage.paths` for arguments holding a list of paths (a lone path becomes a list) or one
    path: each is passed through `resolve` (a pipeline's: relative to the pipeline file)."""

    def resolve_paths(args: dict, resolve) -> None:
        for key in lists:
            if isinstance(args.get(key), str):
                args[key] = [args[key]]
            if args.get(key) is not None:
                args[key] = [resolve(f) for f in args[key]]
        for key in single:
            if args.get(key) is not None:
                args[key] = resolve(args[key])

    return resolve_paths


@dataclass(frozen=True)
class Stage:
    """A stage as `textrelu run` sees it.

    reads: argument -> the output (of an earlier stage) the run passes as that argument;
    optional: the reads a pipeline may do without (finetune's init).
    writes: argument -> (output, its file or folder name in a run folder).
    finished: the stage's resolved arguments -> its result when its output is already complete
    (it is then kept on resume), else None; resumed: the arguments of an unfinished stage on
    resume (to start from what it saved before it stopped).
    paths: resolves the stage's path arguments in place (args, resolve).
    extendable: arguments a finished run may extend on resume (they add results without
    changing those there); check: raises on a bad argument table, before an extended run is saved.
    summary: the function's result -> JSON-able metrics; lines: those metrics -> the lines of a
    run's closing report. searched: settings the stage chooses itself where it is not given them
    (finetune's search), which a run therefore passes only when its pipeline gives them."""

    name: str
    run: Callable
    settings: Settings
    reads: dict = field(default_factory=dict)
    writes: dict = field(default_factory=dict)
    finished: Callable = lambda args: None
    resumed: Callable = lambda args: args
    check: Callable = lambda args: None
    optional: tuple = ()
    paths: Callable = path_args()
    extendable: tuple = ()
    summary: Callable = lambda result: result
    lines: Callable = no_lines
    searched: tuple = ()


HOOKS = ("finished", "resumed", "summary", "lines", "paths", "check")


def declare(module: str, **declared) -> Stage:
    """The Stage of stage module `module` (its __name__): the function named as the module, its
    settings (settings.STAGE_SETTINGS), the hooks it defines under their names (HOOKS: in a
    stage module these names are kept for them), and what `declared` says (reads, writes,
    extendable)."""
    name, namespace = module.rsplit(".", 1)[-1], sys.modules[module]
    hooks = {hook: getattr(namespace, hook) for hook in HOOKS if hasattr(namespace, hook)}
    return Stage(name, getattr(namespace, name), STAGE_SETTINGS[name], **hooks, **declared)


COLUMNS = ("text_column", "label_column")  # what a model's config records of its files


def model_columns(reading, payload: dict, columns: tuple = COLUMNS):
    """`reading` (settings.Reading) with the `columns` a model was trained with (its config) where
    none is given, so that files shaped like the training data need no column options."""
    config = payload.get("config") or {}
    given = {k: config[k] for k in columns if getattr(reading, k) is None and config.get(k) is not None}
    return dataclasses.replace(reading, **given)


def finished_checkpoint(args: dict):
    """`finished` of a stage whose output is one checkpoint file: its metrics once it is there."""
    from textrelu import checkpoint

    return checkpoint.load(args["out"])["metrics"] if Path(args["out"]).is_file() else None


def sparsity_line(metrics: dict) -> str:
    """Exact zeros per hidden layer, in one line: layer 1 87.1%, layer 2 84.0%."""
    return ", ".join(f"layer {s['layer']} {s['exact_zeros']:.1%}" for s in metrics["sparsity"])


def metrics_line(what: str, metrics: dict) -> str:
    """Accuracy or RMSE/MAE, with n and the exact zeros per hidden layer."""
    main = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("accuracy", "rmse", "mae") if k in metrics)
    return f"{what}: {main} (n={metrics['n']}); exact zeros: {sparsity_line(metrics)}"
