"""The textrelu command line: a thin Typer layer over the library functions of the same names.

Each command's settings are options made from the stage's settings (textrelu.settings), so an
option, its default and its help are declared once. Exit codes: 0 success, 2 bad usage or bad
input (the message names the file and row, or the setting; a file that cannot be read or written
names its path), 1 training that failed (the message says what to change) and anything else
(one line; TEXTRELU_DEBUG=1 shows the traceback), 130 Ctrl-C, 143 SIGTERM. An interrupted
command leaves no temporaries and no half-written output.
"""

import errno
import functools
import importlib
import inspect
import io
import json
import os
import signal
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from textrelu import __version__
from textrelu.errors import BadSetting, Interrupted, TextreluError
from textrelu.settings import DATASETS, STAGE_SETTINGS, TASKS, Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # help texts use [brackets] literally: [default: ...]
    help="Deep sparse rectifier networks for review sentiment and star ratings "
    "(Glorot, Bordes & Bengio 2011).",
)

Task = Enum("Task", {t: t for t in TASKS}, type=str)
Dataset = Enum("Dataset", {d: d for d in DATASETS}, type=str)

Files = Annotated[
    list[Path],
    typer.Argument(help="Review files, folders or archives (FILE[::GLOB][[a:b]]).", show_default=False),
]
Model = Annotated[Path, typer.Argument(help="Model file from finetune.", show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or progress messages.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present, else CPU), cpu or cuda.")]
Seed = Annotated[int, typer.Option(help="Seed of every random choice.")]

PRETRAINED_HELP = (
    "Fine-tune the pre-trained stack of an earlier run with the same network (its "
    "RUN_DIR/pretrained.pt) instead of pre-training."
)
RESUME_HELP = (
    "Finish an interrupted run in its folder RUN_DIR, with its saved settings: finished stages and "
    "comparison results are kept. With --set compare.rows=..., compare.seeds=... or "
    "compare.peers=..., add rows, seeds or peers to its table."
)


def option_type(kind, default):
    """The CLI type of a setting's type: a size list is typed as text (1000,500)."""
    allowed = [t for t in getattr(kind, "__args__", (kind,)) if t is not type(None)]
    base = str if str in allowed or list in allowed else allowed[0]
    return base | None if default is None or type(None) in getattr(kind, "__args__", ()) else base


def options(settings: Settings) -> list[inspect.Parameter]:
    """One keyword-only CLI option per flat key of `settings`: name, type, default and help."""
    params = []
    for key, (_, f, default) in settings.keys.items():
        help = f.metadata["help"]
        if key != f.name:  # a prefixed setting (images' pretrain_epochs and the like)
            help = f"Pre-training: {help[0].lower()}{help[1:]}"
            if default is None:
                help += " [default: as fine-tuning]"
        flags = f.metadata["flags"]
        name = "--" + key.replace("_", "-")
        if f.type is bool:
            decls = list(flags) if flags else [f"{name}/--no-{key.replace('_', '-')}"]
        else:
            decls = [name, *flags]
        check, shown = f.metadata["check"], {}
        kind = option_type(f.type, default)
        if hasattr(check, "choices"):  # offered as a choice (an Enum, for Typer)
            choice = Enum(key, {c: c for c in check.choices}, type=str)
            kind = choice | None if default is None else choice
        elif hasattr(check, "metavar"):
            shown["metavar"] = f"<{check.metavar}>"
        annotation = Annotated[
            kind, typer.Option(*decls, help=help, show_default=default is not None, **shown)
        ]
        params.append(
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params


def with_settings(name: str):
    """Give a command function (which takes **settings) the options of stage `name`'s settings."""

    def decorate(fn):
        own = [p for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        params = own + options(STAGE_SETTINGS[name]) + [context]
        keys = STAGE_SETTINGS[name].keys

        @functools.wraps(fn)
        def command(ctx: typer.Context, **kwargs):
            # Settings reach the stage only where given, so that it knows which are the user's
            # (finetune's search varies the others); the ones left out take the same defaults.
            kwargs = {
                k: v
                for k, v in kwargs.items()
                if k not in keys or ctx.get_parameter_source(k).name != "DEFAULT"
            }
            return fn(**{k: v.value if isinstance(v, Enum) else v for k, v in kwargs.items()})

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


# The stages that train data-parallel when torchrun starts them (nn/distributed.py); `run`
# runs a pipeline under torchrun too (experiments/pipeline.py).
TORCHRUN_STAGES = ("pretrain", "finetune")


def torchrun_rank() -> int | None:
    """This process's rank when torchrun started it with others, else None (the variables of
    nn.distributed.launched, read here without importing torch)."""
    if (
        all(v in os.environ for v in ("WORLD_SIZE", "RANK", "LOCAL_RANK"))
        and int(os.environ["WORLD_SIZE"]) > 1
    ):
        return int(os.environ["RANK"])
    return None


def call_stage(name: str, args: dict):
    """Run stage `name`'s library function (imported only now, so that --help stays fast) with a
    command's arguments: its own and its **settings. Under torchrun only the TORCHRUN_STAGES run."""
    if torchrun_rank() is not None and name not in TORCHRUN_STAGES:
        fail(
            f"{name.replace('_', '-')} runs in one process; under torchrun only "
            f"{' and '.join(TORCHRUN_STAGES)} train on several (start it without torchrun)",
            2,
        )
    stage = importlib.import_module(f"textrelu.stages.{name}")
    args = dict(args)
    return call(getattr(stage, name), **args.pop("settings"), **args)


OS_HINTS = {
    errno.ENOSPC: "no space left on the device; free some or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EROFS: "the file system is read-only",
    errno.ENOENT: "not found",
}


def os_message(e: OSError) -> str:
    """An OSError as one line naming the path: 'out.jsonl: no space left on the device'."""
    what = OS_HINTS.get(e.errno) or e.strerror or str(e)
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(map(str, paths))}: {what}" if paths else what


def fail(message: str, code: int):
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def quiet_shutdown() -> None:
    """After a reported interruption, errors that the interpreter would print while shutting down
    are noise: a worker pool's feeder thread may still be writing to a pipe its killed workers
    closed ("Exception ignored in: <module 'threading'> ... Bad file descriptor", seen under load)."""
    sys.unraisablehook = lambda unraisable: None


RESIGNAL_SECONDS = 0.05  # on_signal: how long after a finalizer caught the signal it comes again


def on_signal(signum, frame):
    """SIGTERM as `Interrupted`, SIGINT (Ctrl-C) as KeyboardInterrupt. Raised inside a finalizer
    (a __del__, which the garbage collector runs wherever it runs), the exception would be printed
    and dropped and the process would go on (seen: a score waiting on its input ignored a SIGTERM
    that came during a ZipFile's __del__); there the signal is sent to the main thread again a
    moment later instead."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            again = (threading.main_thread().ident, signum)
            timer = threading.Timer(RESIGNAL_SECONDS, signal.pthread_kill, again)
            timer.daemon = True  # never what keeps the process alive
            timer.start()
            return
        frame = frame.f_back
    raise Interrupted() if signum == signal.SIGTERM else KeyboardInterrupt()


def call(fn, **kwargs):
    """Run a library function; no traceback reaches the user. Bad input becomes a one-line message
    and exit code 2 (an OSError too, naming its path), failed training (`TrainingFailed`) exit
    code 1, any other exception one line and exit code 1 (TEXTRELU_DEBUG=1 lets it through with
    its traceback). Ctrl-C exits 130 and SIGTERM 143, after the temporaries are removed (SIGTERM
    is raised as `Interrupted`, which unwinds like KeyboardInterrupt)."""
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        return fn(**kwargs)
    except TextreluError as e:
        message = str(e)
        if isinstance(e, BadSetting) and not e.where:  # given as an option: name it so
            message = f"--{e.key.replace('_', '-')} {e.problem}"
        fail(message, e.exit_code)
    except BrokenPipeError:  # the reader of stdout left (| head): stop quietly, as SIGPIPE would
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        raise typer.Exit(141) from None
    except OSError as e:
        if os.environ.get("TEXTRELU_DEBUG"):
            raise
        fail(os_message(e), 2)
    except KeyboardInterrupt:
        quiet_shutdown()
        fail("interrupted; nothing was written under its final name", 130)
    except Interrupted:
        quiet_shutdown()
        fail("terminated (SIGTERM); nothing was written under its final name", 143)
    except Exception as e:  # noqa: BLE001 - the last resort: one line, not a traceback
        if os.environ.get("TEXTRELU_DEBUG"):
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        fail(
            f"unexpected {type(e).__name__}: {first} (a bug: rerun with TEXTRELU_DEBUG=1 for the traceback)",
            1,
        )
    finally:
        for sig, handler in previous.items():  # none off the main thread
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def print_metrics(metrics: dict, title: str) -> None:
    """Accuracy or RMSE/MAE, then the sparsity of every hidden layer."""
    main = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("accuracy", "rmse", "mae") if k in metrics)
    typer.echo(f"{title}: {main} (n={metrics['n']})")
    print_sparsity(metrics["sparsity"])
    if "per_class" in metrics:
        print_classes(metrics)


def print_classes(metrics: dict) -> None:
    """Each class's precision, recall, F1 and support, then the confusion matrix."""
    width = max(len("class"), *(len(c) for c in metrics["per_class"]))
    typer.echo(f"  {'class':<{width}}  precision  recall  f1      support")
    for c, m in metrics["per_class"].items():
        typer.echo(
            f"  {c:<{width}}  {m['precision']:<9.4f}  {m['recall']:<6.4f}  {m['f1']:<6.4f}  {m['support']}"
        )
    classes, matrix = metrics["confusion"]["classes"], metrics["confusion"]["matrix"]
    cell = max(6, *(len(c) for c in classes), *(len(str(v)) for row in matrix for v in row))
    typer.echo(
        f"  confusion (rows: true, columns: predicted)\n  {'':<{width}}  "
        + " ".join(f"{c:>{cell}}" for c in classes)
    )
    for c, row in zip(classes, matrix):
        typer.echo(f"  {c:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))


def rounded(value, digits: int = 6):
    """Floats rounded for printing as JSON, inside lists and dicts too."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def print_sparsity(sparsity: list) -> None:
    """One line per hidden layer: its exact zeros and its units never active."""
    for s in sparsity:
        typer.echo(
            f"  hidden layer {s['layer']}: {s['exact_zeros']:.1%} exact zeros, "
            f"{s['dead_units']:.1%} units never active"
        )


@app.command("build-vocab")
@with_settings("build_vocab")
def build_vocab(
    files: Files,
    out: Annotated[Path, typer.Option(help="Vocabulary file to write (term<TAB>document frequency).")],
    quiet: Quiet = False,
    **settings,
):
    """Count terms over review files and write the vocabulary."""
    vocab = call_stage("build_vocab", locals())
    typer.echo(f"vocabulary: {len(vocab)} terms from {vocab.n_documents} reviews -> {out}")


@app.command()
@with_settings("pretrain")
def pretrain(
    files: Files,
    out: Annotated[Path, typer.Option(help="Pre-trained stack to write (.pt).")],
    vocab: Annotated[
        Path | None,
        typer.Option(help="Vocabulary file [default: built from FILES by --size/--ngrams/--min-df]."),
    ] = None,
    device: Device = "auto",
    seed: Seed = 0,
    quiet: Quiet = False,
    **settings,
):
    """Pre-train stacked denoising autoencoders on labeled and unlabeled reviews."""
    metrics = call_stage("pretrain", locals())
    if torchrun_rank():  # rank 0 reports
        return
    from textrelu.stages.pretrain import lines

    typer.echo("\n".join(lines(metrics)))
    typer.echo(f"pre-trained on {metrics['n_reviews']} reviews in {metrics['seconds']:.1f}s -> {out}")


@app.command()
@with_settings("finetune")
def finetune(
    files: Files,
    task: Annotated[Task, typer.Option(help="sentiment (classes) or rating (numbers).")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt).")],
    vocab: Annotated[
        Path | None,
        typer.Option(
            help="Vocabulary file [default: the --init file's, else built from FILES by --size/--ngrams/--min-df]."
        ),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Pre-trained stack from `pretrain` [default: random weights].")
    ] = None,
    valid: Annotated[
        list[Path] | None,
        typer.Option(
            help="A validation file; repeat for several [default: --valid-fraction of the training files]."
        ),
    ] = None,
    test: Annotated[
        list[Path] | None, typer.Option(help="A test file, scored once at the end; repeat for several.")
    ] = None,
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option(
            help="Reviews without labels to self-train on (sentiment): kept only when the held-out "
            "accuracy rises; repeat for several."
        ),
    ] = None,
    device: Device = "auto",
    seed: Seed = 0,
    quiet: Quiet = False,
    **settings,
):
    """Fine-tune for polarity (sentiment) or star ratings (rating)."""
    metrics = call_stage("finetune", locals())
    if torchrun_rank():  # rank 0 reports
        return
    from textrelu.stages.finetune import search_line

    typer.echo(search_line(metrics) or f"best epoch {metrics['best_epoch']} of {len(metrics['history'])}")
    print_metrics(metrics["valid"], "validation")
    if "test" in metrics:
        print_metrics(metrics["test"], "test")
    typer.echo(f"model -> {out}")


@app.command()
@with_settings("evaluate")
def evaluate(
    model: Model,
    files: Files,
    json_output: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    device: Device = "auto",
    quiet: Quiet = False,
    **settings,
):
    """Accuracy or RMSE/MAE of a model on labeled files, with per-layer sparsity."""
    args = locals()
    metrics = call_stage("evaluate", {k: v for k, v in args.items() if k != "json_output"})
    if json_output:
        typer.echo(json.dumps(rounded(metrics), indent=2))
    else:
        print_metrics(metrics, "evaluation")


@app.command()
@with_settings("score")
def score(
    model: Model,
    files: Files,
    out: Annotated[
        Path,
        typer.Option(
            help="Predictions to write (JSON lines); - for stdout. With --engine ray: a folder of "
            "part-* and rejects-* shards and manifest.json."
        ),
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Rows that could not be scored [default: OUT with .rejects.jsonl]; with --out - "
            "they are only counted on stderr."
        ),
    ] = None,
    device: Device = "auto",
    quiet: Quiet = False,
    **settings,
):
    """Batch-score review files of any size; `-` reads a file from stdin, --out - writes stdout."""
    s = call_stage("score", locals())
    from textrelu.io import is_special

    if str(out) == "-" or is_special(out):  # stdout holds the predictions; the counts were said
        return
    typer.echo(f"read {s['read']} = scored {s['scored']} + rejected {s['rejected']}")
    typer.echo(f"predictions -> {s['out']}\nrejects -> {s['rejects']}")


@app.command()
@with_settings("images")
def images(
    dataset: Annotated[
        Dataset,
        typer.Argument(
            help="mnist, cifar10 or norb (jittered-cluttered, else small NORB).", show_default=False
        ),
    ],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Folder of the official files, or the CIFAR-10 JPEG tar.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Run folder: metrics.json, config.json, model.pt, pretrained.pt.")
    ] = None,
    pretrained: Annotated[Path | None, typer.Option(help=PRETRAINED_HELP, show_default=False)] = None,
    device: Device = "auto",
    seed: Seed = 0,
    quiet: Quiet = False,
    **settings,
):
    """Train and test on an image benchmark (MNIST, CIFAR-10, NORB) with the paper's protocol."""
    m = call_stage("images", locals())
    typer.echo(
        f"{m['dataset']}: test error {m['test_error']:.2%}, validation error "
        f"{m['valid_error']:.2%} (best epoch {m['best_epoch']}, {m['n_train']} training "
        f"images, {m['seconds']:.0f}s)"
    )
    print_sparsity(m["sparsity"])
    if out:
        typer.echo(f"run -> {out}")


@app.command()
def run(
    pipeline: Annotated[
        Path | None,
        typer.Argument(
            help="Pipeline file (TOML) [default: pipelines/demo.toml on data/].", show_default=False
        ),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders are made.")] = Path("runs"),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Change a setting for this run: STAGE.KEY=VALUE, VALUE in TOML (e.g. --set compare.seeds=[0] --set finetune.epochs=5); repeat for more.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[Path | None, typer.Option(help=RESUME_HELP, show_default=False)] = None,
    quiet: Quiet = False,
):
    """Run a pipeline file: its stages (build-vocab, pretrain, finetune, evaluate, score, compare, images) in one run folder."""
    from textrelu.experiments.pipeline import resume as resume_run
    from textrelu.experiments.pipeline import run as run_pipeline

    if resume is not None:
        if pipeline is not None:
            typer.secho(
                "error: --resume takes the settings saved in the run folder; give no pipeline file with it",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(2)
        result = call(resume_run, run_dir=resume, overrides=set_ or [], quiet=quiet)
    else:
        result = call(run_pipeline, pipeline=pipeline, runs_dir=runs_dir, quiet=quiet, overrides=set_ or [])
    if not torchrun_rank():  # rank 0 reports
        typer.echo(result["report"])


@app.command()
def report(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run folders made by `textrelu run`.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option(help="Markdown file; its plots go to a folder of the same stem beside it.")
    ] = Path("docs/results.md"),
    title: Annotated[str, typer.Option(help="The Markdown title.")] = "textrelu results",
    intro: Annotated[
        Path | None,
        typer.Option(
            help="A Markdown file to put under the title (how the runs were made).", show_default=False
        ),
    ] = None,
):
    """Write the results tables and plots of run folders to one Markdown file."""
    from textrelu.experiments.report import report as write_report
    from textrelu.io import check_outputs

    call(check_outputs, outputs={"--out": out}, inputs=[*run_dirs, intro])  # before any plot
    call(write_report, run_dirs=run_dirs, out=out, title=title, intro=intro)
    typer.echo(f"report -> {out} (plots in {out.parent / out.stem}/)")


ExportFormat = Enum("ExportFormat", {"onnx": "onnx"}, type=str)  # --format: onnx, so far


@app.command()
def export(
    model: Model,
    out: Annotated[
        Path, typer.Option(help="The file to write; its sidecar (vocabulary, classes) goes to OUT.json.")
    ],
    format: Annotated[
        ExportFormat, typer.Option("--format", help="onnx: an ONNX graph over padded term ids.")
    ] = ExportFormat.onnx,
):
    """Export a model's network for other runtimes (ONNX; needs the extra textrelu[onnx])."""
    from textrelu.api.onnx import export as export_onnx

    info = call(export_onnx, model=model, out=out)
    typer.echo(
        f"{format.value} -> {out} (input ids, output {info['output']['name']}); vocabulary and classes -> {out}.json"
    )


def version_callback(value: bool):
    if value:
        typer.echo(f"textrelu {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
):
    """Deep sparse rectifier networks for review sentiment and star ratings."""
