"""RectifierClassifier and RectifierRegressor: the textrelu network as scikit-learn estimators.

    clf = make_pipeline(BagOfWords(ngrams=2), RectifierClassifier(hidden=1000, epochs=10))
    clf.fit(texts, labels).predict(["Works great!"])

They take dense or sparse numeric matrices (a sparse CSR matrix stays sparse, on to the
network's embedding-bag first layer). The constructor keywords are the settings of `textrelu
finetune` (settings.Net and settings.Finetuning), those of pre-training as `textrelu images`
names them (pretrain_learning_rate, noise, ...; settings.Pretraining) and a few of the
estimator's own (ESTIMATOR below: pretrain_epochs, random_state, device, verbose). The
constructor only stores them; `fit` checks them, and a bad value raises a BadSetting (a
ValueError) that names the key.

Training is the core's: `stages.pretrain.pretrain_arrays` (when pretrain_epochs > 0, on the
rows of X and X_unlabeled), then `stages.finetune.finetune_arrays` (nn.train.fit, with early
stopping on a `valid_fraction` split of the rows, keeping the best epoch), then, for a classifier
with `self_training_threshold`, `stages.selftrain.self_train_one` on X_unlabeled. There is no
`partial_fit`: nn.train.fit builds its optimizer afresh on each call and keeps the best epoch
of a validation split, so a call per minibatch would restart Adam's moments and early stopping
each time; a second loop that keeps them would be a copy of fit. Fit on all rows instead.
"""

import dataclasses
import types
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from textrelu.api.bow import keyword_init
from textrelu.errors import BadInput
from textrelu.nn.batches import ArrayData
from textrelu.nn.targets import Target
from textrelu.nn.train import forward_all, resolve_device
from textrelu.settings import (
    TRAINING_KEYS,
    Checked,
    Finetuning,
    Group,
    Net,
    Pretraining,
    Settings,
    at_least,
    between,
    setting,
)
from textrelu.stages.finetune import finetune_arrays, split_valid
from textrelu.stages.pretrain import pretrain_arrays
from textrelu.stages.selftrain import self_train_one

PREDICT_BATCH = 1024  # rows per forward pass when predicting


@dataclass(frozen=True)
class Estimator(Checked):
    """The estimators' own settings, beside those of the network and its training."""

    pretrain_epochs: int = setting(
        0,
        "Denoising-autoencoder pre-training epochs per layer, on the rows of X and X_unlabeled (0: none).",
        at_least(0),
    )
    self_training_threshold: float | None = setting(
        None,
        "Self-train on fit's X_unlabeled (classes only): the rows the model classes with at least this "
        "probability join its training rows, and the retrained model is kept when the held-out "
        "accuracy rises (None: no self-training).",
        between(0.5, 1),
    )
    random_state: int | None = setting(None, "Seed of every random choice [default: a fresh one per fit].")
    device: str = setting(
        "auto", "auto (CUDA when present, else CPU), cpu or cuda; predictions run on the CPU."
    )
    verbose: bool = setting(False, "Progress bars and messages on stderr.")


def estimator_settings(exclude: tuple) -> Settings:
    """The keywords of an estimator: Net, Finetuning (less `exclude`), Pretraining (its loop
    settings prefixed pretrain_, unset: as fine-tuning's) and Estimator."""
    return Settings(
        Group("net", Net()),
        Group("training", Finetuning(), exclude=exclude),
        Group(
            "pretraining",
            Pretraining(),
            exclude=("epochs",),  # pretrain_epochs is the Estimator's: 0 turns pre-training off
            prefix="pretrain_",
            # pretrain_patience, _valid_fraction and _learning_rate keep pre-training's own defaults
            follow=(*TRAINING_KEYS, "patience", "valid_fraction"),
            follows="training",
            keep=("patience", "valid_fraction", "learning_rate"),
        ),
        Group("estimator", Estimator()),
    )


class _Row(types.SimpleNamespace):
    """A label or rating as Target.fit reads a review (label, rating, source, row)."""


def _rows(y, rating: bool):
    return [
        _Row(label=None if rating else v, rating=float(v) if rating else None, source="y", row=i + 1)
        for i, v in enumerate(y)
    ]


class _Rectifier(TransformerMixin, BaseEstimator):
    """What the classifier and the regressor share: fit, the forward pass, transform."""

    SETTINGS: Settings

    def _resolve(self):
        """The settings as group objects; a bad value is a BadSetting naming the key (fit makes it a ValueError)."""
        try:
            s = self.SETTINGS.resolve(self.get_params(deep=False))
            s.net.sizes([1000])  # hidden against layers, now
        except BadInput as e:
            raise BadInput(f"{type(self).__name__}: {e}") from None
        return s

    def fit(self, X, y, X_unlabeled=None):
        """Fit on (X, y): pre-train on the rows of X and X_unlabeled when pretrain_epochs > 0,
        then fine-tune with early stopping on a valid_fraction split of X's rows, then self-train
        on X_unlabeled when self_training_threshold is set (stages/selftrain.py). Bad settings
        and unusable targets are ValueErrors; training that diverges raises errors.Diverged."""
        try:
            return self._fit(X, y, X_unlabeled)
        except BadInput as e:
            raise ValueError(str(e)) from None

    def _fit(self, X, y, X_unlabeled):
        s = self._resolve()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float32, reset=True)
        if X.shape[0] < 2:
            raise ValueError(f"fit needs at least 2 samples (one for validation), got n_samples={X.shape[0]}")
        target, y_encoded = self._target(y, s)
        seed = int(check_random_state(s.estimator.random_state).randint(2**31 - 1))
        device = resolve_device(s.estimator.device)
        quiet = not s.estimator.verbose
        init_payload = None
        if s.estimator.pretrain_epochs > 0:
            if not s.net.sizes([1000]):
                raise ValueError("pretrain_epochs > 0 needs at least one hidden layer (layers >= 1)")
            rows = X
            if X_unlabeled is not None:
                extra = validate_data(self, X_unlabeled, accept_sparse="csr", dtype=np.float32, reset=False)
                rows = (
                    sp.vstack([X, extra], format="csr") if sp.issparse(X) else np.vstack([X, _dense(extra)])
                )
            pretraining = dataclasses.replace(s.pretraining, epochs=s.estimator.pretrain_epochs)
            stack, stack_args, pre_metrics = pretrain_arrays(
                ArrayData(rows), s.net, pretraining, target.n_outputs, device=device, seed=seed, quiet=quiet
            )
            init_payload = {"model_args": stack_args, "state_dict": stack.state_dict()}
        threshold = s.estimator.self_training_threshold
        if threshold is not None and target.head != "softmax":
            raise BadInput("self_training_threshold: self-training needs classes (RectifierClassifier)")
        data = ArrayData(X, y_encoded)
        train_rows, valid_rows = split_valid(len(data), s.training.valid_fraction, seed)
        train, valid = data.subset(train_rows), data.subset(valid_rows)

        def fit_one(train_data, valid_data, fold=0):
            return finetune_arrays(
                train_data,
                valid_data,
                target,
                X.shape[1],
                init_payload,
                s.net,
                s.training,
                device=device,
                seed=seed,
                quiet=quiet,
            )

        net, model_args, metrics = fit_one(train, valid)
        if threshold is not None and X_unlabeled is not None:
            extra = validate_data(self, X_unlabeled, accept_sparse="csr", dtype=np.float32, reset=False)
            net, metrics = self_train_one(
                train, valid, net, metrics, ArrayData(extra), fit_one, threshold, quiet, device=device
            )
        if init_payload is not None:
            metrics["pretrain"] = pre_metrics
        self.net_ = net.cpu().eval()
        self.model_args_ = model_args
        self.target_ = target
        self.metrics_ = metrics
        self.settings_ = self.SETTINGS.flat(s)
        self.n_iter_ = len(metrics["history"])
        return self

    def _forward(self, X):
        """(outputs float64 (n, n_outputs), top hidden activations float32 (n, n_hidden) or None)."""
        check_is_fitted(self, "net_")
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float32, reset=False)
        outputs, top = forward_all(self.net_, ArrayData(X), PREDICT_BATCH)
        return outputs.double(), (top.numpy() if top is not None else None)

    def transform(self, X):
        """The activations of the top hidden layer, a dense float32 array (n_samples, n_hidden)."""
        check_is_fitted(self, "net_")
        if not len(self.net_.layers):
            raise ValueError("transform needs a hidden layer; this model has none (layers=0)")
        return self._forward(X)[1]

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def _dense(X):
    return X.toarray() if sp.issparse(X) else X


class RectifierClassifier(ClassifierMixin, _Rectifier):
    """A deep sparse rectifier network with a softmax output, for any set of class labels.

    Keywords: settings.Net, settings.Finetuning (but the rating `head`), pre-training as
    pretrain_* and noise, reconstruction, sample_rate, tied; pretrain_epochs, random_state,
    device, verbose. Learned: classes_, net_ (the torch network, on the CPU), target_,
    model_args_, metrics_ (training history, best epoch, validation metrics), settings_."""

    SETTINGS = estimator_settings(exclude=("head",))
    __init__ = keyword_init(SETTINGS)

    def _target(self, y, s):
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"the classifier needs at least two classes in y, got one class: {self.classes_[0]!r}"
            )
        if s.training.nb_weights and len(self.classes_) != 2:
            raise ValueError(f"nb_weights needs two classes, got {len(self.classes_)}")
        target = Target("sentiment", "softmax", self.classes_.tolist())
        return target, torch.from_numpy(np.searchsorted(self.classes_, y).astype(np.int64))

    def decision_function(self, X):
        """Logits (n_samples, n_classes); with two classes the logit of classes_[1] over classes_[0] (n_samples,)."""
        out = self._forward(X)[0].numpy()
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    def predict_proba(self, X):
        check_is_fitted(self, "net_")
        return self.target_.predict(self._forward(X)[0]).numpy()

    def predict_log_proba(self, X):
        check_is_fitted(self, "net_")
        return self._forward(X)[0].log_softmax(-1).numpy()

    def predict(self, X):
        check_is_fitted(self, "net_")
        return self.classes_[self.predict_proba(X).argmax(1)]


class RectifierRegressor(RegressorMixin, _Rectifier):
    """A deep sparse rectifier network for ratings or any number.

    `head`: expectation (the paper's rating model: a softmax over the values of y, predicting
    their expected value) or regression (one linear unit on standardized y); unset, expectation
    when y holds at most 50 distinct values (star ratings), else regression. Predictions stay in
    the range of the training y. Other keywords and learned attributes as RectifierClassifier's
    (no classes_, no nb_weights)."""

    SETTINGS = estimator_settings(exclude=("nb_weights",))
    __init__ = keyword_init(SETTINGS)

    def _target(self, y, s):
        y = np.asarray(y, dtype=np.float64)
        target = Target.fit("rating", _rows(y, rating=True), s.training.head)
        return target, torch.from_numpy(y.astype(np.float32))

    def predict(self, X):
        check_is_fitted(self, "net_")
        return self.target_.predict(self._forward(X)[0]).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        return tags
