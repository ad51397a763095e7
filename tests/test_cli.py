"""Command-line tests of textrelu: every command through typer's CliRunner, on a tiny corpus.

The corpus is written to a temporary folder: 60 CSV reviews with clearly positive or negative
words (and a JSON Lines twin with star ratings for --task rating). Models are tiny (16 hidden
units, 1-2 epochs) so the whole file runs in well under a minute on two CPU cores.

Exit codes (textrelu/cli.py): 0 success, 2 bad usage or bad input, 1 anything else.
CliRunner (click >= 8.2) keeps stdout and stderr apart: `result.stdout` holds the results,
`result.stderr` the progress, warnings and error messages, `result.output` both interleaved.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import textrelu.stages.pretrain as pretrain_module
import textrelu.stages.score
from textrelu import checkpoint
from textrelu.data.dataset import read_files, to_arrays
from textrelu.data.vocab import Vocabulary
from textrelu.nn.batches import csr_to_torch
from textrelu.nn.model import SparsityMeter
from textrelu.settings import Pretraining

COMMANDS = ("build-vocab", "pretrain", "finetune", "evaluate", "score", "run")

from corpus import N_ROWS, invoke, ok, review_text, write_csv  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def flat(text: str) -> str:
    """Help text without colors, box drawing and line wrapping: one line, single spaces."""
    text = ANSI.sub("", text)
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return re.sub(r"\s+", " ", text)


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def summary_counts(stdout: str) -> tuple[int, int, int]:
    m = re.search(r"read (\d+) = scored (\d+) \+ rejected (\d+)", stdout)
    assert m, stdout
    return int(m[1]), int(m[2]), int(m[3])


# ---------------------------------------------------------------------------------------------
# The corpus and the models built from it (once per module: they are read-only afterwards)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rows = [
        (f"r{i}", review_text(i, i % 2 == 0), "positive" if i % 2 == 0 else "negative") for i in range(N_ROWS)
    ]
    train = write_csv(root / "train.csv", rows)
    ratings = root / "ratings.jsonl"
    with open(ratings, "w", encoding="utf-8") as f:
        for i in range(N_ROWS):
            stars = (5, 1, 4, 2)[i % 4]
            f.write(json.dumps({"id": f"s{i}", "text": review_text(i, stars >= 4), "rating": stars}) + "\n")
    return {"root": root, "train": train, "ratings": ratings, "rows": rows}


@pytest.fixture(scope="module")
def models(corpus, tmp_path_factory):
    """vocab.txt, pretrained.pt (1 x 16), model.pt (sentiment, from the pre-trained stack),
    model2.pt (sentiment, random init, 2 layers) and rating.pt (rating)."""
    out = tmp_path_factory.mktemp("models")
    paths = {
        name: out / name for name in ("vocab.txt", "pretrained.pt", "model.pt", "model2.pt", "rating.pt")
    }
    ok(
        invoke(
            "build-vocab",
            corpus["train"],
            corpus["ratings"],
            "--out",
            paths["vocab.txt"],
            "--size",
            200,
            "--min-df",
            1,
            "-q",
        )
    )
    ok(
        invoke(
            "pretrain",
            corpus["train"],
            "--vocab",
            paths["vocab.txt"],
            "--out",
            paths["pretrained.pt"],
            "--layers",
            1,
            "--hidden",
            16,
            "--epochs",
            1,
            "-q",
        )
    )
    ok(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            paths["pretrained.pt"],
            "--out",
            paths["model.pt"],
            "--epochs",
            2,
            "-q",
        )
    )
    ok(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--vocab",
            paths["vocab.txt"],
            "--layers",
            2,
            "--hidden",
            "16,8",
            "--out",
            paths["model2.pt"],
            "--epochs",
            1,
            "-q",
        )
    )
    ok(
        invoke(
            "finetune",
            corpus["ratings"],
            "--task",
            "rating",
            "--vocab",
            paths["vocab.txt"],
            "--hidden",
            16,
            "--out",
            paths["rating.pt"],
            "--epochs",
            2,
            "-q",
        )
    )
    return {name.split(".")[0]: p for name, p in paths.items()}


# ---------------------------------------------------------------------------------------------
# --help and --version

HELP = {
    "build-vocab": [
        "--out",
        "--size",
        "[default: 5000]",
        "--ngrams",
        "[default: 1]",
        "--min-df",
        "[default: 2]",
        "--text-column",
        "--workers",
        "--quiet",
        "-q",
    ],
    "pretrain": [
        "--vocab",
        "--out",
        "--layers",
        "[default: 1]",
        "--hidden",
        "[default: 1000]",
        "--activation",
        "relu|softplus|tanh",
        "--noise",
        "[default: 0.25]",
        "--l1",
        "[default: 0.0001]",
        "--epochs",
        "[default: 10]",
        "--batch-size",
        "[default: 64]",
        "--learning-rate",
        "[default: 3e-05]",
        "--reconstruction",
        "[default: sigmoid-ce]",
        "--sample-rate",
        "[default: 1%, and at least 200 columns a review]",
        "--patience",
        "[default: 2]",
        "--valid-fraction",
        "[default: 0.05]",
        "--optimizer",
        "[default: adam]",
        "--device",
        "[default: auto]",
        "--seed",
        "[default: 0]",
        "--quiet",
    ],
    "finetune": [
        "--task",
        "sentiment|rating",
        "--out",
        "--vocab",
        "--init",
        "--label-column",
        "--text-column",
        "--valid",
        "--valid-fraction",
        "[default: 0.1]",
        "--test",
        "--epochs",
        "[default: 30]",
        "--patience",
        "[default: 5]",
        "--layers",
        "--hidden",
        "--activation",
        "--head",
        "--l1",
        "--dropout",
        "[default: 0.5]",
        "--input-dropout",
        "[default: 0.2]",
        "--weight-decay",
        "[default: 0.0]",
        "--batch-size",
        "--learning-rate",
        "--optimizer",
        "--nb-weights",
        "--device",
        "--seed",
        "--quiet",
    ],
    "evaluate": [
        "--json",
        "--label-column",
        "--text-column",
        "--device",
        "[default: auto]",
        "--quiet",
        "Model file from finetune",
    ],
    "score": [
        "--out",
        "--rejects",
        "--text-column",
        "--batch-size",
        "[default: 1024]",
        "--workers",
        "--device",
        "--quiet",
    ],
    "run": ["--runs-dir", "[default: runs]", "--quiet", "Pipeline file (TOML)"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_lists_its_options_and_defaults(command):
    result = ok(invoke(command, "--help"))
    text = flat(result.stdout)
    assert f"{command} [OPTIONS]" in text
    for fragment in HELP[command]:
        assert fragment in text, f"{command} --help lacks {fragment!r}"


def test_top_level_help_lists_every_command_and_version_prints():
    text = flat(ok(invoke("--help")).stdout)
    for command in COMMANDS:
        assert command in text
    assert re.fullmatch(r"textrelu \d+\.\d+\.\d+\s*", ok(invoke("--version")).stdout)


def test_no_arguments_prints_help():
    result = invoke()
    assert result.exit_code in (0, 2)  # click's no_args_is_help exits 2 from click 8.2 on
    assert "build-vocab" in flat(result.output)


@pytest.mark.parametrize(
    "command, fragment",
    [
        ("build-vocab", "FILE[::GLOB][[a:b]]"),
        ("build-vocab", "[default: found by name]"),
        ("finetune", "[default: the --init file's, else built from FILES"),
        ("finetune", "[default: random weights]"),
        ("finetune", "[default: expectation for at most 50 distinct ratings, else regression]"),
        ("score", "[default: OUT with .rejects.jsonl]"),
        ("run", "[default: pipelines/demo.toml on data/]"),
    ],
)
def test_help_shows_the_defaults_written_in_brackets(command, fragment):
    assert fragment in flat(ok(invoke(command, "--help")).stdout)


# ---------------------------------------------------------------------------------------------
# build-vocab, pretrain, finetune


def test_build_vocab_writes_a_readable_vocabulary(corpus, tmp_path):
    out = tmp_path / "sub" / "vocab.txt"
    result = ok(
        invoke("build-vocab", corpus["train"], "--out", out, "--size", 12, "--ngrams", 2, "--min-df", 2, "-q")
    )
    vocab = Vocabulary.load(out)
    assert len(vocab) == 12 and vocab.ngrams == 2 and vocab.n_documents == N_ROWS
    assert f"vocabulary: 12 terms from {N_ROWS} reviews -> {out}" in result.stdout
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# textrelu vocabulary")
    body = [line.split("\t") for line in lines if not line.startswith("# ")]
    assert len(body) == 12
    dfs = [int(df) for _, df in body]
    assert dfs == sorted(dfs, reverse=True) and min(dfs) >= 2
    assert files_in(out.parent) == {"vocab.txt"}  # no temporary file left


def test_build_vocab_bigrams_are_kept_with_ngrams_2(corpus, tmp_path):
    ok(
        invoke(
            "build-vocab",
            corpus["train"],
            "--out",
            tmp_path / "v.txt",
            "--size",
            5000,
            "--ngrams",
            2,
            "--min-df",
            1,
            "-q",
        )
    )
    terms = Vocabulary.load(tmp_path / "v.txt").terms
    assert any(" " in t for t in terms) and "great" in terms and "terrible" in terms


def test_build_vocab_reads_a_slice_of_a_file(corpus, tmp_path):
    result = ok(
        invoke("build-vocab", f"{corpus['train']}[:10]", "--out", tmp_path / "v.txt", "--min-df", 1, "-q")
    )
    assert "from 10 reviews" in result.stdout


def test_finetune_and_pretrain_without_vocab_build_build_vocabs_vocabulary(corpus, tmp_path):
    """No --vocab: the stage counts the terms of its own files (not the --valid ones) as build-vocab
    does with the same options, and stores them in its output."""
    terms = ("--size", 30, "--ngrams", 2, "--min-df", 1)
    ok(invoke("build-vocab", corpus["train"], "--out", tmp_path / "v.txt", *terms, "-q"))
    expected = Vocabulary.load(tmp_path / "v.txt")
    valid = write_csv(tmp_path / "valid.csv", [("v0", "zebra zebra quokka", "positive")] * 3)
    ok(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--valid",
            valid,
            "--out",
            tmp_path / "m.pt",
            "--hidden",
            8,
            "--epochs",
            1,
            *terms,
            "-q",
        )
    )
    ok(
        invoke(
            "pretrain",
            corpus["train"],
            "--out",
            tmp_path / "p.pt",
            "--hidden",
            8,
            "--epochs",
            1,
            *terms,
            "-q",
        )
    )
    for name, kind in (("m.pt", "model"), ("p.pt", "pretrained")):
        vocab = Vocabulary.from_dict(checkpoint.load(tmp_path / name, kind=kind)["vocab"])
        assert (vocab.terms, vocab.document_frequency) == (expected.terms, expected.document_frequency)
        assert vocab.ngrams == 2
        assert checkpoint.load(tmp_path / name)["config"]["size"] == 30


def test_rating_without_options_takes_a_continuous_score(corpus, models, tmp_path):
    """Scores in [0, 1] get the regression head, stars (the rating.pt fixture) the expectation head."""
    scores = tmp_path / "scores.jsonl"
    with open(scores, "w", encoding="utf-8") as f:
        for i in range(N_ROWS):
            f.write(
                json.dumps({"text": review_text(i, i % 2 == 0), "rating": (i % 2 + i / N_ROWS) / 2}) + "\n"
            )
    ok(invoke("finetune", scores, "--task", "rating", "--out", tmp_path / "r.pt", "--epochs", 1, "-q"))
    assert checkpoint.load(tmp_path / "r.pt")["target"]["head"] == "regression"
    assert checkpoint.load(models["rating"])["target"]["head"] == "expectation"


def test_pretrain_writes_a_pretrained_stack(corpus, models, tmp_path):
    out = tmp_path / "p.pt"
    result = ok(
        invoke(
            "pretrain",
            corpus["train"],
            "--vocab",
            models["vocab"],
            "--out",
            out,
            "--layers",
            2,
            "--hidden",
            "16,8",
            "--epochs",
            1,
            "--noise",
            0.1,
            "-q",
        )
    )
    payload = checkpoint.load(out, kind="pretrained")
    assert payload["model_args"]["hidden"] == [16, 8]
    assert payload["config"]["noise"] == 0.1
    for layer in (1, 2):
        assert re.search(
            rf"layer {layer}: 1 epoch\(s\), final reconstruction loss [\d.]+, best on held-out reviews "
            r"[\d.]+ \(epoch 1, kept\); \d+% exact zeros, \d+% of units never active",
            result.stdout,
        ), result.stdout
    assert f"pre-trained on {N_ROWS} reviews" in result.stdout
    assert files_in(tmp_path) == {"p.pt"}
    # the sparsity of each layer over every pre-training review, as the network gives it
    net = checkpoint.build_net(payload)
    data = to_arrays(read_files([corpus["train"]], quiet=True)[0], Vocabulary.from_dict(payload["vocab"]))
    meter = SparsityMeter()
    with torch.no_grad():
        meter.update(net(csr_to_torch(data.X))[1])
    assert payload["metrics"]["sparsity"] == meter.result()


def test_pretrain_warns_when_most_units_die(corpus, models, tmp_path, monkeypatch):
    dead = [{"layer": 1, "exact_zeros": 0.99, "dead_units": 0.8}]
    monkeypatch.setattr(pretrain_module, "hidden_sparsity", lambda *args: dead)
    out = tmp_path / "p.pt"
    result = ok(invoke("pretrain", corpus["train"], "--vocab", models["vocab"], "--out", out, "--hidden", 8))
    assert "warning: 80% of layer 1's units are never active" in result.output
    assert f"lower --learning-rate (now {Pretraining().learning_rate:g})" in result.output
    assert "99% exact zeros, 80% of units never active" in result.stdout


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_one_hidden_size_is_repeated_for_every_layer(command, corpus, models, tmp_path):
    out = tmp_path / "m.pt"
    extra = ["--task", "sentiment", "--no-search"] if command == "finetune" else []
    ok(
        invoke(
            command,
            corpus["train"],
            *extra,
            "--vocab",
            models["vocab"],
            "--out",
            out,
            "--layers",
            2,
            "--hidden",
            16,
            "--epochs",
            1,
            "-q",
        )
    )
    assert checkpoint.load(out)["model_args"]["hidden"] == [16, 16]


def test_pretrain_default_layers_and_hidden_are_accepted(corpus, models, tmp_path):
    result = invoke(
        "pretrain",
        corpus["train"],
        "--vocab",
        models["vocab"],
        "--out",
        tmp_path / "p.pt",
        "--epochs",
        1,
        "-q",
    )
    assert "--hidden lists" not in result.stderr
    ok(result)


def test_finetune_sentiment_from_pretrained_with_test_set(corpus, models, tmp_path):
    out = tmp_path / "m.pt"
    result = ok(
        invoke(
            "finetune",
            "--no-search",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            models["pretrained"],
            "--test",
            corpus["train"],
            "--out",
            out,
            "--epochs",
            2,
            "-q",
        )
    )
    text = result.stdout
    assert re.search(r"best epoch [12] of 2", text)
    assert re.search(r"^validation: accuracy [01]\.\d{4} \(n=6\)$", text, re.M)
    assert re.search(rf"^test: accuracy [01]\.\d{{4}} \(n={N_ROWS}\)$", text, re.M)
    assert len(re.findall(r"hidden layer 1: \d+\.\d% exact zeros, \d+\.\d% units never active", text)) == 2
    assert f"model -> {out}" in text
    payload = checkpoint.load(out, kind="model")
    assert payload["target"]["task"] == "sentiment"
    assert payload["target"]["classes"] == ["negative", "positive"]
    assert payload["model_args"]["hidden"] == [16]  # from the --init file
    assert files_in(tmp_path) == {"m.pt"}


def test_finetune_sentiment_from_random_weights(corpus, models, tmp_path):
    result = ok(
        invoke(
            "finetune",
            "--no-search",
            corpus["train"],
            "--task",
            "sentiment",
            "--vocab",
            models["vocab"],
            "--layers",
            2,
            "--hidden",
            "16,8",
            "--activation",
            "softplus",
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        )
    )
    assert "hidden layer 1:" in result.stdout and "hidden layer 2:" in result.stdout
    args = checkpoint.load(tmp_path / "m.pt")["model_args"]
    assert args["hidden"] == [16, 8] and args["activation"] == "softplus"


def test_finetune_rating_prints_rmse_and_mae(corpus, models, tmp_path):
    result = ok(
        invoke(
            "finetune",
            "--no-search",
            corpus["ratings"],
            "--task",
            "rating",
            "--vocab",
            models["vocab"],
            "--hidden",
            16,
            "--out",
            tmp_path / "r.pt",
            "--epochs",
            1,
            "-q",
        )
    )
    assert re.search(r"^validation: rmse \d+\.\d{4}, mae \d+\.\d{4} \(n=6\)$", result.stdout, re.M)
    assert "accuracy" not in result.stdout
    target = checkpoint.load(tmp_path / "r.pt")["target"]
    assert target["task"] == "rating" and (target["low"], target["high"]) == (1.0, 5.0)


def test_finetune_with_explicit_validation_files(corpus, models, tmp_path):
    result = ok(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            models["pretrained"],
            "--valid",
            f"{corpus['train']}[:20]",
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        )
    )
    assert "validation: accuracy" in result.stdout and "(n=20)" in result.stdout


# ---------------------------------------------------------------------------------------------
# evaluate


def test_evaluate_prints_accuracy_and_sparsity(corpus, models):
    result = ok(invoke("evaluate", models["model"], corpus["train"], "-q"))
    assert re.search(rf"^evaluation: accuracy [01]\.\d{{4}} \(n={N_ROWS}\)$", result.stdout, re.M)
    assert re.search(r"hidden layer 1: \d+\.\d% exact zeros", result.stdout)


@pytest.mark.parametrize("model, n_layers", [("model", 1), ("model2", 2)])
def test_evaluate_json_sentiment(corpus, models, model, n_layers):
    metrics = json.loads(ok(invoke("evaluate", models[model], corpus["train"], "--json", "-q")).stdout)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["n"] == N_ROWS
    assert "rmse" not in metrics
    assert [s["layer"] for s in metrics["sparsity"]] == list(range(1, n_layers + 1))
    for s in metrics["sparsity"]:
        assert 0 <= s["exact_zeros"] <= 1 and 0 <= s["dead_units"] <= 1


def test_evaluate_json_rating(corpus, models):
    metrics = json.loads(ok(invoke("evaluate", models["rating"], corpus["ratings"], "--json", "-q")).stdout)
    assert metrics["rmse"] >= metrics["mae"] >= 0 and "accuracy" not in metrics
    assert metrics["n"] == N_ROWS and len(metrics["sparsity"]) == 1


def test_evaluate_agrees_with_the_test_metrics_of_finetune(corpus, models, tmp_path):
    out = tmp_path / "m.pt"
    ok(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            models["pretrained"],
            "--test",
            corpus["train"],
            "--out",
            out,
            "--epochs",
            1,
            "-q",
        )
    )
    test = checkpoint.load(out)["metrics"]["test"]
    metrics = json.loads(ok(invoke("evaluate", out, corpus["train"], "--json", "-q")).stdout)
    assert metrics["accuracy"] == pytest.approx(test["accuracy"])
    assert len(metrics["sparsity"]) == len(test["sparsity"]) == 1
    for got, want in zip(metrics["sparsity"], test["sparsity"]):
        assert got == pytest.approx(want)
    again = json.loads(ok(invoke("evaluate", out, corpus["train"], "--json", "-q")).stdout)
    assert again == metrics  # evaluation is deterministic


def test_finetune_nb_weights_are_kept_and_used_by_evaluate_and_score(corpus, models, tmp_path):
    """--nb-weights: the model holds the training reviews' NB log-count ratios, and evaluate and
    score apply them (the same accuracy as at the end of finetune; other predictions without)."""
    from textrelu.data.vectorize import nb_log_ratios

    out = tmp_path / "nb.pt"
    ok(
        invoke(
            "finetune",
            "--no-search",
            corpus["train"],
            "--task",
            "sentiment",
            "--vocab",
            models["vocab"],
            "--layers",
            0,
            "--nb-weights",
            "--test",
            corpus["train"],
            "--out",
            out,
            "--valid-fraction",
            0.2,
            "--epochs",
            2,
            "-q",
        )
    )
    payload = checkpoint.load(out)
    scale = payload["state_dict"]["input_scale"]
    n_terms = len(Vocabulary.load(models["vocab"]))
    assert payload["model_args"]["input_scale"] is True and scale.shape == (n_terms,)
    assert scale.abs().max() > 0.5 and len(scale.unique()) > 3  # real ratios, not ones
    metrics = json.loads(ok(invoke("evaluate", out, corpus["train"], "--json", "-q")).stdout)
    assert metrics["accuracy"] == pytest.approx(payload["metrics"]["test"]["accuracy"])
    net, plain_net = checkpoint.build_net(payload), checkpoint.build_net(payload)
    plain_net.input_scale = None
    x = torch.eye(n_terms)
    assert not torch.allclose(net(x)[0], plain_net(x)[0])
    # two features, 2 class-1 rows and 1 class-0 row: r = log((p / |p|) / (q / |q|)), p, q + 1
    X, y = np.array([[1, 0], [1, 1], [0, 1]]), np.array([1, 1, 0])
    p, q = np.array([3, 2]), np.array([1, 2])
    assert nb_log_ratios(X, y) == pytest.approx(np.log((p / 5) / (q / 3)))


def test_finetune_nb_weights_need_two_classes(corpus, models, tmp_path):
    result = invoke(
        "finetune",
        corpus["ratings"],
        "--task",
        "rating",
        "--vocab",
        models["vocab"],
        "--nb-weights",
        "--out",
        tmp_path / "r.pt",
        "--epochs",
        1,
        "-q",
    )
    assert result.exit_code == 2 and "--nb-weights needs a sentiment task" in result.stderr


# ---------------------------------------------------------------------------------------------
# score


@pytest.fixture
def score_input(corpus, tmp_path):
    """A CSV with an empty text and a row with too many fields, plus a JSONL with a malformed line."""
    rows = [
        ("a1", review_text(0, True), ""),
        ("a2", "   ", ""),
        ("a3", review_text(1, False), ""),
        ("a4", "too,many", "x"),
    ]
    path = write_csv(tmp_path / "in" / "batch.csv", rows)
    # the 4th row gets 4 fields: rewrite it by hand
    text = path.read_text(encoding="utf-8").replace('a4,"too,many",x', "a4,too,many,x")
    text += f"a5,{review_text(2, True)},\n"
    path.write_text(text, encoding="utf-8")
    jsonl = tmp_path / "in" / "more.jsonl"
    jsonl.write_text(
        json.dumps({"text": review_text(3, False)})
        + "\n{not json\n"
        + json.dumps({"text": ""})
        + "\n"
        + json.dumps({"text": review_text(4, True)})
        + "\n",
        encoding="utf-8",
    )
    return path, jsonl


def test_score_writes_one_line_per_row_in_order_and_rejects_the_rest(models, score_input, tmp_path):
    csv_path, jsonl = score_input
    out_dir = tmp_path / "out"
    out, rejects = out_dir / "pred.jsonl", out_dir / "bad.jsonl"
    result = ok(
        invoke(
            "score",
            models["model"],
            csv_path,
            jsonl,
            "--out",
            out,
            "--rejects",
            rejects,
            "--batch-size",
            2,
            "-q",
        )
    )
    preds = read_jsonl(out)
    assert [(p["source"], p["row"]) for p in preds] == [
        (str(csv_path), 1),
        (str(csv_path), 3),
        (str(csv_path), 5),
        (str(jsonl), 1),
        (str(jsonl), 4),
    ]
    assert [p["id"] for p in preds] == ["a1", "a3", "a5", f"{jsonl}:1", f"{jsonl}:4"]
    for p in preds:
        assert set(p) == {"id", "source", "row", "label", "probabilities"}
        probs = p["probabilities"]
        assert set(probs) == {"negative", "positive"}
        assert abs(sum(probs.values()) - 1) < 1e-5
        assert p["label"] == max(probs, key=probs.get)
    bad = read_jsonl(rejects)
    assert [(b["source"], b["row"]) for b in bad] == [
        (str(csv_path), 2),
        (str(csv_path), 4),
        (str(jsonl), 2),
        (str(jsonl), 3),
    ]
    assert "empty text" in bad[0]["reason"] and "fields" in bad[1]["reason"]
    assert "malformed JSON" in bad[2]["reason"] and "empty text" in bad[3]["reason"]
    assert summary_counts(result.stdout) == (9, 5, 4)
    read, scored, rejected = summary_counts(result.stdout)
    assert read == scored + rejected == len(preds) + len(bad)
    assert f"predictions -> {out}" in result.stdout and f"rejects -> {rejects}" in result.stdout
    # only complete outputs under their final names: no temporary file left beside them
    assert files_in(out_dir) == {"pred.jsonl", "bad.jsonl", "pred.summary.json"}
    summary = json.loads((out_dir / "pred.summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["rejected"]) == (9, 5, 4)


def test_score_predictions_do_not_depend_on_batch_size(models, corpus, tmp_path):
    ok(
        invoke(
            "score", models["model"], corpus["train"], "--out", tmp_path / "a.jsonl", "--batch-size", 7, "-q"
        )
    )
    ok(invoke("score", models["model"], corpus["train"], "--out", tmp_path / "b.jsonl", "-q"))
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert len(a) == N_ROWS and [p["id"] for p in a] == [f"r{i}" for i in range(N_ROWS)]
    assert [p["label"] for p in a] == [p["label"] for p in b]
    for pa, pb in zip(a, b):
        for c in ("negative", "positive"):
            assert abs(pa["probabilities"][c] - pb["probabilities"][c]) < 1e-5


def test_score_on_worker_processes_writes_the_same_file(models, score_input, tmp_path):
    """Tokenizing on 2 worker processes (small batches, so that many are in flight) or in this
    process gives the same predictions file, byte for byte, and the same rejects."""
    csv_path, jsonl = score_input
    for workers in (0, 2):
        ok(
            invoke(
                "score",
                models["model"],
                csv_path,
                jsonl,
                "--out",
                tmp_path / f"{workers}.jsonl",
                "--batch-size",
                2,
                "--workers",
                workers,
                "-q",
            )
        )
    assert (tmp_path / "0.jsonl").read_bytes() == (tmp_path / "2.jsonl").read_bytes()
    assert (tmp_path / "0.rejects.jsonl").read_text() == (tmp_path / "2.rejects.jsonl").read_text()
    assert len(read_jsonl(tmp_path / "2.jsonl")) == 5
    result = invoke("score", models["model"], csv_path, "--out", tmp_path / "x.jsonl", "--workers", -1)
    assert result.exit_code != 0 and "--workers must be at least 0" in result.output


def test_score_default_rejects_path_sits_beside_out(models, score_input, tmp_path):
    csv_path, _ = score_input
    result = ok(invoke("score", models["model"], csv_path, "--out", tmp_path / "o" / "p.jsonl", "-q"))
    assert files_in(tmp_path / "o") == {"p.jsonl", "p.rejects.jsonl", "p.summary.json"}
    assert len(read_jsonl(tmp_path / "o" / "p.rejects.jsonl")) == 2
    assert summary_counts(result.stdout) == (5, 3, 2)


def test_score_rating_model_writes_ratings_in_the_training_range(models, corpus, tmp_path):
    out = tmp_path / "r.jsonl"
    result = ok(invoke("score", models["rating"], corpus["ratings"], "--out", out, "-q"))
    preds = read_jsonl(out)
    assert len(preds) == N_ROWS and summary_counts(result.stdout) == (N_ROWS, N_ROWS, 0)
    assert [p["id"] for p in preds] == [f"s{i}" for i in range(N_ROWS)]
    for p in preds:
        assert set(p) == {"id", "source", "row", "rating"}
        assert 1.0 <= p["rating"] <= 5.0
    assert (tmp_path / "r.rejects.jsonl").read_text() == ""


def test_score_unlabeled_text_column_by_name(models, tmp_path):
    path = write_csv(
        tmp_path / "u.csv", [(review_text(0, True),), (review_text(1, False),)], header=("comment",)
    )
    result = invoke("score", models["model"], path, "--out", tmp_path / "o.jsonl", "-q")
    assert result.exit_code == 2 and "comment" in result.stderr  # columns found are listed
    ok(
        invoke(
            "score", models["model"], path, "--out", tmp_path / "o.jsonl", "--text-column", "comment", "-q"
        )
    )
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 2


# ---------------------------------------------------------------------------------------------
# --quiet


def test_quiet_silences_progress_but_not_results(corpus, models, tmp_path):
    args = [
        "finetune",
        "--no-search",
        corpus["train"],
        "--task",
        "sentiment",
        "--init",
        models["pretrained"],
        "--epochs",
        1,
    ]
    loud = ok(invoke(*args, "--out", tmp_path / "a.pt"))
    quiet = ok(invoke(*args, "--out", tmp_path / "b.pt", "--quiet"))
    assert "fine-tuning" in loud.stderr and "finetune epoch 1" in loud.stderr
    assert quiet.stderr.strip() == ""
    # the results on stdout are the same (but for the model path)
    assert loud.stdout.replace("a.pt", "X") == quiet.stdout.replace("b.pt", "X")


@pytest.mark.parametrize("command", ["build-vocab", "evaluate", "score"])
def test_quiet_short_flag_on_other_commands(command, corpus, models, tmp_path):
    args = {
        "build-vocab": ["build-vocab", corpus["train"], "--out", tmp_path / "v.txt"],
        "evaluate": ["evaluate", models["model"], corpus["train"]],
        "score": ["score", models["model"], corpus["train"], "--out", tmp_path / "p.jsonl"],
    }[command]
    loud = ok(invoke(*args))
    quiet = ok(invoke(*args, "-q"))
    assert loud.stderr.strip() != ""
    assert quiet.stderr.strip() == ""


# ---------------------------------------------------------------------------------------------
# Exit codes and error messages


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["build-vocab", "{train}", "--out", "{tmp}/v.txt", "--bogus"], "No such option"),
        (
            ["pretrain", "{train}", "--vocab", "{vocab}", "--out", "{tmp}/p.pt", "--activation", "sigmoid"],
            "--activation",
        ),
        (["finetune", "{train}", "--task", "stars", "--vocab", "{vocab}", "--out", "{tmp}/m.pt"], "--task"),
        (["finetune", "{train}", "--vocab", "{vocab}", "--out", "{tmp}/m.pt"], "Missing option"),
        (["build-vocab", "{train}"], "Missing option"),
        (["build-vocab", "--out", "{tmp}/v.txt"], "Missing argument"),
        (["score", "{model}", "{train}"], "Missing option"),
        (["evaluate", "{model}", "{train}", "--size", "3"], "No such option"),
        (["build-vocab", "{train}", "--out", "{tmp}/v.txt", "--size", "many"], "--size"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_usage_exits_2(args, fragment, corpus, models, tmp_path):
    fill = {"train": corpus["train"], "vocab": models["vocab"], "model": models["model"], "tmp": tmp_path}
    result = invoke(*[a.format(**fill) for a in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert fragment in flat(result.stderr)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.fixture
def bad(tmp_path, models):
    """Files that are wrong in one way each."""
    d = tmp_path / "bad"
    d.mkdir()
    write_csv(d / "nocol.csv", [("x1", "great pan", "positive")], header=("id", "body2", "label"))
    write_csv(d / "single.csv", [(f"x{i}", review_text(i, True), "positive") for i in range(10)])
    (d / "notes.txt").write_text("text,label\ngreat,positive\n")
    (d / "words.jsonl").write_text(
        "".join(
            json.dumps({"text": review_text(i, i % 2 == 0), "rating": "five" if i == 3 else 5 - i % 2}) + "\n"
            for i in range(8)
        )
    )
    data = models["model"].read_bytes()
    (d / "half.pt").write_bytes(data[: len(data) // 2])
    (d / "empty.pt").write_bytes(b"")
    (d / "cut.pt").write_bytes(data[:-1])
    torch.save({"weights": torch.zeros(2)}, d / "other.pt")
    return d


def check_bad_input(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ")
    for fragment in fragments:
        assert str(fragment) in message, (fragment, message)
    return message


def test_missing_file_exits_2_naming_it(tmp_path, models):
    missing = tmp_path / "nope.csv"
    check_bad_input(invoke("build-vocab", missing, "--out", tmp_path / "v.txt", "-q"), missing, "not found")
    check_bad_input(invoke("evaluate", models["model"], missing, "-q"), missing, "not found")
    check_bad_input(
        invoke("score", tmp_path / "none.pt", missing, "--out", tmp_path / "p.jsonl", "-q"),
        tmp_path / "none.pt",
        "not found",
    )
    check_bad_input(
        invoke(
            "finetune",
            missing,
            "--task",
            "sentiment",
            "--vocab",
            models["vocab"],
            "--out",
            tmp_path / "m.pt",
            "-q",
        ),
        missing,
        "not found",
    )
    check_bad_input(
        invoke(
            "finetune",
            missing,
            "--task",
            "sentiment",
            "--vocab",
            tmp_path / "v.txt",
            "--out",
            tmp_path / "m.pt",
            "-q",
        ),
        tmp_path / "v.txt",
        "not found",
    )
    assert files_in(tmp_path) == set()


def test_unknown_format_exits_2(bad, tmp_path):
    check_bad_input(
        invoke("build-vocab", bad / "notes.txt", "--out", tmp_path / "v.txt", "-q"),
        bad / "notes.txt",
        "cannot tell the format",
    )


def test_missing_text_column_lists_the_columns_found(bad, tmp_path, models):
    msg = check_bad_input(
        invoke("build-vocab", bad / "nocol.csv", "--out", tmp_path / "v.txt", "-q"),
        bad / "nocol.csv",
        "no text column",
    )
    assert "columns found: id, body2, label" in msg
    msg = check_bad_input(
        invoke("evaluate", models["model"], bad / "nocol.csv", "--text-column", "review", "-q"),
        bad / "nocol.csv",
        "'review'",
    )
    assert "body2" in msg


def test_single_class_sentiment_exits_2_naming_the_file(bad, models, tmp_path):
    check_bad_input(
        invoke(
            "finetune",
            bad / "single.csv",
            "--task",
            "sentiment",
            "--init",
            models["pretrained"],
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        ),
        "at least two classes",
        "positive",
        bad / "single.csv",
    )
    assert not (tmp_path / "m.pt").exists()


def test_non_numeric_rating_exits_2_naming_file_and_row(bad, models, tmp_path):
    check_bad_input(
        invoke(
            "finetune",
            bad / "words.jsonl",
            "--task",
            "rating",
            "--vocab",
            models["vocab"],
            "--hidden",
            16,
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        ),
        f"{bad / 'words.jsonl'}, row 4",
        "'five'",
        "not a number",
    )


def test_text_labels_for_rating_exit_2(corpus, models, tmp_path):
    check_bad_input(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "rating",
            "--vocab",
            models["vocab"],
            "--hidden",
            16,
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        ),
        f"{corpus['train']}, row 1",
        "'positive'",
    )


def test_min_df_too_high_gives_empty_vocabulary(corpus, tmp_path):
    check_bad_input(
        invoke("build-vocab", corpus["train"], "--out", tmp_path / "v.txt", "--min-df", N_ROWS + 1, "-q"),
        "empty vocabulary",
        corpus["train"],
        "min_df",
    )
    assert not (tmp_path / "v.txt").exists()


@pytest.mark.parametrize(
    "option, value, fragment",
    [("--size", 0, "--size"), ("--ngrams", 4, "--ngrams"), ("--min-df", 0, "--min-df")],
)
def test_build_vocab_bad_numbers_exit_2(corpus, tmp_path, option, value, fragment):
    check_bad_input(
        invoke("build-vocab", corpus["train"], "--out", tmp_path / "v.txt", option, value, "-q"), fragment
    )


@pytest.mark.parametrize(
    "option, value",
    [
        ("--valid-fraction", 0),
        ("--valid-fraction", 1.5),
        ("--dropout", 1),
        ("--epochs", 0),
        ("--device", "tpu"),
    ],
)
def test_finetune_bad_settings_exit_2(corpus, models, tmp_path, option, value):
    check_bad_input(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            models["pretrained"],
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            option,
            value,
            "-q",
        )
    )
    assert not (tmp_path / "m.pt").exists()


def test_pretrain_with_a_non_vocabulary_file_exits_2(corpus, tmp_path):
    check_bad_input(
        invoke(
            "pretrain",
            corpus["train"],
            "--vocab",
            corpus["train"],
            "--out",
            tmp_path / "p.pt",
            "--layers",
            1,
            "--hidden",
            16,
            "--epochs",
            1,
            "-q",
        ),
        corpus["train"],
        "not a textrelu vocabulary file",
    )


@pytest.mark.parametrize("command", ["evaluate", "score"])
@pytest.mark.parametrize(
    "which, fragment",
    [
        ("csv", "not a readable textrelu model"),
        ("vocab", "not a readable textrelu model"),
        ("other.pt", "not a textrelu model"),
        ("half.pt", "not a readable textrelu model"),
        ("pretrained", "is a pretrained file, not a model one"),
    ],
)
def test_evaluate_and_score_reject_files_that_are_not_models(
    command, which, fragment, corpus, models, bad, tmp_path
):
    model = {"csv": corpus["train"], "vocab": models["vocab"], "pretrained": models["pretrained"]}.get(
        which, bad / which
    )
    extra = ["--out", tmp_path / "p.jsonl"] if command == "score" else []
    check_bad_input(invoke(command, model, corpus["train"], *extra, "-q"), model, fragment)
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("command", ["evaluate", "score"])
def test_empty_model_file_exits_2(command, corpus, bad, tmp_path):
    extra = ["--out", tmp_path / "p.jsonl"] if command == "score" else []
    check_bad_input(
        invoke(command, bad / "empty.pt", corpus["train"], *extra, "-q"),
        bad / "empty.pt",
        "not a readable textrelu model",
    )


@pytest.mark.parametrize("command", ["evaluate", "score"])
def test_model_file_cut_near_its_end_exits_2(command, corpus, bad, tmp_path):
    extra = ["--out", tmp_path / "p.jsonl"] if command == "score" else []
    check_bad_input(
        invoke(command, bad / "cut.pt", corpus["train"], *extra, "-q"),
        bad / "cut.pt",
        "not a readable textrelu model",
    )


def test_finetune_init_must_be_a_pretrained_file(corpus, models, tmp_path):
    check_bad_input(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            models["model"],
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        ),
        models["model"],
        "is a model file, not a pretrained one",
    )
    check_bad_input(
        invoke(
            "finetune",
            corpus["ratings"],
            "--task",
            "rating",
            "--init",
            models["rating"],
            "--out",
            tmp_path / "m.pt",
            "--epochs",
            1,
            "-q",
        ),
        models["rating"],
        "not a pretrained one",
    )
    assert not (tmp_path / "m.pt").exists()


def test_finetune_init_and_another_vocabulary_disagree(corpus, models, tmp_path):
    ok(invoke("build-vocab", corpus["train"], "--out", tmp_path / "small.txt", "--size", 5, "-q"))
    check_bad_input(
        invoke(
            "finetune",
            corpus["train"],
            "--task",
            "sentiment",
            "--init",
            models["pretrained"],
            "--vocab",
            tmp_path / "small.txt",
            "--out",
            tmp_path / "m.pt",
            "-q",
        ),
        "another vocabulary",
    )


def test_evaluate_labels_unknown_to_the_model_exit_2(corpus, models):
    check_bad_input(
        invoke("evaluate", models["model"], corpus["ratings"], "-q"),
        f"{corpus['ratings']}, row 1",
        "not among the training classes",
    )


# ---------------------------------------------------------------------------------------------
# Reproducibility


def test_same_seed_same_predictions_other_seed_other_predictions(corpus, models, tmp_path):
    def train_and_score(name, seed):
        ok(
            invoke(
                "finetune",
                corpus["train"],
                "--task",
                "sentiment",
                "--init",
                models["pretrained"],
                "--out",
                tmp_path / f"{name}.pt",
                "--epochs",
                2,
                "--seed",
                seed,
                "-q",
            )
        )
        ok(
            invoke(
                "score", tmp_path / f"{name}.pt", corpus["train"], "--out", tmp_path / f"{name}.jsonl", "-q"
            )
        )
        return (tmp_path / f"{name}.jsonl").read_bytes()

    a, b, c = train_and_score("a", 7), train_and_score("b", 7), train_and_score("c", 8)
    assert a == b
    probs = lambda data: [json.loads(line)["probabilities"] for line in data.decode().splitlines()]  # noqa: E731
    assert len(probs(a)) == N_ROWS
    assert probs(a) != probs(c)


# ---------------------------------------------------------------------------------------------
# Atomic outputs


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_score_leaves_no_output(models, corpus, tmp_path, monkeypatch, error):
    original, calls = textrelu.stages.score.prediction_rows, []

    def failing(*args):
        calls.append(1)
        if len(calls) > 1:
            raise error("simulated interruption")
        yield from original(*args)

    monkeypatch.setattr(textrelu.stages.score, "prediction_rows", failing)
    out_dir = tmp_path / "out"
    result = invoke(
        "score", models["model"], corpus["train"], "--out", out_dir / "p.jsonl", "--batch-size", 2, "-q"
    )
    # click answers an interrupt with "Aborted!" and exit 1 (130 from click 8.3 on)
    assert result.exit_code in ((1, 130) if error is KeyboardInterrupt else (1,))
    assert len(calls) == 2  # the first batch was written to the temporary file
    assert not (out_dir / "p.jsonl").exists() and not (out_dir / "p.rejects.jsonl").exists()
    assert not out_dir.exists() or files_in(out_dir) == set()


def test_interrupted_score_keeps_the_previous_complete_output(models, corpus, tmp_path, monkeypatch):
    out = tmp_path / "p.jsonl"
    ok(invoke("score", models["model"], corpus["train"], "--out", out, "-q"))
    before = out.read_bytes()

    def failing(*args):
        raise RuntimeError("simulated interruption")
        yield  # pragma: no cover

    monkeypatch.setattr(textrelu.stages.score, "prediction_rows", failing)
    assert (
        invoke("score", models["model"], corpus["ratings"], "--out", out, "--batch-size", 2, "-q").exit_code
        == 1
    )
    assert out.read_bytes() == before
    assert files_in(tmp_path) == {"p.jsonl", "p.rejects.jsonl", "p.summary.json"}


def test_diverged_finetune_exits_2_with_the_reason_and_leaves_no_model(corpus, models, tmp_path):
    result = invoke(
        "finetune",
        corpus["train"],
        "--task",
        "sentiment",
        "--vocab",
        models["vocab"],
        "--learning-rate",
        1e30,
        "--out",
        tmp_path / "m.pt",
        "--epochs",
        3,
        "--no-search",  # a search goes on without a candidate that fails (test_search.py)
        "-q",
    )
    assert result.exit_code == 1, result.output  # training failed: exit 1 (issue 23)
    assert "fine-tuning diverged in epoch" in result.stderr and "lower the learning rate" in result.stderr
    assert files_in(tmp_path) == set()


def test_failed_finetune_leaves_no_model(corpus, models, tmp_path, monkeypatch):
    import textrelu.stages.finetune

    def diverged(*args, **kwargs):
        raise RuntimeError("training diverged")

    monkeypatch.setattr(textrelu.stages.finetune, "fit", diverged)
    result = invoke(
        "finetune",
        corpus["train"],
        "--task",
        "sentiment",
        "--init",
        models["pretrained"],
        "--out",
        tmp_path / "m.pt",
        "-q",
    )
    # an unexpected exception: one line and exit 1, no traceback (issue 23)
    assert result.exit_code == 1 and "unexpected RuntimeError: training diverged" in result.stderr
    assert "Traceback" not in result.output
    assert files_in(tmp_path) == set()


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_outputs_get_the_usual_file_mode(models, corpus, tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    ok(invoke("score", models["model"], corpus["train"], "--out", tmp_path / "p.jsonl", "-q"))
    assert (tmp_path / "p.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask
