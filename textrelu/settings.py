"""Every setting, declared once: name, type, default, one-line help and its check.

A few frozen dataclasses hold the settings of the stages (Reading, Terms, Net, Pretraining,
Finetuning, Search, Scoring, Engine, Images). A stage names the groups it takes in a `Settings` namespace, and
everything else derives from that: the CLI's options (cli.py), the keys of a pipeline's stage
table (experiments/pipeline.py), the flat config saved in run folders and checkpoints, and the
row keys of a comparison (experiments/compare.py). Values are checked when a group is built:
unknown keys, wrong types and values out of range are `BadInput` naming the key.

    SETTINGS = Settings(Group("net", Net()), Group("training", Finetuning()))
    s = SETTINGS.resolve({"layers": 3, "dropout": 0.2})   # s.net, s.training
    SETTINGS.flat(s)                                      # {"layers": 3, "hidden": 1000, ...}

Where a stage needs other defaults than a class's own, a named preset (an instance, at the end
of this file) says so and why.
"""

import dataclasses
import math
import types
from dataclasses import dataclass, field, fields
from typing import Any

from textrelu.errors import BadInput, BadSetting
from textrelu.io import plain

# The names the model core implements (textrelu/nn maps each to code; tests/test_model.py checks
# that the two agree).
ACTIVATIONS = ("relu", "softplus", "tanh")  # and "softplus:A", see model.activation_fn
OPTIMIZERS = ("adam", "sgd")
RECONSTRUCTIONS = ("sigmoid-ce", "softplus-mse")
TASKS = ("sentiment", "rating")
RATING_HEADS = ("regression", "expectation")
DATASETS = ("mnist", "cifar10", "norb")  # the image benchmarks (data/image_sets.LOADERS)
ENGINES = ("local", "ray")  # where score and build-vocab run (stages/ray_engine.py)
SHARD_FORMATS = ("jsonl", "parquet")  # score's shards on Ray


def softplus_sharpness(name: str) -> float | None:
    """A of an activation "softplus:A" = (1/A) softplus(A x), the paper's interpolation from
    softplus (A = 1) to the rectifier (A = inf); None for the plain names; ValueError otherwise."""
    if name in ACTIVATIONS:
        return None
    if isinstance(name, str) and name.startswith("softplus:"):
        try:
            a = float(name.split(":", 1)[1])
        except ValueError:
            a = 0.0
        if a > 0:
            return a
    raise ValueError(
        f"activation must be one of {', '.join(ACTIVATIONS)} or softplus:A (A > 0 or inf), got {name!r}"
    )


def setting(default, help: str, check=None, flags: tuple = ()):
    """A dataclass field with its help and check (a function: value -> what is wrong, or None);
    `flags` are extra CLI names beside --the-key (for a switch: its "--on/--off" names)."""
    return field(default=default, metadata={"help": help, "check": check, "flags": flags})


def between(lo, hi, lo_open: bool = False, hi_open: bool = False):
    def check(v):
        if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
            return f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"

    return check


def at_least(lo):
    return lambda v: f"must be at least {lo}" if v < lo else None


def positive(v):
    return "must be positive" if v <= 0 else None


def one_of(*choices):
    def check(v):
        return f"must be one of {', '.join(choices)}" if v not in choices else None

    check.choices = choices  # the CLI offers them
    return check


def valid_activation(name):
    try:
        softplus_sharpness(name)
    except ValueError:
        return "must be relu, softplus, tanh or softplus:A (A > 0 or inf)"


valid_activation.metavar = "|".join((*ACTIVATIONS, "softplus:A"))


def parse_sizes(hidden) -> list[int]:
    """`hidden` as a list of sizes: 1000, "1000", "4000,2000" or [4000, 2000]."""
    if isinstance(hidden, str):
        try:
            return [int(h) for h in hidden.split(",")]
        except ValueError:
            raise BadSetting(
                "hidden", f"must be a size or sizes like 1000 or 4000,2000, got {hidden!r}"
            ) from None
    return list(hidden) if isinstance(hidden, (list, tuple)) else [hidden]


class Checked:
    """Checks every field of a settings dataclass against its type and its check, after init."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            value = coerce(f.name, value, f.type)
            object.__setattr__(self, f.name, value)
            check = f.metadata.get("check")
            problem = check(value) if check is not None and value is not None else None
            if problem:
                raise BadSetting(f.name, f"{problem}, got {value!r}")


def coerce(name: str, value, kind):
    """`value` as the field's type: ints pass for floats, nothing else is converted."""
    allowed = kind.__args__ if isinstance(kind, types.UnionType) else (kind,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise BadSetting(name, f"must be a finite number, got {value!r}")
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t in (bool, str) and isinstance(value, t):
            return value
        if t is list and isinstance(value, (list, tuple)):
            return list(value)
    names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
    raise BadSetting(name, f"must be {names}, got {value!r}")


@dataclass(frozen=True)
class Reading(Checked):
    """Which columns of tabular files (CSV, TSV, JSON lines, Parquet) hold the text and label."""

    text_column: str | None = setting(None, "Text column of tabular files [default: found by name].")
    label_column: str | None = setting(None, "Label column of tabular files [default: found by name].")
    positive_above: float | None = setting(
        None,
        "Sentiment from star ratings: a rating above this is positive, below it negative, equal to "
        "it left out (e.g. 3 for 1-5 stars) [default: the labels are the classes].",
    )
    id_column: str | None = setting(
        None, "Column of tabular files holding each row's id, copied to its prediction [default: id]."
    )
    max_record_bytes: int = setting(
        1 << 20,
        "Largest record read (a line, a CSV record, a review), in bytes; a longer one is rejected "
        "with its size, unread, so that one endless line cannot fill the memory.",
        at_least(1),
    )
    max_bad_labels: float = setting(
        0.1,
        "Share of labeled rows whose label is missing, not a number, not finite or absurd (for "
        "ratings) that may be left out, each reported; above it the command fails (a wrong column).",
        between(0, 1),
    )


@dataclass(frozen=True)
class Terms(Checked):
    """Which terms a vocabulary keeps, and how they are counted."""

    size: int = setting(5000, "Keep this many most document-frequent terms.", at_least(1))
    ngrams: int = setting(1, "1: unigrams; 2: unigrams and bigrams; 3: and trigrams.", between(1, 3))
    min_df: int = setting(2, "Keep only terms in at least this many reviews.", at_least(1))
    size_per_review: int | None = setting(
        None,
        "Keep at most this many terms per review counted, so that the vocabulary grows with the "
        "data up to --size [default: --size alone].",
        at_least(1),
    )
    workers: int | None = setting(
        None, "Processes that count terms beside this one; 0: none [default: one per core].", at_least(0)
    )

    def cap(self, n_documents: int) -> int:
        """How many terms a vocabulary of `n_documents` reviews keeps at most."""
        if self.size_per_review is None:
            return self.size
        return min(self.size, self.size_per_review * n_documents)


@dataclass(frozen=True)
class Net(Checked):
    """The network: hidden layers and their unit (the output head follows from the task)."""

    layers: int | None = setting(
        1,
        "Hidden layers (0: a linear model on the inputs, the paper's no-hidden-layer baseline).",
        at_least(0),
    )
    hidden: int | str | list | None = setting(
        1000, "Units per hidden layer, or one size per layer: 1000,500."
    )
    activation: str = setting(
        "relu",
        "Hidden unit: relu, softplus, tanh, or softplus:A = (1/A) softplus(A x), A > 0 or inf.",
        valid_activation,
    )
    symmetric: bool = setting(False, "The paper's symmetry trick: half of each layer's outputs times -1.")

    def __post_init__(self):
        super().__post_init__()
        self.sizes([1000])  # checks hidden against layers

    def sizes(self, default: list[int]) -> list[int]:
        """The hidden sizes: `hidden` one size per layer, or one size for all `layers`; unset
        (None), the `default` network's, cut or extended (last size repeated) to `layers`."""
        layers = self.layers
        if layers == 0:
            return []
        if self.hidden is None:
            n = len(default) if layers is None else layers
            return (default + [default[-1]] * n)[:n]
        sizes = parse_sizes(self.hidden)
        if len(sizes) == 1:
            sizes = sizes * (len(default) if layers is None else layers)
        elif layers is not None and len(sizes) != layers:
            raise BadSetting("hidden", f"lists {len(sizes)} sizes for {layers} layers")
        if any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in sizes):
            raise BadSetting("hidden", f"must be positive sizes, got {self.hidden!r}")
        return sizes


@dataclass(frozen=True)
class Training(Checked):
    """What pre-training and fine-tuning share: the loop's length, batches, optimizer and L1."""

    epochs: int = setting(30, "Most epochs.", at_least(1), flags=("--max-epochs",))
    batch_size: int = setting(64, "Minibatch size.", at_least(1))
    learning_rate: float = setting(1e-3, "Learning rate.", positive)
    optimizer: str = setting("adam", "adam, or sgd (the paper's).", one_of(*OPTIMIZERS))
    l1: float = setting(1e-4, "L1 penalty on hidden activations.", at_least(0))


def like(cls, name: str, default):
    """`cls`'s field `name` (its help and check) with another default."""
    f = cls.__dataclass_fields__[name]
    return field(default=default, metadata=f.metadata)


@dataclass(frozen=True)
class Pretraining(Training):
    """Greedy layer-wise denoising-autoencoder pre-training."""

    epochs: int = like(Training, "epochs", 10)  # per layer
    # Adam at 1e-3 killed the rectifier units of a sparse first layer: on IMDB (75,000 reviews,
    # 100,000 terms) 8 of 1000 were ever active after 10 epochs, 23 with the decoder bias started
    # at its log-odds; at 3e-5 (5 epochs) all 1000 were, 75% of the activations exact zeros
    # (docs/findings.md).
    learning_rate: float = like(Training, "learning_rate", 3e-5)
    noise: float = setting(
        0.25,
        "Corruption: salt-and-pepper share on a binary input layer, masking probability above.",
        between(0, 1, hi_open=True),
    )
    reconstruction: str | None = setting(
        "sigmoid-ce",
        "sigmoid-ce (the paper's text choice) or softplus-mse [images: by unit].",
        one_of(*RECONSTRUCTIONS),
    )
    sample_rate: float | None = setting(
        None,
        "Reconstruction sampling of a sparse input layer: share of its zero columns reconstructed "
        "(1 = full reconstruction) [default: 1%, and at least 200 columns a review].",
        between(0, 1, lo_open=True),
    )
    patience: int = setting(
        2,
        "Stop a layer after this many epochs without a lower validation reconstruction loss, "
        "keeping its best epoch.",
        at_least(1),
    )
    valid_fraction: float = setting(
        0.05,
        "Share of the reviews held out to measure the reconstruction loss after each epoch "
        "(0: none; every epoch is run).",
        between(0, 1, hi_open=True),
    )
    tied: bool = setting(
        False,
        "Decoders reuse their encoder's weights (W' = W^T) instead of their own.",
        flags=("--tied/--untied",),
    )


@dataclass(frozen=True)
class Finetuning(Training):
    """Supervised fine-tuning with early stopping on a validation split."""

    patience: int = setting(
        5,
        "Stop after this many epochs without a better validation score (and at least 100 updates).",
        at_least(1),
    )
    dropout: float = setting(0.5, "Dropout on hidden layers (not in the paper).", between(0, 1, hi_open=True))
    input_dropout: float = setting(
        0.2, "Dropout on the inputs (not in the paper).", between(0, 1, hi_open=True)
    )
    weight_decay: float = setting(0.0, "L2 weight decay.", at_least(0))
    nb_weights: bool = setting(
        False,
        "Weight each input term by its naive Bayes log-count ratio on the "
        "training reviews (NBSVM; sentiment with two classes; not in the paper).",
    )
    head: str | None = setting(
        None,
        "Rating output: expectation (softmax over the rating values, the paper's) or regression "
        "[default: expectation for at most 50 distinct ratings, else regression].",
        one_of(*RATING_HEADS),
    )
    valid_fraction: float = setting(
        0.1,
        "Share of the training reviews held out for early stopping (without validation files).",
        between(0, 1, True, True),
    )
    label_smoothing: float = setting(
        0.0,
        "Label smoothing of the classification loss (class and rating-value heads; not in the paper).",
        between(0, 1, hi_open=True),
    )


@dataclass(frozen=True)
class Search(Checked):
    """finetune's own choice of the settings it is not given (stages/search.py)."""

    search: bool = setting(
        True,
        "Choose the settings not given (hidden width and depth, NB weights) among a few candidates "
        "on held-out rows; --no-search trains the given settings alone.",
    )
    folds: int | None = setting(
        None,
        "Search without --valid files: cross-fit this many folds, score on every training row held "
        "out once, and keep the folds' models as one averaged network (1: one --valid-fraction split) "
        "[default: 5; 1 from a pre-trained stack (--init), whose width the fold models would multiply].",
        at_least(1),
    )
    budget: float | None = setting(
        None,
        "Seconds the search may try candidates for; after them only the leader trains, its "
        "remaining folds [default: 60 + 6 per 1,000 training rows].",
        positive,
    )
    self_training_threshold: float = setting(
        0.9,
        "Self-training on --unlabeled reviews: those a model puts in a class with at least this "
        "probability join its training rows with that class, and it trains again.",
        between(0.5, 1),
    )


@dataclass(frozen=True)
class Scoring(Checked):
    """Batch scoring of review files."""

    batch_size: int = setting(1024, "Reviews scored at a time.", at_least(1))
    format: str = setting(
        "jsonl",
        "With --engine ray: the --out folder's part-* shards as jsonl (the local rows) or parquet.",
        one_of(*SHARD_FORMATS),
    )
    workers: int | None = setting(
        None,
        "Threads that vectorize the next batches beside the model; 0: none [default: one per core].",
        at_least(0),
    )


@dataclass(frozen=True)
class Engine(Checked):
    """Where a stage's work runs: on this machine, or on a Ray cluster (the `ray` extra)."""

    engine: str = setting(
        "local",
        "local: this process and its workers; ray: a Ray cluster (pip install 'textrelu[ray]').",
        one_of(*ENGINES),
    )
    address: str | None = setting(
        None, "The Ray cluster: auto or ray://HOST:PORT [default: start a local one for the run]."
    )


@dataclass(frozen=True)
class Images(Checked):
    """What an image-benchmark run reads and how, beside its network and training."""

    pretrain: bool = setting(True, "Denoising-autoencoder pre-training first.")
    subset: int | None = setting(None, "Train on the first N training images [default: all].", at_least(1))
    labels: int | None = setting(
        None,
        "Few labels: fine-tune on the first N training images only; "
        "pre-training still reads them all [default: all].",
        at_least(1),
    )
    shift: int = setting(
        0,
        "Fine-tune on training images shifted at random by up to N pixels each way (not in the paper).",
        at_least(0),
    )
    threads: int | None = setting(None, "CPU threads of torch [default: torch's].", at_least(1))


# ---------------------------------------------------------------------------------------------
# Namespaces: a stage's groups as flat keys


@dataclass(frozen=True)
class Group:
    """One settings object a stage takes, as `name`, with `default` giving its defaults.

    `exclude`: fields the stage does not take (their defaults hold). `prefix` goes before the
    names of `follow`'s fields, which default to (None, i.e.) the same field of the group named
    `follows`; fields in `keep` keep a default of their own."""

    name: str
    default: Any
    exclude: tuple = ()
    prefix: str = ""
    follow: tuple = ()
    follows: str | None = None
    keep: tuple = ()

    def keys(self) -> dict:
        """flat key -> (field, default)"""
        out = {}
        for f in fields(self.default):
            if f.name in self.exclude:
                continue
            key = self.prefix + f.name if f.name in self.follow else f.name
            default = getattr(self.default, f.name)
            if f.name in self.follow and f.name not in self.keep:
                default = None
            out[key] = (f, default)
        return out


class Settings:
    """The flat keys of a stage's groups: checked, resolved into group objects, flattened back."""

    def __init__(self, *groups: Group):
        self.groups = groups
        self.keys = {}
        for group in groups:
            for key, (f, default) in group.keys().items():
                if key in self.keys:
                    raise ValueError(f"setting {key} is declared by two groups")
                self.keys[key] = (group, f, default)

    def defaults(self) -> dict:
        return {key: default for key, (_, _, default) in self.keys.items()}

    def resolve(self, given: dict, where: str = "") -> types.SimpleNamespace:
        """Group objects from flat `given` values (the rest default); unknown keys, wrong types
        and values out of range are BadInput naming the key (and `where`, e.g. a pipeline table)."""
        unknown = [key for key in given if key not in self.keys]
        if unknown:
            raise BadInput(f"{where}unknown setting {unknown[0]!r}; known: {', '.join(self.keys)}")
        values = {**self.defaults(), **given}
        built = {}
        for group in self.groups:
            kwargs = {}
            for key, (g, f, _) in self.keys.items():
                if g is group:
                    value = values[key]
                    if value is None and f.name in group.follow and group.follows:
                        value = getattr(built[group.follows], f.name)
                    kwargs[f.name] = value
            try:
                built[group.name] = dataclasses.replace(group.default, **kwargs)
            except BadSetting as e:  # named as given: a prefixed key keeps its prefix
                key = group.prefix + e.key if e.key in group.follow else e.key
                raise BadSetting(key, e.problem, where) from None
        return types.SimpleNamespace(**built)

    def flat(self, resolved: types.SimpleNamespace) -> dict:
        """The flat settings of resolved groups: what a run's config.json records."""
        return {key: getattr(getattr(resolved, g.name), f.name) for key, (g, f, _) in self.keys.items()}

    def config(self, args: dict, resolved: types.SimpleNamespace) -> dict:
        """What a stage run records: its own arguments (`args`, the call's locals but its
        **settings) as plain data, and every setting as resolved."""
        return {**plain({k: v for k, v in args.items() if k != "settings"}), **self.flat(resolved)}


# ---------------------------------------------------------------------------------------------
# Presets: where a stage needs other defaults than the classes', and why

# Pre-training a text stack: one layer of the paper's 1000 units. One pre-trained layer beat three
# on Amazon polarity and stars and IMDB stars (docs/findings.md); 100 units, which fine-tuning's
# search prefers from random weights, fine-tuned no better from a pre-trained start (Amazon titles
# 76.3% against 76.1% for 1000) and died in one of four Amazon domains.
PRETRAIN_NET = Net(layers=1)
# The vocabulary finetune counts when given none: unigrams to trigrams, each kept
# (min_df 1: short texts need their rare terms), 60 per training review up to 300,000, so that
# the vocabulary grows with the data. On IMDB's 25,000 long reviews 300,000 uni/bi/trigrams gave
# 92.42% against 92.08% at 100,000 uni+bigrams; the 1,600 reviews of an Amazon domain keep
# 96,000 (their uni+bigrams alone number 94,000), where 300,000 (nearly all their trigrams, seen
# once) made the fold models of the 1000-unit candidate too big for 24 GB. build-vocab's 5,000
# unigrams served the paper's wide layers.
TEXT_TERMS = Terms(size=300_000, ngrams=3, min_df=1, size_per_review=60)
# pretrain's: unigrams and bigrams, the 100,000 most frequent (what finetune counted until
# TEXT_TERMS above), on which its defaults were measured: a stack of 1000 units on 300,000
# terms would hold 2.4 GB of encoder and decoder weights. finetune --init reads the stack's own
# vocabulary, so the two need not agree.
PRETRAIN_TERMS = Terms(size=100_000, ngrams=2, min_df=1)
# The image benchmarks' networks are the paper's per dataset (3 x 1000; NORB 4000, 2000), so
# the sizes are left to the dataset; its reconstruction is chosen by the unit.
IMAGES_NET = Net(layers=None, hidden=None)
# The paper's image protocol: SGD on minibatches of 10, L1 0.001, no dropout.
IMAGES_FINETUNING = Finetuning(
    batch_size=10, learning_rate=0.01, optimizer="sgd", l1=0.001, dropout=0.0, input_dropout=0.0
)
# Pre-training images: the paper's 10 epochs per layer, on every training image (none held out to
# stop early); the reconstruction is chosen by the unit (stages/images).
IMAGES_PRETRAINING = Pretraining(reconstruction=None, valid_fraction=0.0)


# ---------------------------------------------------------------------------------------------
# The settings each stage takes (its module and the CLI read them here, without importing torch)

TRAINING_KEYS = tuple(f.name for f in fields(Training))
UNLABELED = ("label_column", "max_bad_labels", "positive_above")  # Reading keys of stages that read no labels
NO_IDS = ("id_column",)  # ... and of stages that write nothing per row
STAGE_SETTINGS = {
    "build_vocab": Settings(
        Group("terms", Terms()),
        Group("reading", Reading(), exclude=(*UNLABELED, *NO_IDS)),
        Group("engine", Engine()),
    ),
    # pretrain and finetune build their own vocabulary, by terms, when none is given
    "pretrain": Settings(
        Group("net", PRETRAIN_NET),
        Group("training", Pretraining()),
        Group("terms", PRETRAIN_TERMS),
        Group("reading", Reading(), exclude=(*UNLABELED, *NO_IDS)),
    ),
    "finetune": Settings(
        Group("net", Net()),
        Group("training", Finetuning()),
        Group("search", Search()),
        Group("terms", TEXT_TERMS),
        Group("reading", Reading(), exclude=NO_IDS),
    ),
    "evaluate": Settings(Group("reading", Reading(), exclude=NO_IDS)),
    "score": Settings(
        Group("scoring", Scoring()), Group("reading", Reading(), exclude=UNLABELED), Group("engine", Engine())
    ),
    # compare keeps the strict reading (one unusable label stops it) and the readers' record cap
    "compare": Settings(
        Group("reading", Reading(), exclude=("max_bad_labels", "positive_above", "max_record_bytes", *NO_IDS))
    ),
    "images": Settings(
        Group("net", IMAGES_NET),
        Group("training", IMAGES_FINETUNING, exclude=("nb_weights", "head", "valid_fraction")),
        # pre-training's loop settings are pretrain_epochs and the like here; unset, as fine-tuning's
        Group(
            "pretraining",
            IMAGES_PRETRAINING,
            prefix="pretrain_",
            follow=TRAINING_KEYS,
            follows="training",
            keep=("epochs",),
            exclude=("patience", "valid_fraction"),
        ),
        Group("images", Images()),
    ),
}
