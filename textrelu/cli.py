"""The textrelu command line: a thin Typer layer over the library functions of the same names.

Exit codes: 0 success, 2 bad usage or bad input (the message names the file and row), 1 anything else.
"""

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import TextreluError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  rich_markup_mode=None,  # help texts use [brackets] literally: [default: ...]
                  help="Deep sparse rectifier networks for review sentiment and star ratings "
                       "(Glorot, Bordes & Bengio 2011).")


class Activation(str, Enum):
    relu = "relu"
    softplus = "softplus"
    tanh = "tanh"


class Task(str, Enum):
    sentiment = "sentiment"
    rating = "rating"


class Reconstruction(str, Enum):
    sigmoid_ce = "sigmoid-ce"
    softplus_mse = "softplus-mse"


class Optimizer(str, Enum):
    adam = "adam"
    sgd = "sgd"


class Dataset(str, Enum):
    mnist = "mnist"
    cifar10 = "cifar10"
    norb = "norb"


class Head(str, Enum):
    expectation = "expectation"
    regression = "regression"


Files = Annotated[list[Path], typer.Argument(help="Review files, folders or archives (FILE[::GLOB][[a:b]]).", show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or progress messages.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present, else CPU), cpu or cuda.")]
Seed = Annotated[int, typer.Option(help="Seed of every random choice.")]
TextColumn = Annotated[Optional[str], typer.Option(help="Text column of tabular files [default: found by name].")]
CountWorkers = Annotated[Optional[int], typer.Option(
    "--workers", help="Processes that count terms beside this one; 0: none [default: one per core].")]
Workers = Annotated[Optional[int], typer.Option(
    help="Threads that vectorize the next batches beside the model; 0: none [default: one per core].")]
LabelColumn = Annotated[Optional[str], typer.Option(help="Label column of tabular files [default: found by name].")]


def call(fn, **kwargs):
    """Run a library function; bad input becomes a one-line message and exit code 2."""
    try:
        return fn(**kwargs)
    except TextreluError as e:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)


def print_metrics(metrics: dict, title: str) -> None:
    """Accuracy or RMSE/MAE, then the sparsity of every hidden layer."""
    main = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("accuracy", "rmse", "mae") if k in metrics)
    typer.echo(f"{title}: {main} (n={metrics['n']})")
    print_sparsity(metrics["sparsity"])


def print_sparsity(sparsity: list) -> None:
    """One line per hidden layer: its exact zeros and its units never active."""
    for s in sparsity:
        typer.echo(f"  hidden layer {s['layer']}: {s['exact_zeros']:.1%} exact zeros, "
                   f"{s['dead_units']:.1%} units never active")


@app.command("build-vocab")
def build_vocab(
    files: Files,
    out: Annotated[Path, typer.Option(help="Vocabulary file to write (term<TAB>document frequency).")],
    size: Annotated[int, typer.Option(help="Keep this many most document-frequent terms.")] = 5000,
    ngrams: Annotated[int, typer.Option(help="1: unigrams; 2: unigrams and bigrams; 3: and trigrams.")] = 1,
    min_df: Annotated[int, typer.Option(help="Keep only terms in at least this many reviews.")] = 2,
    text_column: TextColumn = None,
    workers: CountWorkers = None,
    quiet: Quiet = False,
):
    """Count terms over review files and write the vocabulary."""
    from .vocab import build_vocab as run
    vocab = call(run, files=files, out=out, size=size, ngrams=ngrams, min_df=min_df,
                 text_column=text_column, workers=workers, quiet=quiet)
    typer.echo(f"vocabulary: {len(vocab)} terms from {vocab.n_documents} reviews -> {out}")


@app.command()
def pretrain(
    files: Files,
    vocab: Annotated[Path, typer.Option(help="Vocabulary file from build-vocab.")],
    out: Annotated[Path, typer.Option(help="Pre-trained stack to write (.pt).")],
    layers: Annotated[int, typer.Option(help="Number of hidden layers.")] = 3,
    hidden: Annotated[str, typer.Option(help="Units per hidden layer, or one size per layer: 1000,500.")] = "1000",
    activation: Annotated[Activation, typer.Option(help="Hidden unit.")] = Activation.relu,
    noise: Annotated[float, typer.Option(help="Corruption: salt-and-pepper share on the binary input layer, masking probability above.")] = 0.25,
    l1: Annotated[float, typer.Option(help="L1 penalty on hidden activations.")] = 1e-4,
    epochs: Annotated[int, typer.Option(help="Epochs per layer.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Minibatch size.")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    reconstruction: Annotated[Reconstruction, typer.Option(help="sigmoid-ce (the paper's text choice) or softplus-mse.")] = Reconstruction.sigmoid_ce,
    sample_rate: Annotated[float, typer.Option(help="Reconstruction sampling: share of the input's zero columns reconstructed (1 = full reconstruction).")] = 1.0,
    optimizer: Annotated[Optimizer, typer.Option(help="adam, or sgd (the paper's).")] = Optimizer.adam,
    device: Device = "auto",
    seed: Seed = 0,
    text_column: TextColumn = None,
    quiet: Quiet = False,
):
    """Pre-train stacked denoising autoencoders on labeled and unlabeled reviews."""
    from .pretrain import pretrain as run
    metrics = call(run, files=files, vocab=vocab, out=out, layers=layers, hidden=hidden,
                   activation=activation.value, noise=noise, l1=l1, epochs=epochs,
                   batch_size=batch_size, learning_rate=learning_rate,
                   reconstruction=reconstruction.value, sample_rate=sample_rate,
                   optimizer=optimizer.value, device=device, seed=seed, text_column=text_column,
                   quiet=quiet)
    last = {}
    for row in metrics["history"]:
        last[row["layer"]] = row["loss"]
    for layer, loss in last.items():
        typer.echo(f"layer {layer}: final reconstruction loss {loss:.4f}")
    typer.echo(f"pre-trained on {metrics['n_reviews']} reviews in {metrics['seconds']:.1f}s -> {out}")


@app.command()
def finetune(
    files: Files,
    task: Annotated[Task, typer.Option(help="sentiment (classes) or rating (numbers).")],
    out: Annotated[Path, typer.Option(help="Model file to write (.pt).")],
    vocab: Annotated[Optional[Path], typer.Option(help="Vocabulary file [default: the --init file's].")] = None,
    init: Annotated[Optional[Path], typer.Option(help="Pre-trained stack from `pretrain` [default: random weights].")] = None,
    label_column: LabelColumn = None,
    text_column: TextColumn = None,
    valid: Annotated[Optional[list[Path]], typer.Option(help="A validation file; repeat for several [default: --valid-fraction of the training files].")] = None,
    valid_fraction: Annotated[float, typer.Option(help="Share of the training reviews held out for early stopping.")] = 0.1,
    test: Annotated[Optional[list[Path]], typer.Option(help="A test file, scored once at the end; repeat for several.")] = None,
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 30,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a better validation score (and at least 100 updates).")] = 5,
    layers: Annotated[int, typer.Option(help="Hidden layers, without --init (0: a linear model on the terms, the paper's no-hidden-layer baseline).")] = 1,
    hidden: Annotated[str, typer.Option(help="Units per hidden layer (or 1000,500), without --init.")] = "1000",
    activation: Annotated[Activation, typer.Option(help="Hidden unit, without --init.")] = Activation.relu,
    head: Annotated[Optional[Head], typer.Option(help="Rating output: expectation (softmax over the rating values, the paper's) or regression [default: expectation].")] = None,
    l1: Annotated[float, typer.Option(help="L1 penalty on hidden activations.")] = 1e-4,
    dropout: Annotated[float, typer.Option(help="Dropout on hidden layers (not in the paper).")] = 0.5,
    input_dropout: Annotated[float, typer.Option(help="Dropout on input terms (not in the paper).")] = 0.2,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Minibatch size.")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    optimizer: Annotated[Optimizer, typer.Option(help="adam, or sgd (the paper's).")] = Optimizer.adam,
    nb_weights: Annotated[bool, typer.Option("--nb-weights/--no-nb-weights", help="Weight each input term by its naive Bayes log-count ratio on the training reviews (NBSVM; sentiment with two classes; not in the paper).")] = False,
    device: Device = "auto",
    seed: Seed = 0,
    quiet: Quiet = False,
):
    """Fine-tune for polarity (sentiment) or star ratings (rating)."""
    from .finetune import finetune as run
    metrics = call(run, files=files, task=task.value, out=out, vocab=vocab, init=init,
                   label_column=label_column, text_column=text_column, valid=valid,
                   valid_fraction=valid_fraction, test=test, epochs=epochs, layers=layers,
                   hidden=hidden, activation=activation.value, head=head.value if head else None,
                   l1=l1, dropout=dropout, input_dropout=input_dropout, weight_decay=weight_decay,
                   batch_size=batch_size, learning_rate=learning_rate, optimizer=optimizer.value,
                   nb_weights=nb_weights, patience=patience, device=device, seed=seed, quiet=quiet)
    typer.echo(f"best epoch {metrics['best_epoch']} of {len(metrics['history'])}")
    print_metrics(metrics["valid"], "validation")
    if "test" in metrics:
        print_metrics(metrics["test"], "test")
    typer.echo(f"model -> {out}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model file from finetune.", show_default=False)],
    files: Files,
    json_output: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    label_column: LabelColumn = None,
    text_column: TextColumn = None,
    device: Device = "auto",
    quiet: Quiet = False,
):
    """Accuracy or RMSE/MAE of a model on labeled files, with per-layer sparsity."""
    from .evaluate import evaluate as run
    metrics = call(run, model=model, files=files, label_column=label_column,
                   text_column=text_column, device=device, quiet=quiet)
    if json_output:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        print_metrics(metrics, "evaluation")


@app.command()
def score(
    model: Annotated[Path, typer.Argument(help="Model file from finetune.", show_default=False)],
    files: Files,
    out: Annotated[Path, typer.Option(help="Predictions to write (JSON lines).")],
    rejects: Annotated[Optional[Path], typer.Option(help="Rows that could not be scored [default: OUT with .rejects.jsonl].")] = None,
    text_column: TextColumn = None,
    batch_size: Annotated[int, typer.Option(help="Reviews scored at a time.")] = 1024,
    workers: Workers = None,
    device: Device = "auto",
    quiet: Quiet = False,
):
    """Batch-score review files of any size."""
    from .score import score as run
    s = call(run, model=model, files=files, out=out, rejects=rejects, text_column=text_column,
             batch_size=batch_size, workers=workers, device=device, quiet=quiet)
    typer.echo(f"read {s['read']} = scored {s['scored']} + rejected {s['rejected']}")
    typer.echo(f"predictions -> {s['out']}\nrejects -> {s['rejects']}")


@app.command()
def images(
    dataset: Annotated[Dataset, typer.Argument(help="mnist, cifar10 or norb (jittered-cluttered, else small NORB).", show_default=False)],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Folder of the official files, or the CIFAR-10 JPEG tar.")],
    out: Annotated[Optional[Path], typer.Option(help="Run folder: metrics.json, config.json, model.pt, pretrained.pt.")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Hidden layers [default: 3; NORB 2].")] = None,
    hidden: Annotated[Optional[str], typer.Option(help="Units per layer, or one size per layer: 4000,2000 [default: 1000; NORB 4000,2000].")] = None,
    activation: Annotated[str, typer.Option(help="relu, softplus, tanh, or softplus:A = (1/A) softplus(A x), A > 0 or inf.")] = "relu",
    pretrain: Annotated[bool, typer.Option("--pretrain/--no-pretrain", help="Denoising-autoencoder pre-training first.")] = True,
    epochs: Annotated[int, typer.Option("--epochs", "--max-epochs", help="Most fine-tuning epochs.")] = 30,
    pretrain_epochs: Annotated[int, typer.Option(help="Pre-training epochs per layer.")] = 10,
    subset: Annotated[Optional[int], typer.Option(help="Train on the first N training images [default: all].")] = None,
    labels: Annotated[Optional[int], typer.Option(help="Few labels: fine-tune on the first N training images only; pre-training still reads them all [default: all].")] = None,
    batch_size: Annotated[int, typer.Option(help="Minibatch size (the paper's: 10).")] = 10,
    learning_rate: Annotated[float, typer.Option(help="Fine-tuning learning rate.")] = 0.01,
    pretrain_learning_rate: Annotated[Optional[float], typer.Option(help="Pre-training learning rate [default: --learning-rate].")] = None,
    optimizer: Annotated[Optimizer, typer.Option(help="sgd (the paper's) or adam.")] = Optimizer.sgd,
    noise: Annotated[float, typer.Option(help="Masking noise in pre-training.")] = 0.25,
    l1: Annotated[float, typer.Option(help="L1 penalty on hidden activations.")] = 0.001,
    reconstruction: Annotated[Optional[Reconstruction], typer.Option(help="Pre-training reconstruction [default: softplus-mse; tanh: sigmoid-ce].")] = None,
    symmetric: Annotated[bool, typer.Option("--symmetric/--no-symmetric", help="The paper's symmetry trick: half of each layer's outputs times -1.")] = False,
    tied: Annotated[bool, typer.Option("--tied/--untied", help="Pre-training decoders reuse their encoder's weights (W' = W^T) instead of their own.")] = False,
    dropout: Annotated[float, typer.Option(help="Dropout on hidden layers (not in the paper).")] = 0.0,
    input_dropout: Annotated[float, typer.Option(help="Dropout on the input pixels (not in the paper).")] = 0.0,
    shift: Annotated[int, typer.Option(help="Fine-tune on training images shifted at random by up to N pixels each way (not in the paper).")] = 0,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs (and at least 100 updates).")] = 5,
    pretrained: Annotated[Optional[Path], typer.Option(help="Fine-tune the pre-trained stack of an earlier run with the same network (its RUN_DIR/pretrained.pt) instead of pre-training.", show_default=False)] = None,
    device: Device = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch [default: torch's].")] = None,
    seed: Seed = 0,
    quiet: Quiet = False,
):
    """Train and test on an image benchmark (MNIST, CIFAR-10, NORB) with the paper's splits."""
    from .images import images as run_images
    m = call(run_images, dataset=dataset.value, data_dir=data_dir, layers=layers, hidden=hidden,
             activation=activation, pretrain=pretrain, epochs=epochs, pretrain_epochs=pretrain_epochs,
             subset=subset, labels=labels, batch_size=batch_size, learning_rate=learning_rate,
             pretrain_learning_rate=pretrain_learning_rate, optimizer=optimizer.value, noise=noise,
             l1=l1, reconstruction=reconstruction.value if reconstruction else None,
             symmetric=symmetric, tied=tied, dropout=dropout, input_dropout=input_dropout, shift=shift,
             patience=patience, pretrained=pretrained, device=device,
             threads=threads, seed=seed, out=out, quiet=quiet)
    typer.echo(f"{m['dataset']}: test error {m['test_error']:.2%}, validation error "
               f"{m['valid_error']:.2%} (best epoch {m['best_epoch']}, {m['n_train']} training "
               f"images, {m['seconds']:.0f}s)")
    print_sparsity(m["sparsity"])
    if out:
        typer.echo(f"run -> {out}")


@app.command()
def run(
    pipeline: Annotated[Optional[Path], typer.Argument(help="Pipeline file (TOML) [default: pipelines/demo.toml on data/].", show_default=False)] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders are made.")] = Path("runs"),
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Change a setting for this run: STAGE.KEY=VALUE, VALUE in TOML (e.g. --set compare.seeds=[0] --set finetune.epochs=5); repeat for more.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Finish an interrupted run in its folder RUN_DIR, with its saved settings: finished stages and comparison results are kept. With --set compare.rows=..., compare.seeds=... or compare.peers=..., add rows, seeds or peers to its table.", show_default=False)] = None,
    quiet: Quiet = False,
):
    """Run a pipeline file: its stages (build-vocab, pretrain, finetune, evaluate, score, compare, images) in one run folder."""
    from .pipeline import resume as resume_run, run as run_pipeline
    if resume is not None:
        if pipeline is not None:
            typer.secho("error: --resume takes the settings saved in the run folder; give no pipeline "
                        "file with it", err=True, fg=typer.colors.RED)
            raise typer.Exit(2)
        result = call(resume_run, run_dir=resume, overrides=set_ or [], quiet=quiet)
    else:
        result = call(run_pipeline, pipeline=pipeline, runs_dir=runs_dir, quiet=quiet, overrides=set_ or [])
    typer.echo(result["report"])


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders made by `textrelu run`.", show_default=False)],
    out: Annotated[Path, typer.Option(help="Markdown file; its plots go to a folder of the same stem beside it.")] = Path("docs/results.md"),
    title: Annotated[str, typer.Option(help="The Markdown title.")] = "textrelu results",
    intro: Annotated[Optional[Path], typer.Option(help="A Markdown file to put under the title (how the runs were made).", show_default=False)] = None,
):
    """Write the results tables and plots of run folders to one Markdown file."""
    from .report import report as write_report
    call(write_report, run_dirs=run_dirs, out=out, title=title, intro=intro)
    typer.echo(f"report -> {out} (plots in {out.parent / out.stem}/)")


def version_callback(value: bool):
    if value:
        typer.echo(f"textrelu {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                               help="Print the version and exit.")] = False):
    """Deep sparse rectifier networks for review sentiment and star ratings."""


if __name__ == "__main__":
    sys.exit(app())
