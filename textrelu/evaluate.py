"""evaluate: a model's accuracy (sentiment) or RMSE and MAE (rating) on labeled review files,
with the sparsity of every hidden layer.

    textrelu evaluate model.pt test.csv --json
"""

from . import checkpoint
from .dataset import read_files, to_arrays
from .targets import Target
from .train import evaluate_model, resolve_device
from .vocab import Vocabulary


def evaluate(model, files: list, label_column: str | None = None, text_column: str | None = None,
             batch_size: int = 512, device: str = "auto", quiet: bool = False) -> dict:
    """Metrics of the model file `model` on the labeled reviews of `files`."""
    payload = checkpoint.load(model, kind="model")
    net, target = checkpoint.build_net(payload), Target(**payload["target"])
    vocabulary = Vocabulary.from_dict(payload["vocab"])
    reviews, rejects = read_files(files, text_column, label_column, quiet, "evaluation")
    metrics = evaluate_model(net, target, to_arrays(reviews, vocabulary, target), batch_size,
                             resolve_device(device))
    metrics["n_rejected"] = len(rejects)
    return metrics
