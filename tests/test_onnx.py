"""ONNX export (textrelu/api/onnx.py, `textrelu export`): onnxruntime against torch on every
head, with NB input weights, no hidden layer, and deeper symmetric and softplus networks."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from typer.testing import CliRunner

import textrelu
from textrelu.api import onnx as api_onnx
from textrelu.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from corpus import N_ROWS, review_text  # noqa: E402

TINY = dict(hidden=16, epochs=5, learning_rate=0.01, random_state=0, device="cpu")
NEEDS_EXTRA = "onnx export tests need the extra: pip install 'textrelu[onnx]' (onnx, onnxruntime, onnxscript)"


def needs_onnx():
    if api_onnx.missing_packages():
        pytest.skip(NEEDS_EXTRA)
    import onnxruntime

    return onnxruntime


TEXTS = [review_text(i, i % 2 == 0) for i in range(N_ROWS)]
LABELS = ["positive" if i % 2 == 0 else "negative" for i in range(N_ROWS)]
STARS = [(5, 1, 4, 2)[i % 4] for i in range(N_ROWS)]
NEW = [*TEXTS[:7], "Great <b>PAN</b>, love it!", "zebra quartz", "", "the the the knife knife"]

MODELS = {
    "sentiment": ("classifier", {}),
    "sentiment-nb-weights": ("classifier", {"nb_weights": True}),
    "sentiment-no-hidden-layer": ("classifier", {"layers": 0}),
    "sentiment-2-layers-symmetric-softplus": (
        "classifier",
        {"layers": 2, "symmetric": True, "activation": "softplus:3"},
    ),
    "rating-expectation": ("regressor", {"head": "expectation"}),
    "rating-regression": ("regressor", {"head": "regression", "layers": 2, "hidden": "16,8"}),
}


def model_file(name: str, folder: Path) -> Path:
    kind, settings = MODELS[name]
    if kind == "classifier":
        est, y = textrelu.RectifierClassifier(**{**TINY, **settings}), LABELS
    else:
        est, y = textrelu.RectifierRegressor(**{**TINY, **settings}), STARS
    pipe = make_pipeline(textrelu.BagOfWords(size=100, min_df=1, ngrams=2), est).fit(TEXTS, y)
    path = folder / f"{name}.pt"
    textrelu.save(pipe, path)
    return path


@pytest.mark.parametrize("name", list(MODELS))
def test_onnxruntime_predicts_what_torch_predicts(name, tmp_path):
    ort = needs_onnx()
    path = model_file(name, tmp_path)
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(path), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    info = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))
    model = textrelu.load(path)
    assert info["terms"] == model.vocabulary.terms and info["input"]["pad_id"] == len(model.vocabulary)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["ids"]
    ids = api_onnx.ids_matrix(model.vectorize(NEW), info["input"]["pad_id"])
    (got,) = session.run(None, {"ids": ids})
    if model.task == "sentiment":
        assert info["output"]["name"] == "probabilities" and info["classes"] == list(model.classes_)
        expected = model.predict_proba(NEW)
    else:
        assert info["output"]["name"] == "rating" and got.shape == (len(NEW),)
        expected = model.predict(NEW)
    assert np.abs(got - expected).max() <= 1e-5
    # more padding, and one row at a time, change nothing
    wider = np.pad(ids, ((0, 0), (0, 5)), constant_values=info["input"]["pad_id"])
    assert np.abs(session.run(None, {"ids": wider})[0] - expected).max() <= 1e-5
    assert np.abs(session.run(None, {"ids": ids[2:3]})[0] - expected[2:3]).max() <= 1e-5


def test_ids_matrix_pads_each_row_with_the_pad_id():
    import scipy.sparse as sp

    X = sp.csr_matrix(np.array([[0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=np.float32))
    np.testing.assert_array_equal(api_onnx.ids_matrix(X, 4), [[1, 3, 4, 4], [4, 4, 4, 4], [0, 1, 2, 3]])
    assert api_onnx.ids_matrix(X[1:2], 4).tolist() == [[4]]


def test_export_without_the_extra_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(api_onnx, "missing_packages", lambda: ["onnxruntime"])
    path = model_file("sentiment", tmp_path)
    result = CliRunner().invoke(app, ["export", str(path), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "pip install 'textrelu[onnx]'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.onnx").exists()
