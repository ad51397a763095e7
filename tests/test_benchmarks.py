"""benchmarks/defaults.py, the issue-22 table: how a row is put together from its splits (which
term set the linear model gets, what counts as a win), and one split run end to end on a tiny
stand-in for the real data."""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import defaults  # noqa: E402

from textrelu.stages.finetune import finetune  # noqa: E402


def split_record(task, textrelu, term_sets):
    """What run_split returns, for run_row: textrelu's metric, the linear model's per term set."""
    return {
        "task": task,
        "parts": ["a", "b"],
        "textrelu": textrelu,
        "textrelu s": 1.0,
        "textrelu + pre-training": None,
        "textrelu + pre-training s": None,
        "textrelu + self-training": None,
        "textrelu + self-training s": None,
        "linear by term set": term_sets,
        "linear by term set s": {t: 2.0 for t in term_sets},
        "linear, terms by test per part": max(term_sets.values()),
        "linear, terms by CV": min(term_sets.values()),
        "fastText (autotuned)": None,
        "fastText (autotuned) s": None,
    }


def test_a_row_gives_the_linear_model_its_best_term_set_and_counts_no_tie_as_a_win(monkeypatch):
    runs = [
        # "all" is best on split 0 alone, "vocab" over both splits: the row's term set is "vocab"
        split_record("sentiment", 0.80, {"vocab": 0.78, "all": 0.81}),
        split_record("sentiment", 0.9500000179, {"vocab": 0.95, "all": 0.90}),  # float32: a tie
    ]
    monkeypatch.setattr(
        defaults, "run_split", lambda name, fasttext, work, pretraining, k, self_training: runs[k]
    )
    row = defaults.run_row("x", 0, Path("."), pretraining=False, splits=2)
    assert row["linear term set"] == "vocab"
    assert row["linear (CV)"] == pytest.approx(0.865) and row["linear (CV) s"] == 2.0
    assert row["textrelu - linear"] == pytest.approx([0.02, 0.0000000179])
    assert row["textrelu wins"] == 1
    cells = defaults.row_cells(row)
    assert cells[0] == "87.50% ± 10.61" and cells[3] == "86.50% ± 12.02" and cells[1] == cells[2] == "—"
    assert cells[6] == "+1.00 (1 of 2)"


def test_a_rating_row_is_better_lower(monkeypatch):
    runs = [split_record("rating", 1.10, {"vocab": 1.20, "all": 1.05})]
    monkeypatch.setattr(
        defaults, "run_split", lambda name, fasttext, work, pretraining, k, self_training: runs[k]
    )
    row = defaults.run_row("x", 0, Path("."), pretraining=False)
    assert row["linear term set"] == "all" and row["textrelu wins"] == 0
    cells = defaults.row_cells(row)
    assert cells[0] == "1.100" and cells[3] == "1.050" and cells[6] == "+0.050 (0 of 1)"


def test_one_split_end_to_end_on_a_tiny_set(tmp_path, monkeypatch):
    """run_split on two tiny parts: textrelu (here one short training, not the defaults, to keep
    the test fast) and the linear model on each of its three term sets fill the row's cells."""

    def tiny(name, work, split=0):
        rng = random.Random(split)
        good, bad = "good great fine love nice".split(), "bad awful poor hate dull".split()

        def rows(n):
            return [
                {
                    "text": " ".join(rng.sample(good if i % 2 else bad, 2) + rng.sample(good + bad, 2)),
                    "label": "pos" if i % 2 else "neg",
                }
                for i in range(n)
            ]

        return [("a", rows(120), rows(40), []), ("b", rows(120), rows(40), [])], "sentiment"

    def short_training(train_file, test_file, task, work, unlabeled_file=None, seed=0, self_train_on=None):
        m = finetune([train_file], task, work / "model.pt", test=[test_file], seed=seed, quiet=True,
                     search=False, epochs=3, hidden="8")  # fmt: skip
        return m["test"], 0.5, ""

    monkeypatch.setattr(defaults, "datasets", tiny)
    monkeypatch.setattr(defaults, "textrelu_defaults", short_training)
    record = defaults.run_split("tiny", 0, tmp_path, pretraining=False, split=0)
    assert record["parts"] == ["a", "b"] and record["textrelu chose"] == ["", ""]
    assert set(record["linear by term set"]) == {
        "textrelu's vocabulary",
        "5,000 uni+bigrams",
        "all uni+bigrams",
    }
    for column in ("textrelu", "linear, terms by CV", "linear, terms by test per part"):
        assert 0.5 < record[column] <= 1.0, column  # the label is in every text: far above chance
    best_by_test = max(record["linear by term set"].values())
    assert record["linear, terms by test per part"] >= best_by_test - 1e-9
    assert record["textrelu s"] == 1.0 and record["fastText (autotuned)"] is None
