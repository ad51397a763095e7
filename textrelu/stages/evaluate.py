"""evaluate: a model's accuracy (sentiment) or RMSE and MAE (rating) on labeled review files,
with the sparsity of every hidden layer.

    textrelu evaluate model.pt test.csv --json
"""

from textrelu import checkpoint
from textrelu.data.dataset import read_files, to_arrays
from textrelu.data.vocab import Vocabulary
from textrelu.nn.targets import Target
from textrelu.nn.train import evaluate_model, resolve_device
from textrelu.settings import STAGE_SETTINGS
from textrelu.stages import declare, metrics_line

SETTINGS = STAGE_SETTINGS["evaluate"]


def evaluate(model, files: list, device: str = "auto", quiet: bool = False, **settings) -> dict:
    """Metrics of the model file `model` on the labeled reviews of `files`.

    settings: the keys of Reading (textrelu.settings)."""
    reading = SETTINGS.resolve(settings).reading
    payload = checkpoint.load(model, kind="model")
    net, target = checkpoint.build_net(payload), Target(**payload["target"])
    vocabulary = Vocabulary.from_dict(payload["vocab"])
    reviews, rejects = read_files(files, reading.text_column, reading.label_column, quiet, "evaluation")
    metrics = evaluate_model(
        net, target, to_arrays(reviews, vocabulary, target), device=resolve_device(device)
    )
    metrics["n_rejected"] = len(rejects)
    return metrics


def lines(metrics: dict) -> list[str]:
    return [metrics_line("evaluate", metrics)]


STAGE = declare(__name__, reads={"model": "model"})
