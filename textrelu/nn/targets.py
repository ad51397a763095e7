"""What a model predicts: labels to tensors, outputs to predictions, losses and metrics.

- sentiment: any discrete label set; softmax head, negative log-likelihood, accuracy.
- classification (images): like sentiment, built directly with Target("classification", "softmax", classes).
- rating: numbers; the range is learned from the training data and predictions stay inside it.
  Two heads: "regression" (one linear unit on the standardized rating, squared error) and
  "expectation" (the paper's: a softmax over the rating values seen in training, trained with
  negative log-likelihood, predicting the expected value). Unset, the head is expectation for at
  most MAX_EXPECTATION_VALUES distinct ratings, else regression. Metrics: RMSE and MAE.

Scoring needs only `predict_array` (numpy), so torch is imported by the methods that use it,
not with the module: `score` on the CPU runs without torch (nn/inference.py).
"""

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from textrelu.errors import BadInput
from textrelu.settings import RATING_HEADS, TASKS

if TYPE_CHECKING:
    import torch

MAX_EXPECTATION_VALUES = 50
# A rating beyond this size is no rating but a wrong column or a broken row: real scales (stars,
# 1-10, 0-100 scores) are far inside it, and squared errors of values near float's limit (1e308)
# overflow RMSE to inf.
MAX_ABS_RATING = 1e6


def _where(review) -> str:
    return f"{review.source}, row {review.row}"


@dataclass
class Target:
    task: str
    head: str
    classes: list = field(default_factory=list)  # sentiment labels, or rating values (expectation)
    mean: float = 0.0
    std: float = 1.0
    low: float = 0.0
    high: float = 0.0

    # -- building from training reviews ------------------------------------------------------
    @classmethod
    def fit(cls, task: str, reviews, head: str | None = None) -> "Target":
        if task not in TASKS:
            raise BadInput(f"task must be one of {TASKS}, got {task!r}")
        if task == "sentiment":
            labels = sorted({review_label(r) for r in reviews})
            if len(labels) < 2:
                sources = sorted({r.source for r in reviews})
                raise BadInput(
                    f"sentiment needs at least two classes in the training labels, found "
                    f"{labels or 'none'} in {', '.join(sources[:5])}"
                )
            return cls("sentiment", "softmax", labels)
        import torch

        ratings = torch.tensor([review_rating(r) for r in reviews], dtype=torch.float64)
        values = sorted(set(ratings.tolist()))
        if len(values) < 2:
            raise BadInput(f"rating needs at least two distinct ratings in the training data, found {values}")
        # unset: the paper's head for a few rating values (stars, half stars, 1-10), else a scale
        head = head or ("expectation" if len(values) <= MAX_EXPECTATION_VALUES else "regression")
        if head not in RATING_HEADS:
            raise BadInput(f"head must be one of {RATING_HEADS} for ratings, got {head!r}")
        if head == "expectation" and len(values) > MAX_EXPECTATION_VALUES:
            raise BadInput(
                f"the expectation head needs a few discrete ratings, found {len(values)} "
                "distinct values; use the regression head"
            )
        return cls(
            "rating",
            head,
            values if head == "expectation" else [],
            float(ratings.mean()),
            float(ratings.std().clamp_min(1e-6)),
            float(ratings.min()),
            float(ratings.max()),
        )

    @property
    def n_outputs(self) -> int:
        return 1 if self.head == "regression" else len(self.classes)

    def to_dict(self) -> dict:
        return asdict(self)

    # -- labels to tensors -----------------------------------------------------------------
    def encode(self, reviews) -> "torch.Tensor":
        """Training targets: class indices (softmax), or ratings (regression, expectation)."""
        import torch

        if self.head == "softmax":
            index = {c: i for i, c in enumerate(self.classes)}
            ys = []
            for r in reviews:
                label = review_label(r)
                if label not in index:
                    raise BadInput(
                        f"{_where(r)}: label {label!r} was not among the training classes {self.classes}"
                    )
                ys.append(index[label])
            return torch.tensor(ys, dtype=torch.long)
        return torch.tensor([review_rating(r) for r in reviews], dtype=torch.float32)

    # -- outputs to predictions, losses, metrics --------------------------------------------
    def predict(self, outputs: "torch.Tensor") -> "torch.Tensor":
        """Class probabilities (batch, n_classes) or ratings (batch,) inside the training range."""
        import torch

        if self.head == "softmax":
            return outputs.softmax(-1)
        if self.head == "expectation":
            return outputs.softmax(-1) @ torch.tensor(
                self.classes, dtype=outputs.dtype, device=outputs.device
            )
        return (outputs.squeeze(-1) * self.std + self.mean).clamp(self.low, self.high)

    def predict_array(self, outputs: np.ndarray) -> np.ndarray:
        """`predict` in numpy, for scoring without torch: float32 outputs (batch, n_outputs) ->
        probabilities (batch, n_classes) or ratings (batch,); tests/test_inference.py holds the two
        within 1e-6."""
        if self.head == "regression":
            return np.clip(outputs[:, 0] * self.std + self.mean, self.low, self.high)
        e = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        probabilities = e / e.sum(axis=1, keepdims=True)
        if self.head == "softmax":
            return probabilities
        return probabilities @ np.asarray(self.classes, dtype=outputs.dtype)

    def loss(
        self, outputs: "torch.Tensor", y: "torch.Tensor", label_smoothing: float = 0.0
    ) -> "torch.Tensor":
        """The training loss; `label_smoothing` spreads that share of each target over every class
        (the softmax heads; a regression unit has no classes to spread over)."""
        import torch
        import torch.nn.functional as F

        if self.head == "softmax":
            return F.cross_entropy(outputs, y, label_smoothing=label_smoothing)
        if self.head == "expectation":
            values = torch.tensor(self.classes, dtype=y.dtype, device=y.device)
            nearest = (y.unsqueeze(1) - values).abs().argmin(1)  # a rating seen in training: itself
            return F.cross_entropy(outputs, nearest, label_smoothing=label_smoothing)
        return F.mse_loss(outputs.squeeze(-1), (y - self.mean) / self.std)

    def metrics(self, outputs: "torch.Tensor", y: "torch.Tensor") -> dict:
        pred = self.predict(outputs)
        if self.head == "softmax":
            return {"accuracy": float((pred.argmax(-1) == y.cpu()).float().mean())}
        err = pred.double() - y.cpu().double()
        return {"rmse": math.sqrt(float((err**2).mean())), "mae": float(err.abs().mean())}

    def per_class(self, outputs: "torch.Tensor", y: "torch.Tensor") -> dict:
        """Per class: precision, recall, F1 and support; and the confusion matrix (rows: the true
        class, columns: the predicted one), for a softmax head."""
        import torch

        k = len(self.classes)
        pred = self.predict(outputs).argmax(-1).cpu()
        confusion = torch.zeros(k, k, dtype=torch.long)
        confusion.index_put_((y.cpu().long(), pred), torch.ones_like(pred), accumulate=True)
        report = {}
        for i, c in enumerate(self.classes):
            tp = int(confusion[i, i])
            predicted, support = int(confusion[:, i].sum()), int(confusion[i].sum())
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            report[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        return {
            "per_class": report,
            "confusion": {"classes": list(map(str, self.classes)), "matrix": confusion.tolist()},
        }

    def score(self, metrics: dict) -> float:
        """One number to maximize for early stopping: accuracy (ties: lower loss), or -RMSE."""
        if self.head == "softmax":
            return metrics["accuracy"] - 1e-6 * metrics["loss"]
        return -metrics["rmse"]


def label_problem(task: str, review, classes=None) -> str | None:
    """Why a review's label cannot be used for `task` (and, given, the training `classes` of a
    sentiment model), quoting the value; None when it can."""
    if task == "sentiment":
        if review.label is None:
            return "no label"
        if classes is not None and review.label not in classes:
            return f"label {review.label!r} is not among the training classes {list(classes)}"
        return None
    value = review.rating
    if value is None:
        if review.label is None:
            return "no rating"
        try:
            value = float(review.label)
        except (TypeError, ValueError):
            return f"rating {review.label!r} is not a number"
    if not math.isfinite(value):
        return f"rating {review.label if review.label is not None else value!r} is not finite"
    if abs(value) > MAX_ABS_RATING:
        return f"rating {review.label if review.label is not None else value!r} is absurd (beyond ±{MAX_ABS_RATING:g})"
    return None


def review_label(review) -> str:
    if review.label is None:
        raise BadInput(f"{_where(review)}: no label; sentiment needs labeled reviews (name the label column)")
    return review.label


def review_rating(review) -> float:
    if review.rating is not None:
        return float(review.rating)
    try:
        value = float(review.label)
    except (TypeError, ValueError):
        raise BadInput(
            f"{_where(review)}: rating {review.label!r} is not a number; the rating "
            "task needs numeric ratings (name the label column)"
        ) from None
    if not math.isfinite(value):
        raise BadInput(f"{_where(review)}: rating {review.label!r} is not finite")
    return value
