"""textrelu.load and textrelu.save: one model file for the CLI and for Python.

    model = textrelu.load("model.pt")                 # any checkpoint `textrelu finetune` writes
    model.predict(["Great knife, stays sharp."])      # labels, or ratings
    model.predict_proba(texts)                        # class probabilities, columns as model.classes_
    model.transform(texts)                            # top hidden layer, dense (n_texts, n_hidden)
    model.vectorize(texts)                            # the binary CSR matrix the network reads

    textrelu.save(make_pipeline(BagOfWords(), RectifierClassifier()).fit(texts, labels), "model.pt")

`save` writes a fitted BagOfWords + RectifierClassifier/RectifierRegressor pipeline as a "model"
checkpoint (checkpoint.save), which `textrelu score` and `textrelu evaluate` read like one that
`finetune` wrote. `Model` vectorizes texts and runs the network as `score` does (the compiled
featurizer, a sparse CSR batch through the network in eval mode, `Target.predict`), so both
give the same numbers.
"""

import numpy as np

from textrelu import checkpoint
from textrelu.api.bow import BagOfWords, vectorize_texts
from textrelu.api.estimators import RectifierClassifier, RectifierRegressor
from textrelu.data.vocab import Vocabulary
from textrelu.io import plain
from textrelu.nn.batches import ArrayData
from textrelu.nn.targets import Target
from textrelu.nn.train import forward_all

BATCH = 1024  # texts per forward pass (score's default batch_size)

__all__ = ["Model", "load", "save"]


class Model:
    """A fine-tuned text model: its network (eval mode, CPU), vocabulary and target.

    Attributes: `task` ("sentiment" or "rating"), `classes_` (the class labels, sentiment;
    None for ratings), `vocabulary` (textrelu Vocabulary), `settings` (the flat config it was
    trained with), `metrics` (its training history and validation, and test, metrics), `net`
    (the torch SparseRectifierNet), `target` (nn.targets.Target)."""

    def __init__(self, payload: dict):
        self.payload = payload
        self.net = checkpoint.build_net(payload)
        self.target = Target(**payload["target"])
        self.vocabulary = Vocabulary.from_dict(payload["vocab"])
        self.settings = payload["config"]
        self.metrics = payload["metrics"]
        self.task = self.target.task
        self.classes_ = np.asarray(self.target.classes) if self.target.head == "softmax" else None

    def __repr__(self) -> str:
        hidden = [layer.n_out for layer in self.net.layers]
        return f"Model(task={self.task!r}, head={self.target.head!r}, terms={len(self.vocabulary)}, hidden={hidden})"

    def vectorize(self, texts):
        """The binary float32 CSR matrix (n_texts, n_terms) the network reads; never dense."""
        return vectorize_texts(texts, self.vocabulary)

    def _forward(self, texts):
        """(outputs (n, n_outputs), top hidden activations (n, n_hidden) or None), float32."""
        return forward_all(self.net, ArrayData(self.vectorize(texts)), BATCH)

    def predict_proba(self, texts) -> np.ndarray:
        """Class probabilities (n_texts, n_classes), columns in the order of `classes_` (sentiment)."""
        if self.target.head != "softmax":
            raise ValueError(
                f"predict_proba needs a sentiment model; this one predicts ratings ({self.target.head})"
            )
        return self.target.predict(self._forward(texts)[0]).numpy()

    def predict(self, texts) -> np.ndarray:
        """The most probable label of each text (sentiment), or its rating."""
        predicted = self.target.predict(self._forward(texts)[0]).numpy()
        if self.target.head == "softmax":
            return self.classes_[predicted.argmax(1)] if len(predicted) else self.classes_[:0]
        return predicted

    def transform(self, texts) -> np.ndarray:
        """The activations of the top hidden layer, dense float32 (n_texts, n_hidden)."""
        if not len(self.net.layers):
            raise ValueError("transform needs a hidden layer; this model has none (layers=0)")
        top = self._forward(texts)[1]
        return np.zeros((0, self.net.layers[-1].n_out), np.float32) if top is None else top.numpy()

    def save(self, path) -> None:
        """Write the model file again (atomically), as `finetune` wrote it."""
        p = self.payload
        checkpoint.save(
            path,
            "model",
            self.net,
            p["model_args"],
            p["config"],
            p["metrics"],
            vocab=p["vocab"],
            target=p["target"],
        )


def load(path) -> Model:
    """The model of a checkpoint written by `textrelu finetune` or `textrelu.save`."""
    return Model(checkpoint.load(path, kind="model"))


def save(model, path) -> None:
    """Write `model` as a "model" checkpoint that `textrelu score`, `evaluate` and `load` read:
    a fitted make_pipeline(BagOfWords(), RectifierClassifier() or RectifierRegressor()), or a Model."""
    if isinstance(model, Model):
        model.save(path)
        return
    steps = [step for _, step in getattr(model, "steps", [])]
    if (
        len(steps) != 2
        or not isinstance(steps[0], BagOfWords)
        or not isinstance(steps[1], (RectifierClassifier, RectifierRegressor))
    ):
        raise TypeError(
            "save takes a Model or a pipeline of two steps, BagOfWords then RectifierClassifier or "
            f"RectifierRegressor, as make_pipeline(BagOfWords(), RectifierClassifier()) builds; got {model!r}"
        )
    bow, est = steps
    if not hasattr(bow, "vocabulary_") or not hasattr(est, "net_"):
        raise ValueError("save needs a fitted pipeline; call fit first")
    target = est.target_.to_dict()
    target["classes"] = [c.item() if isinstance(c, np.generic) else c for c in target["classes"]]
    if target["head"] == "softmax":  # class names as the CLI reads labels from files: text
        target["classes"] = [str(c) for c in target["classes"]]
    config = plain(
        {
            "task": est.target_.task,
            "estimator": type(est).__name__,
            **bow.get_params(),
            **est.settings_,
        }
    )
    checkpoint.save(
        path,
        "model",
        est.net_,
        est.model_args_,
        config,
        est.metrics_,
        vocab=bow.vocabulary_.to_dict(),
        target=target,
    )
