"""Tests of the comparison stage ([compare]), `--set` overrides and `textrelu report`, on a tiny
corpus: the table's cells are the runs they claim to be, seeds reproduce, bad specs are clear
errors, and the report's numbers are the run folder's."""

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus import N_ROWS, review_text, write_csv  # noqa: E402
from typer.testing import CliRunner

from textrelu.cli import app
from textrelu.errors import BadInput
from textrelu.experiments.compare import compare
from textrelu.experiments.peers import fit_peer
from textrelu.experiments.pipeline import apply_override, run
from textrelu.experiments.report import report
from textrelu.nn.batches import ArrayData
from textrelu.nn.targets import Target
from textrelu.stages.build_vocab import build_vocab

PIPELINE = """\
name = "cmp"
seed = 0

[build_vocab]
files = ["train.csv"]
size = 200
min_df = 1

[compare]
task = "sentiment"
seeds = [0, 1]
peers = ["linear", "nb-linear"]
pretrain_files = ["train.csv", "extra.csv"]
pretrain_args = { epochs = 1 }
finetune_args = { epochs = 8, patience = 8, dropout = 0.0, input_dropout = 0.0, learning_rate = 0.01 }

[compare.datasets.first]
train = ["train.csv[:40]"]
test = ["train.csv[40:]"]

[compare.datasets.second]
train = "train.csv[20:]"
test = ["train.csv[:20]"]

[[compare.rows]]
name = "linear"
layers = 0

[[compare.rows]]
name = "relu 1"
layers = 1
hidden = 16

[[compare.rows]]
name = "relu 1, NB-weighted"
layers = 1
hidden = 16
nb_weights = true

[[compare.rows]]
name = "relu 2, pre-trained"
layers = 2
hidden = 16
pretrain = true
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    rows = [
        (f"r{i}", review_text(i, i % 2 == 0), "positive" if i % 2 == 0 else "negative") for i in range(N_ROWS)
    ]
    write_csv(root / "train.csv", rows)
    write_csv(root / "extra.csv", [(f"e{i}", review_text(i + 1, True), "") for i in range(10)])
    (root / "cmp.toml").write_text(PIPELINE)
    return root


@pytest.fixture(scope="module")
def finished(folder):
    """One run of the pipeline: (run folder, metrics)."""
    result = run(folder / "cmp.toml", runs_dir=folder / "runs", quiet=True)
    return Path(result["run_dir"]), result["metrics"]


def test_every_row_dataset_and_seed_is_one_result(finished):
    run_dir, metrics = finished
    c = metrics["compare"]
    cells = {(r["dataset"], r["row"], r["seed"]) for r in c["results"]}
    assert cells == {
        (d, row, s)
        for d in ("first", "second")
        for row in ("linear", "relu 1", "relu 1, NB-weighted", "relu 2, pre-trained")
        for s in (0, 1)
    }
    assert c["datasets"] == {
        "first": {"n_train": 40, "n_test": 20, "n_valid": None},
        "second": {"n_train": 40, "n_test": 20, "n_valid": None},
    }
    for r in c["results"]:
        depth = {"linear": 0, "relu 1": 1, "relu 1, NB-weighted": 1, "relu 2, pre-trained": 2}[r["row"]]
        assert len(r["test"]["sparsity"]) == depth and r["test"]["n"] == 20
        assert r["n_train"] == 36 and 1 <= r["best_epoch"] <= len(r["history"]) <= 8
        assert ("histograms" in r) == (r["seed"] == 0)
    # the corpus is separable by its sentiment words: every model learns it
    assert min(r["test"]["accuracy"] for r in c["results"]) >= 0.8
    assert [(p["dataset"], p["name"]) for p in c["peers"]] == [
        (d, name)
        for d in ("first", "second")
        for name in ("LogisticRegressionCV", "NB-weighted LogisticRegressionCV")
    ]
    assert all(p["test"]["n"] == 20 for p in c["peers"])


def test_summary_is_the_mean_of_the_results(finished):
    _, metrics = finished
    c = metrics["compare"]
    by_row = {e["row"]: e for e in c["summary"]}
    for row in ("linear", "relu 1", "relu 1, NB-weighted", "relu 2, pre-trained"):
        for d in ("first", "second"):
            accs = [r["test"]["accuracy"] for r in c["results"] if r["row"] == row and r["dataset"] == d]
            assert by_row[row]["mean"][d] == pytest.approx(statistics.mean(accs))
        assert by_row[row]["average"] == pytest.approx(statistics.mean(by_row[row]["mean"].values()))
    nb = by_row["NB-weighted LogisticRegressionCV"]["mean"]
    assert nb == {p["dataset"]: p["test"]["accuracy"] for p in c["peers"] if p["kind"] == "nb-linear"}


def test_pretrained_stack_is_saved_once_and_shared(finished):
    run_dir, metrics = finished
    pre = metrics["compare"]["pretrained"]
    assert list(pre) == ["relu-16x16"]
    assert pre["relu-16x16"]["n_reviews"] == N_ROWS + 10
    assert Path(pre["relu-16x16"]["path"]) == run_dir / "compare" / "pretrained-relu-16x16.pt"
    assert (run_dir / "compare" / "pretrained-relu-16x16.pt").is_file()


def test_histograms_count_the_non_zero_activations(finished):
    _, metrics = finished
    r = next(r for r in metrics["compare"]["results"] if r["row"] == "relu 1" and r["seed"] == 0)
    (h,) = r["histograms"]
    assert len(h["counts"]) == 40 and len(h["edges"]) == 41
    assert sum(h["counts"]) == pytest.approx(20 * 16 * (1 - h["exact_zeros"]))
    assert h["exact_zeros"] == pytest.approx(r["test"]["sparsity"][0]["exact_zeros"])


def test_seeds_reproduce(folder, finished):
    _, metrics = finished
    cfg = json.loads((finished[0] / "config.json").read_text())["stages"]["compare"]
    cfg.update(out=folder / "again", rows=[r for r in cfg["rows"] if not r.get("pretrain")], peers=False)
    again = compare(**cfg)
    first = {
        (r["dataset"], r["row"], r["seed"]): r["test"]["accuracy"] for r in metrics["compare"]["results"]
    }
    for r in again["results"]:
        assert r["test"]["accuracy"] == first[(r["dataset"], r["row"], r["seed"])]
    h0 = [r["history"] for r in again["results"] if r["row"] == "relu 1" and r["dataset"] == "first"]
    assert h0[0] != h0[1]  # another seed is another run


def test_shared_finetune_args_shape_the_pre_trained_stack(folder, finished):
    """hidden and activation given once in finetune_args are the rows' and their pre-trained stack's."""
    cfg = json.loads((finished[0] / "config.json").read_text())["stages"]["compare"]
    cfg.update(
        out=folder / "shared",
        datasets={"first": cfg["datasets"]["first"]},
        seeds=[0],
        peers=False,
        finetune_args={**cfg["finetune_args"], "hidden": 8, "activation": "softplus"},
        rows=[{"name": "pre-trained", "layers": 1, "pretrain": True}],
    )
    c = compare(**cfg)
    assert list(c["pretrained"]) == ["softplus-8"]
    (r,) = c["results"]
    assert len(r["histograms"]) == 1 and sum(r["histograms"][0]["counts"]) > 0
    assert r["test"]["accuracy"] > 0.5


def test_report_tables_and_plots_come_from_the_run_folder(finished, tmp_path):
    run_dir, metrics = finished
    out = tmp_path / "docs" / "results.md"
    (tmp_path / "intro.md").write_text("How these runs were made.\n")
    result = invoke("report", run_dir, "--out", out, "--title", "My table", "--intro", tmp_path / "intro.md")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# My table\n") and "\nHow these runs were made.\n" in text
    c = metrics["compare"]
    for row in ("linear", "relu 1", "relu 2, pre-trained"):
        accs = [
            [r["test"]["accuracy"] for r in c["results"] if r["row"] == row and r["dataset"] == d]
            for d in ("first", "second")
        ]
        cell = f"{statistics.mean(accs[0]) * 100:.2f} ± {statistics.stdev(accs[0]) * 100:.2f}"
        line = next(line for line in text.splitlines() if line.startswith(f"| {row} |"))
        assert cell in line
    for p in c["peers"][:2]:
        peer = next(line for line in text.splitlines() if line.startswith(f"| {p['name']} (scikit-learn"))
        assert f"{p['test']['accuracy'] * 100:.2f}" in peer
    for png in ("learning-curves", "sparsity", "histograms"):
        path = out.parent / "results" / f"{run_dir.name}-{png}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(results/{path.name})" in text


def test_report_of_a_curve_run_plots_accuracy_against_labels(folder, tmp_path):
    result = run(
        folder / "cmp.toml",
        runs_dir=tmp_path,
        quiet=True,
        overrides=[
            "compare.curve=true",
            "compare.seeds=[0]",
            "compare.peers=false",
            'compare.rows=[{name = "relu 1", layers = 1, hidden = 8}]',
            'compare.datasets.second.train=["train.csv[:20]"]',
        ],
    )
    report([result["run_dir"]], tmp_path / "r.md")
    assert (tmp_path / "r" / f"{Path(result['run_dir']).name}-labels.png").is_file()
    assert result["metrics"]["compare"]["datasets"]["second"]["n_train"] == 20


def test_report_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    result = invoke("report", tmp_path, "--out", tmp_path / "r.md")
    assert result.exit_code == 2 and "not a finished run folder" in result.output
    assert "config.json is missing" in result.output


@pytest.mark.parametrize(
    "override, fragment",
    [
        ('compare.rows=[{name = "x", layer = 2}]', "row 'x' has unknown key 'layer'"),
        ('compare.rows=[{name = "x"}, {name = "x"}]', "a name of its own"),
        ('compare.rows=[{name = "x", layers = 0, pretrain = true}]', "nothing to pre-train"),
        ("compare.pretrain_files=[]", "need pretrain_files"),
        ('compare.datasets.third={train = ["train.csv"]}', "dataset 'third' needs train and test"),
        ("compare.finetune_args={epoch = 3}", "finetune_args has unknown key 'epoch'"),
        ("compare.pretrain_args={layers = 3}", "pretrain_args has unknown key 'layers'"),
        ("compare.seeds=[1, 1]", "distinct"),
        ("compare.task=stars", "task must be one of"),
        ("compare.colour=1", "unknown key 'colour'"),
        ("compare.datasets.first=3", "must be a table"),
    ],
)
def test_bad_compare_specs_exit_2_with_a_clear_message(folder, tmp_path, override, fragment):
    result = invoke("run", folder / "cmp.toml", "--runs-dir", tmp_path, "--set", override, "-q")
    assert result.exit_code == 2, result.output
    assert fragment in result.output.replace("\n", " ")


def test_set_reads_toml_values_and_falls_back_to_text():
    spec = {"finetune": {"epochs": 3}}
    apply_override(spec, "finetune.epochs=5")
    apply_override(spec, "compare.seeds=[0, 1]")
    apply_override(spec, "finetune.task=rating")
    apply_override(spec, "name=my run")
    assert spec == {
        "finetune": {"epochs": 5, "task": "rating"},
        "compare": {"seeds": [0, 1]},
        "name": "my run",
    }
    for bad in ("noequals", "=3"):
        with pytest.raises(BadInput, match="KEY=VALUE"):
            apply_override(spec, bad)
    with pytest.raises(BadInput, match="not a table"):
        apply_override(spec, "name.x=1")


def test_set_is_recorded_in_the_config(folder, tmp_path):
    result = invoke(
        "run",
        folder / "cmp.toml",
        "--runs-dir",
        tmp_path,
        "-q",
        "--set",
        "compare.seeds=[4]",
        "--set",
        'compare.rows=[{name = "linear", layers = 0}]',
        "--set",
        "compare.peers=false",
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["overrides"] == [
        "compare.seeds=[4]",
        'compare.rows=[{name = "linear", layers = 0}]',
        "compare.peers=false",
    ]
    assert config["stages"]["compare"]["seeds"] == [4]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {r["seed"] for r in metrics["compare"]["results"]} == {4}
    assert "linear: first" in result.output  # the run's closing report shows the table


def test_rating_peer_is_ridge_clipped_to_the_training_range():
    rng = np.random.default_rng(0)
    X = (rng.random((80, 30)) < 0.2).astype(np.float32)
    y = np.clip(np.round(X[:, :5].sum(1) * 2 + 1), 1, 5)
    from scipy.sparse import csr_matrix

    train = ArrayData(csr_matrix(X[:60]), torch.tensor(y[:60]))
    test = ArrayData(csr_matrix(X[60:] * 3), torch.tensor(y[60:]))  # pushes predictions out of range
    target = Target("rating", "regression", [], 3.0, 1.0, float(y[:60].min()), float(y[:60].max()))
    result = fit_peer("rating", train, test, target)
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(X[:60], y[:60])
    pred = np.clip(ridge.predict(X[60:] * 3), y[:60].min(), y[:60].max())
    assert result["test"]["rmse"] == pytest.approx(math.sqrt(((pred - y[60:]) ** 2).mean()), rel=1e-5)
    assert result["test"]["alpha"] == pytest.approx(ridge.alpha_)
    assert result["test"]["cv"] == "leave-one-out"


def test_rating_peer_falls_back_to_5_fold_where_leave_one_out_is_too_large(monkeypatch):
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import RidgeCV

    import textrelu.experiments.peers

    rng = np.random.default_rng(6)
    X = (rng.random((100, 40)) < 0.2).astype(np.float64)
    y = np.clip(np.round(X[:, :5].sum(1) * 2 + 1 + rng.normal(0, 1, 100)), 1, 5)
    train, test = (
        ArrayData(csr_matrix(X[:80]), torch.tensor(y[:80])),
        ArrayData(csr_matrix(X[80:]), torch.tensor(y[80:])),
    )
    target = Target("rating", "regression", [], 3.0, 1.0, 1.0, 5.0)
    monkeypatch.setattr(
        textrelu.experiments.peers, "LOO_MAX_SIDE", 39
    )  # the 80 x 40 matrix is now "too large"
    result = fit_peer("rating", train, test, target)
    ridge = RidgeCV(alphas=np.logspace(-1, 4, 11), cv=5, scoring="neg_mean_squared_error").fit(
        csr_matrix(X[:80]), y[:80]
    )
    loo = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(X[:80], y[:80])
    assert result["test"]["cv"] == "5-fold"
    assert result["test"]["alpha"] == pytest.approx(ridge.alpha_)
    assert ridge.alpha_ != pytest.approx(
        loo.alpha_
    )  # the two searches differ here: the test can tell them apart
    pred = np.clip(ridge.predict(X[80:]), 1, 5)
    assert result["test"]["rmse"] == pytest.approx(math.sqrt(((pred - y[80:]) ** 2).mean()), rel=1e-5)


def test_nb_peer_is_logistic_regression_on_nb_weighted_vectors():
    rng = np.random.default_rng(1)
    X = (rng.random((120, 40)) < 0.2).astype(np.float32)
    y = (X[:, :6].sum(1) + rng.normal(0, 0.7, 120) > 1.2).astype(np.int64)
    from scipy.sparse import csr_matrix

    train, test = (
        ArrayData(csr_matrix(X[:90]), torch.tensor(y[:90])),
        ArrayData(csr_matrix(X[90:]), torch.tensor(y[90:])),
    )
    target = Target("sentiment", "softmax", ["0", "1"])
    result = fit_peer("sentiment", train, test, target, "nb-linear")
    from sklearn.linear_model import LogisticRegressionCV

    from textrelu.data.vectorize import nb_log_ratios

    r = nb_log_ratios(X[:90], y[:90])
    lr = LogisticRegressionCV(
        Cs=10, cv=5, max_iter=5000, l1_ratios=(0.0,), scoring="accuracy", use_legacy_attributes=False
    ).fit(X[:90] * r, y[:90])
    assert result["name"] == "NB-weighted LogisticRegressionCV" and result["kind"] == "nb-linear"
    assert result["test"]["accuracy"] == pytest.approx((lr.predict(X[90:] * r) == y[90:]).mean())
    rating = Target("rating", "regression", [], 3.0, 1.0, 1.0, 5.0)
    with pytest.raises(BadInput, match="nb-linear peer needs a sentiment task"):
        fit_peer("rating", train, test, rating, "nb-linear")


@pytest.mark.parametrize(
    "peers, kinds", [(True, ["linear"]), (False, []), (["nb-linear", "linear"], ["nb-linear", "linear"])]
)
def test_peers_setting(peers, kinds):
    from textrelu.experiments.peers import peer_kinds

    assert peer_kinds(peers) == kinds


@pytest.mark.parametrize("peers", [["svm"], "linear", 1])
def test_bad_peers_setting_names_the_choices(peers):
    from textrelu.experiments.peers import peer_kinds

    with pytest.raises(BadInput, match="peers must be true, false or a list of linear, nb-linear"):
        peer_kinds(peers)


def test_linear_model_finetunes_evaluates_and_scores_from_the_cli(folder, tmp_path):
    vocab = tmp_path / "v.txt"
    build_vocab([str(folder / "train.csv")], vocab, size=100, min_df=1, quiet=True)
    model = tmp_path / "m.pt"
    result = invoke(
        "finetune",
        folder / "train.csv",
        "--task",
        "sentiment",
        "--vocab",
        vocab,
        "--layers",
        0,
        "--out",
        model,
        "--epochs",
        5,
        "-q",
    )
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", model, folder / "train.csv", "--json", "-q")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["sparsity"] == [] and metrics["n"] == N_ROWS
    result = invoke("score", model, folder / "train.csv", "--out", tmp_path / "p.jsonl", "-q")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == N_ROWS


def test_resume_keeps_finished_results_and_runs_the_rest(folder, tmp_path, monkeypatch):
    import textrelu.experiments.compare as cmp

    calls = []
    real = cmp.finetune_arrays

    def interrupted_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(cmp, "finetune_arrays", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        run(folder / "cmp.toml", runs_dir=tmp_path, quiet=True)
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "metrics.json").exists()
    journal = (run_dir / "compare" / "results.jsonl").read_text().splitlines()
    assert len(journal) == 1 + 4 + 1 + 2 + 3  # fingerprint, 4 rows, pre-trained stack, 2 peers, 3 results
    # a line cut by the interruption is dropped, not fatal
    with open(run_dir / "compare" / "results.jsonl", "a") as f:
        f.write('{"key": ["first", "relu 1"')

    calls.clear()
    monkeypatch.setattr(cmp, "finetune_arrays", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    result = invoke("run", "--resume", run_dir, "-q")
    assert result.exit_code == 0, result.output
    assert len(calls) == 16 - 3  # only the missing results ran
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["compare"]["results"]) == 16 and len(metrics["compare"]["peers"]) == 4
    uninterrupted = run(folder / "cmp.toml", runs_dir=tmp_path / "again", quiet=True)["metrics"]["compare"]
    key = lambda c: sorted((r["dataset"], r["row"], r["seed"], r["test"]["accuracy"]) for r in c["results"])  # noqa: E731
    assert key(metrics["compare"]) == key(uninterrupted)


def test_resume_refuses_other_settings_and_foreign_folders(folder, tmp_path):
    result = run(
        folder / "cmp.toml",
        runs_dir=tmp_path,
        quiet=True,
        overrides=["compare.seeds=[0]", "compare.peers=false", 'compare.rows=[{name = "l", layers = 0}]'],
    )
    cfg = json.loads((Path(result["run_dir"]) / "config.json").read_text())["stages"]["compare"]
    cfg["finetune_args"] = {**cfg["finetune_args"], "epochs": 3}
    with pytest.raises(BadInput, match="other settings"):
        compare(**cfg)
    r = invoke("run", "--resume", result["run_dir"], "--set", "compare.finetune_args={epochs = 3}")
    assert r.exit_code == 2 and "only compare.rows, compare.seeds, compare.peers may change" in r.output
    r = invoke("run", "--resume", tmp_path / "nothing")
    assert r.exit_code == 2 and "no config.json" in r.output
    r = invoke("run", folder / "cmp.toml", "--resume", result["run_dir"])
    assert r.exit_code == 2 and "give no pipeline file" in r.output


def test_negative_layers_exit_2(folder, tmp_path):
    vocab = tmp_path / "v.txt"
    build_vocab([str(folder / "train.csv")], vocab, size=100, min_df=1, quiet=True)
    result = invoke(
        "finetune",
        folder / "train.csv",
        "--task",
        "sentiment",
        "--vocab",
        vocab,
        "--layers",
        -1,
        "--out",
        tmp_path / "m.pt",
        "-q",
    )
    assert result.exit_code == 2 and "--layers must be at least 0" in result.output
    assert not (tmp_path / "m.pt").exists()


def test_nb_weights_in_a_rating_comparison_fail_before_any_work(folder, tmp_path):
    with pytest.raises(BadInput, match="NB weights .* need task"):
        run(folder / "cmp.toml", runs_dir=tmp_path, quiet=True, overrides=["compare.task=rating"])
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "compare" / "results.jsonl").exists()


def test_rating_table_reports_rmse_and_the_lowest_is_best(folder, tmp_path):
    with open(folder / "ratings.jsonl", "w", encoding="utf-8") as f:
        for i in range(N_ROWS):
            stars = (5, 1, 4, 2)[i % 4]
            f.write(json.dumps({"id": f"s{i}", "text": review_text(i, stars >= 4), "rating": stars}) + "\n")
    result = run(
        folder / "cmp.toml",
        runs_dir=tmp_path,
        quiet=True,
        overrides=[
            "compare.task=rating",
            "compare.seeds=[0]",
            'compare.datasets={all = {train = ["ratings.jsonl[:40]"], test = ["ratings.jsonl[40:]"]}}',
            'compare.rows=[{name = "linear", layers = 0}, {name = "relu 1", layers = 1, hidden = 16}]',
            "compare.peers=true",
        ],
    )
    c = result["metrics"]["compare"]
    assert {r["row"] for r in c["results"]} == {"linear", "relu 1"}
    assert all(0 <= r["test"]["rmse"] <= 4 and "mae" in r["test"] for r in c["results"])
    assert c["peers"][0]["name"] == "RidgeCV (clipped)" and c["peers"][0]["test"]["rmse"] <= 4
    text = report([result["run_dir"]], tmp_path / "r.md")
    assert "test RMSE (lower is better)" in text
    best = min(c["results"], key=lambda r: r["test"]["rmse"])
    assert f"Best textrelu row: {best['row']} ({best['test']['rmse']:.3f})." in text


def test_resume_adds_rows_seeds_and_peers_to_a_finished_table(folder, tmp_path, monkeypatch):
    import textrelu.experiments.compare as cmp

    first = run(
        folder / "cmp.toml",
        runs_dir=tmp_path,
        quiet=False,
        overrides=["compare.seeds=[0]", "compare.peers=false", 'compare.rows=[{name = "l", layers = 0}]'],
    )
    run_dir = Path(first["run_dir"])
    calls, real = [], cmp.finetune_arrays
    monkeypatch.setattr(
        cmp, "finetune_arrays", lambda *a, **k: calls.append((a[5].layers, k["seed"])) or real(*a, **k)
    )
    result = invoke(
        "run",
        "--resume",
        run_dir,
        "-q",
        "--set",
        "compare.seeds=[0, 1]",
        "--set",
        "compare.peers=true",
        "--set",
        'compare.rows=[{name = "l", layers = 0}, {name = "r", layers = 1, hidden = 8}]',
    )
    assert result.exit_code == 0, result.output
    assert "== compare" not in result.output  # --quiet holds on --resume too
    assert sorted(calls) == [
        (0, 1),
        (0, 1),
        (1, 0),
        (1, 0),
        (1, 1),
        (1, 1),
    ]  # two datasets; ("l", seed 0) kept
    metrics = json.loads((run_dir / "metrics.json").read_text())
    c = metrics["compare"]
    assert {(r["dataset"], r["row"], r["seed"]) for r in c["results"]} == {
        (d, row, s) for d in ("first", "second") for row in ("l", "r") for s in (0, 1)
    }
    assert [p["name"] for p in c["peers"]] == ["LogisticRegressionCV"] * 2
    kept = {(r["dataset"], r["seed"]): r for r in first["metrics"]["compare"]["results"]}
    for r in c["results"]:
        if r["row"] == "l" and r["seed"] == 0:
            assert r["history"] == kept[(r["dataset"], 0)]["history"]
    assert metrics["seconds"] > first["metrics"]["seconds"]  # the first run's time and the extension's
    config = json.loads((run_dir / "config.json").read_text())
    assert config["stages"]["compare"]["seeds"] == [0, 1] and len(config["stages"]["compare"]["rows"]) == 2
    assert config["overrides"][-3:] == [
        "compare.seeds=[0, 1]",
        "compare.peers=true",
        'compare.rows=[{name = "l", layers = 0}, {name = "r", layers = 1, hidden = 8}]',
    ]
    # the same name with other settings is refused, naming the row
    result = invoke(
        "run", "--resume", run_dir, "--set", 'compare.rows=[{name = "r", layers = 2, hidden = 8}]'
    )
    assert result.exit_code == 2 and "row 'r' ran here with other settings" in result.output
