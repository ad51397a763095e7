"""evaluate: a model's accuracy (sentiment) or RMSE and MAE (rating) on labeled review files,
with the sparsity of every hidden layer.

    textrelu evaluate model.pt test.csv --json
"""

from textrelu import checkpoint
from textrelu.data.dataset import read_files, screen_labels, to_arrays
from textrelu.data.vocab import Vocabulary
from textrelu.nn.targets import Target
from textrelu.nn.train import evaluate_model, resolve_device
from textrelu.progress import say
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare, metrics_line, model_columns

SETTINGS = STAGE_SETTINGS["evaluate"]


def evaluate(model, files: list, device: str = "auto", quiet: bool = False, **settings) -> dict:
    """Metrics of the model file `model` on the labeled reviews of `files`.

    settings: the keys of Reading (textrelu.settings)."""
    reading = SETTINGS.resolve(settings).reading
    payload = checkpoint.load(model, kind="model")
    reading = model_columns(reading, payload)  # the training files' columns, unless given
    net, target = checkpoint.build_net(payload), Target(**payload["target"])
    vocabulary = Vocabulary.from_dict(payload["vocab"])
    reviews, rejects = read_files(files, reading, quiet, "evaluation")
    classes = target.classes if target.head == "softmax" else None
    # ratings mapped to polarity as the model was trained, unless given here
    positive_above = reading.positive_above
    if positive_above is None:
        positive_above = payload["config"].get("positive_above")
    reviews, bad = screen_labels(
        reviews, target.task, reading.max_bad_labels, "evaluation", classes, quiet, positive_above
    )
    dev = resolve_device(device)
    say(
        f"evaluating {model} on {len(reviews)} reviews ({len(rejects)} unreadable and "
        f"{len(bad)} with unusable labels left out), on {dev}",
        quiet,
    )
    metrics = evaluate_model(net, target, to_arrays(reviews, vocabulary, target), device=dev, per_class=True)
    metrics["n_rejected"] = len(rejects)
    metrics["n_bad_labels"] = len(bad)
    return metrics


def lines(metrics: dict) -> list[str]:
    return [metrics_line("evaluate", metrics)]


STAGE = declare(__name__, reads={"model": "model"})
