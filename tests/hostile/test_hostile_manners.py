"""A good command-line tool (issue 23, last part): columns found by more names and said, an id
column copied to every prediction, star ratings as sentiment, per-class metrics."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import N_ROWS, invoke, ok, review_text, write_csv  # noqa: E402


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("manners")
    stars = [5, 4, 3, 2, 1]
    rows = [(f"R{i}", review_text(i, stars[i % 5] > 3), stars[i % 5]) for i in range(N_ROWS)]
    amazon = write_csv(root / "amazon.csv", rows, header=("review_id", "review_body", "star_rating"))
    ok(invoke("build-vocab", amazon, "--out", root / "v.txt", "--min-df", 1, "-q"))
    return {"root": root, "amazon": amazon, "vocab": root / "v.txt"}


def train(made, out, *extra):
    return invoke(
        "finetune",
        made["amazon"],
        "--task",
        "sentiment",
        "--vocab",
        made["vocab"],
        "--out",
        out,
        "--hidden",
        8,
        "--epochs",
        1,
        "--device",
        "cpu",
        *extra,
    )


@pytest.mark.parametrize(
    "header",
    [
        ("review_body", "star_rating"),
        ("review_text", "overall"),
        ("summary", "overall"),
        ("title", "stars"),
    ],
)
def test_review_dump_columns_are_found_and_said(tmp_path, made, header):
    data = write_csv(tmp_path / "d.csv", [(review_text(i, True), 5) for i in range(3)], header=header)
    result = ok(invoke("build-vocab", data, "--out", tmp_path / "v.txt", "--min-df", 1))
    assert f"columns text {header[0]!r}, label {header[1]!r}" in result.stderr


def test_an_id_column_is_copied_to_every_prediction(tmp_path, made):
    model = tmp_path / "m.pt"
    ok(train(made, model, "--positive-above", 3, "-q"))
    out = tmp_path / "p.jsonl"
    ok(invoke("score", model, made["amazon"], "--out", out, "--id-column", "review_id", "-q"))
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [f"R{i}" for i in range(N_ROWS)]
    result = invoke("score", model, made["amazon"], "--out", out, "--id-column", "nope", "-q")
    assert result.exit_code == 2 and "no column 'nope' (id_column)" in result.stderr


def test_star_ratings_as_sentiment_warn_and_map_with_positive_above(tmp_path, made):
    warned = ok(train(made, tmp_path / "a.pt"))
    assert "look like star ratings" in warned.stderr and "--positive-above 3" in warned.stderr
    mapped = ok(train(made, tmp_path / "b.pt", "--positive-above", 3))
    assert "look like star ratings" not in mapped.stderr
    assert "12 training review(s) rated exactly 3 (neutral) left out" in mapped.stderr
    metrics = json.loads(ok(invoke("evaluate", tmp_path / "b.pt", made["amazon"], "--json", "-q")).stdout)
    assert metrics["n"] == N_ROWS - 12  # the model's positive_above is used again
    assert set(metrics["per_class"]) == {"negative", "positive"}


def test_evaluate_prints_per_class_metrics_and_a_confusion_matrix(tmp_path, made):
    model = tmp_path / "m.pt"
    ok(train(made, model, "--positive-above", 3, "-q"))
    text = ok(invoke("evaluate", model, made["amazon"], "-q")).stdout
    assert "precision  recall  f1" in text and "confusion (rows: true, columns: predicted)" in text
    metrics = json.loads(ok(invoke("evaluate", model, made["amazon"], "--json", "-q")).stdout)
    matrix = metrics["confusion"]["matrix"]
    assert sum(map(sum, matrix)) == metrics["n"]
    for m in metrics["per_class"].values():
        assert set(m) == {"precision", "recall", "f1", "support"}
        assert all(len(repr(v).split(".")[-1]) <= 6 for v in m.values() if isinstance(v, float))
    assert all(len(repr(s["exact_zeros"]).split(".")[-1]) <= 6 for s in metrics["sparsity"])


def test_score_and_evaluate_read_the_columns_the_model_was_trained_with(tmp_path):
    """A model trained with --text-column/--label-column remembers them: files shaped like the
    training data need no column options; an option given still wins."""
    from textrelu.stages.build_vocab import build_vocab
    from textrelu.stages.evaluate import evaluate
    from textrelu.stages.finetune import finetune
    from textrelu.stages.score import score

    rows = [("great fine good", "yes"), ("awful bad poor", "no")] * 30
    train = tmp_path / "train.csv"
    train.write_text("body,verdict\n" + "".join(f"{t},{v}\n" for t, v in rows), encoding="utf-8")
    vocab = tmp_path / "v.txt"
    build_vocab([str(train)], vocab, min_df=1, text_column="body", quiet=True)
    model = tmp_path / "m.pt"
    finetune(
        [str(train)],
        "sentiment",
        model,
        vocab=vocab,
        hidden=8,
        epochs=3,
        text_column="body",
        label_column="verdict",
        quiet=True,
    )
    assert evaluate(model, [str(train)], quiet=True)["n"] == len(rows)
    summary = score(model, [str(train)], tmp_path / "p.jsonl", quiet=True)
    assert summary["scored"] == len(rows) and summary["config"]["text_column"] == "body"
    other = tmp_path / "other.csv"
    other.write_text("text\n" + "".join(f"{t}\n" for t, _ in rows), encoding="utf-8")
    assert score(model, [str(other)], tmp_path / "q.jsonl", text_column="text", quiet=True)["scored"] == len(
        rows
    )


def test_the_record_cap_is_a_setting(tmp_path):
    """--max-record-bytes (Reading.max_record_bytes) caps one record: a longer row is rejected
    with its size, the others are read."""

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "short one"}\n{"text": "' + "x" * 5000 + '"}\n{"text": "short two"}\n')
    vocab = tmp_path / "v.txt"
    result = ok(invoke("build-vocab", rows, "--out", vocab, "--min-df", 1, "--max-record-bytes", 1000))
    assert "over the limit of 1,000 bytes" in result.output and "2 reviews" in result.output
    result = invoke("build-vocab", rows, "--out", vocab, "--max-record-bytes", 0)
    assert result.exit_code == 2 and "--max-record-bytes must be at least 1" in result.output
