"""Score a Ray Dataset you already hold: textrelu's model on your cluster (the `ray` extra).

    import ray, textrelu.ray
    reviews = ray.data.read_parquet("s3://bucket/reviews/")      # a text column, any others
    scored = textrelu.ray.score(reviews, "model.pt")             # lazy, like every Ray Dataset
    scored.write_parquet("s3://bucket/scored/")

Each row keeps its columns and gains the prediction that `textrelu score` gives its text:
`label` and `probabilities` (a struct of the classes), or `rating`, and `reason` (null, or why
a row with no usable text got no prediction). Actors load the model once and score batches
(stages/ray_engine.py); for files, `textrelu score --engine ray` reads them with textrelu's
readers instead.
"""

from pathlib import Path

from textrelu.data.readers import TEXT_COLUMNS
from textrelu.errors import BadInput
from textrelu.settings import Scoring
from textrelu.stages import ray_engine
from textrelu.stages.score import Scorer

__all__ = ["score"]


def score(
    dataset, model, text_column: str | None = None, batch_size: int | None = None, device: str = "auto"
):
    """`dataset` (a ray.data.Dataset) with each row's prediction by the model file `model`.

    text_column: the column holding the texts [default: the first of text, review, ... found,
    as the readers choose]; batch_size: rows an actor scores at a time [default: score's];
    device: auto (a GPU actor on a cluster with GPUs), cpu or cuda."""
    ray_engine.need_ray()
    if not Path(model).is_file():
        raise BadInput(f"model file {model} not found")
    names = dataset.schema().names
    if text_column is None:
        text_column = next((c for c in TEXT_COLUMNS if c in names), None)
        if text_column is None:
            raise BadInput(
                f"no text column (looked for {', '.join(TEXT_COLUMNS)}); columns: {', '.join(names)}"
            )
    if text_column not in names:
        raise BadInput(f"no text column {text_column!r} in the dataset; columns: {', '.join(names)}")
    Scorer(model, "cpu")  # a bad model file fails here, not in every actor
    batch_size = Scoring().batch_size if batch_size is None else batch_size
    return ray_engine.score_texts(dataset, Scorer, model, text_column, batch_size, device)
