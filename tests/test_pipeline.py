"""Tests of pipeline files (textrelu.experiments.pipeline and `textrelu run`): a tiny pipeline on a temporary
corpus, the checks on the file itself, and one end-to-end run of the real demo (slow)."""

import json
import re
from pathlib import Path

import pytest
from corpus import N_ROWS, review_text, write_csv  # noqa: E402
from typer.testing import CliRunner

import textrelu.experiments.pipeline
from textrelu import checkpoint
from textrelu.cli import app
from textrelu.data.vocab import Vocabulary
from textrelu.errors import BadInput
from textrelu.experiments.compare import check_spec
from textrelu.experiments.pipeline import load_pipeline, run

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pipelines" / "demo.toml"
RUN_OUTPUTS = (
    "vocab.txt",
    "pretrained.pt",
    "model.pt",
    "predictions.jsonl",
    "rejects.jsonl",
    "config.json",
    "metrics.json",
    "learning_curve.png",
)

TINY = """\
# a tiny pipeline: every path is relative to this file's folder
name = "tiny"
seed = 3

[build_vocab]
files = ["../data/train.csv"]
size = 200
min_df = 1

[pretrain]
files = ["../data/train.csv", "../data/extra.csv"]
layers = 1
hidden = 16
epochs = 1

[finetune]
files = ["../data/train.csv"]
task = "sentiment"
epochs = 2
test = ["../data/train.csv[-20:]"]

[evaluate]
files = ["../data/train.csv[:30]"]

[score]
files = ["../data/to_score.csv"]
batch_size = 4
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def project(tmp_path):
    """tmp/conf/tiny.toml, tmp/data/{train,extra,to_score}.csv, and a runs folder to use."""
    data = tmp_path / "data"
    rows = [
        (f"r{i}", review_text(i, i % 2 == 0), "positive" if i % 2 == 0 else "negative") for i in range(N_ROWS)
    ]
    write_csv(data / "train.csv", rows)
    write_csv(data / "extra.csv", [(f"e{i}", review_text(i + 1, True), "") for i in range(10)])
    write_csv(
        data / "to_score.csv",
        [("s1", review_text(5, True), ""), ("s2", "  ", ""), ("s3", review_text(6, False), "")],
    )
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "tiny.toml").write_text(TINY, encoding="utf-8")
    return {"root": tmp_path, "toml": conf / "tiny.toml", "data": data, "runs": tmp_path / "runs"}


def check_run_folder(run_dir: Path, project) -> tuple[dict, dict]:
    """Every output is there and coherent; return (config, metrics)."""
    for name in RUN_OUTPUTS:
        assert (run_dir / name).is_file(), name
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert Path(config["pipeline"]).resolve() == project["toml"].resolve()
    stages = config["stages"]
    assert list(stages) == ["build_vocab", "pretrain", "finetune", "evaluate", "score"]
    data = project["data"].resolve()
    # relative paths resolved against the TOML's folder, slices kept
    assert stages["build_vocab"]["files"] == [str(data / "train.csv")]
    assert stages["pretrain"]["files"] == [str(data / "train.csv"), str(data / "extra.csv")]
    assert stages["finetune"]["test"] == [str(data / "train.csv[-20:]")]
    assert stages["evaluate"]["files"] == [str(data / "train.csv[:30]")]
    # the given settings, the defaults filled in, the top-level seed and the links
    assert stages["build_vocab"] == {
        "files": [str(data / "train.csv")],
        "out": str(run_dir / "vocab.txt"),
        "size": 200,
        "ngrams": 1,
        "min_df": 1,
        "size_per_review": None,
        "text_column": None,
        "max_record_bytes": 1 << 20,
        "workers": None,
        "engine": "local",
        "address": None,
        "quiet": True,
    }
    assert stages["pretrain"]["hidden"] == 16 and stages["pretrain"]["noise"] == 0.25
    assert stages["pretrain"]["reconstruction"] == "sigmoid-ce" and stages["pretrain"]["seed"] == 3
    assert stages["pretrain"]["vocab"] == str(run_dir / "vocab.txt")
    assert stages["pretrain"]["out"] == str(run_dir / "pretrained.pt")
    ft = stages["finetune"]
    assert (ft["task"], ft["epochs"], ft["patience"], ft["valid_fraction"], ft["dropout"], ft["seed"]) == (
        "sentiment",
        2,
        5,
        0.1,
        0.5,
        3,
    )
    assert ft["init"] == str(run_dir / "pretrained.pt") and ft["out"] == str(run_dir / "model.pt")
    assert ft["vocab"] == str(run_dir / "vocab.txt") and ft["valid"] is None
    assert stages["evaluate"]["model"] == str(run_dir / "model.pt")
    assert stages["evaluate"]["device"] == "auto"
    assert stages["score"] == {
        "model": str(run_dir / "model.pt"),
        "files": [str(data / "to_score.csv")],
        "out": str(run_dir / "predictions.jsonl"),
        "rejects": str(run_dir / "rejects.jsonl"),
        "text_column": None,
        "id_column": None,
        "max_record_bytes": 1 << 20,
        "batch_size": 4,
        "workers": None,
        "format": "jsonl",
        "engine": "local",
        "address": None,
        "device": "auto",
        "quiet": True,
    }

    assert metrics["build_vocab"] == {
        "terms": len(Vocabulary.load(run_dir / "vocab.txt")),
        "documents": N_ROWS,
    }
    assert metrics["pretrain"]["n_reviews"] == N_ROWS + 10
    assert metrics["finetune"]["test"]["n"] == 20 and metrics["evaluate"]["n"] == 30
    assert len(metrics["finetune"]["history"]) == 2
    assert (metrics["score"]["read"], metrics["score"]["scored"], metrics["score"]["rejected"]) == (3, 2, 1)

    model = checkpoint.load(run_dir / "model.pt", kind="model")
    # from a pre-trained stack the search holds out one split: the model is the stack's 16 units
    assert model["model_args"]["hidden"] == [16] and model["config"]["seed"] == 3
    assert model["metrics"]["search"]["folds"] == 1
    checkpoint.load(run_dir / "pretrained.pt", kind="pretrained")
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["s1", "s3"]
    rejects = [json.loads(line) for line in (run_dir / "rejects.jsonl").read_text().splitlines()]
    assert [(r["source"], r["row"]) for r in rejects] == [(str(data / "to_score.csv"), 2)]
    return config, metrics


def only_run_dir(runs: Path) -> Path:
    dirs = list(runs.iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_library_run_writes_every_output_into_one_run_folder(project, monkeypatch, capsys):
    elsewhere = project["root"] / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths follow the TOML, not the working directory
    result = run(project["toml"], runs_dir=project["runs"], quiet=True)
    run_dir = only_run_dir(project["runs"])
    assert run_dir.name.startswith("tiny-") and Path(result["run_dir"]) == run_dir
    check_run_folder(run_dir, project)
    assert set(result["metrics"]) == {"build_vocab", "pretrain", "finetune", "evaluate", "score", "seconds"}
    report = result["report"]
    assert f"run folder: {run_dir}" in report
    assert re.search(r"finetune test: accuracy [01]\.\d{4} \(n=20\); exact zeros: layer 1 \d+\.\d%", report)
    assert "evaluate: accuracy" in report
    assert "score: read 3 = scored 2 + rejected 1" in report
    for name in RUN_OUTPUTS:
        assert str(run_dir / name) in report
    assert capsys.readouterr().err == ""  # quiet


def test_cli_run_writes_the_same_run_folder(project):
    result = invoke("run", project["toml"], "--runs-dir", project["runs"], "-q")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    run_dir = only_run_dir(project["runs"])
    check_run_folder(run_dir, project)
    assert f"run folder: {run_dir}" in result.stdout
    assert (
        "finetune test: accuracy" in result.stdout
        and "score: read 3 = scored 2 + rejected 1" in result.stdout
    )
    assert result.stderr.strip() == ""


def test_cli_run_without_quiet_reports_progress(project):
    result = invoke("run", project["toml"], "--runs-dir", project["runs"])
    assert result.exit_code == 0, result.stderr
    for stage in ("build_vocab", "pretrain", "finetune", "evaluate", "score"):
        assert f"== {stage}" in result.stderr


NO_PRETRAIN = """\
name = "nopre"
seed = 5

[build_vocab]
files = ["../data/train.csv"]
min_df = 1

[finetune]
files = ["../data/train.csv"]
task = "sentiment"
layers = 1
hidden = 16
epochs = 2

[score]
files = ["../data/to_score.csv"]
"""


def test_pipeline_without_pretrain_is_reproducible(project):
    toml = project["toml"].with_name("nopre.toml")
    toml.write_text(NO_PRETRAIN)
    first = run(toml, runs_dir=project["root"] / "r1", quiet=True)
    second = run(toml, runs_dir=project["root"] / "r2", quiet=True)
    assert set(first["metrics"]) == {"build_vocab", "finetune", "score", "seconds"}
    first_dir, second_dir = Path(first["run_dir"]), Path(second["run_dir"])
    config = json.loads((first_dir / "config.json").read_text())["stages"]
    assert config["finetune"]["init"] is None and config["finetune"]["seed"] == 5
    assert not (first_dir / "pretrained.pt").exists()
    a = (first_dir / "predictions.jsonl").read_bytes()
    assert a == (second_dir / "predictions.jsonl").read_bytes() and len(a.splitlines()) == 2
    assert checkpoint.load(first_dir / "model.pt")["state_dict"]["output.weight"].equal(
        checkpoint.load(second_dir / "model.pt")["state_dict"]["output.weight"]
    )


def test_pipeline_finetune_searches_the_settings_it_is_not_given(project):
    """A pipeline's finetune chooses what the CLI's would (the settings its search varies) unless
    the pipeline gives them: the run leaves them out of the stage's arguments and config."""
    toml = project["toml"].with_name("searched.toml")
    toml.write_text(NO_PRETRAIN.replace("layers = 1\nhidden = 16\n", "nb_weights = false\nbudget = 5\n"))
    result = run(toml, runs_dir=project["root"] / "r", quiet=True)
    config = json.loads((Path(result["run_dir"]) / "config.json").read_text())["stages"]["finetune"]
    assert not {"hidden", "layers"} & set(config) and config["nb_weights"] is False
    search = result["metrics"]["finetune"]["search"]
    assert [c["settings"] for c in search["candidates"]] == [
        {"hidden": 100, "layers": 1},
        {"hidden": 100, "layers": 1, "input_dropout": 0.0, "label_smoothing": 0.1},
        {"layers": 0},
        {"hidden": 1000, "layers": 1},
    ]


def test_two_runs_in_the_same_second_get_two_folders(project, monkeypatch):
    monkeypatch.setattr(textrelu.experiments.pipeline.time, "strftime", lambda fmt, *a: "20250101-000000")
    toml = project["toml"].with_name("vocab_only.toml")
    toml.write_text('name = "v"\n[build_vocab]\nfiles = ["../data/train.csv"]\nmin_df = 1\n')
    first = invoke("run", toml, "--runs-dir", project["runs"], "-q")
    second = invoke("run", toml, "--runs-dir", project["runs"], "-q")
    assert first.exit_code == 0
    assert second.exit_code == 0, repr(second.exception)
    assert len(list(project["runs"].iterdir())) == 2


# ---------------------------------------------------------------------------------------------
# Bad pipeline files: BadInput from the library, exit 2 from the CLI, no run folder

BAD = [
    ("[bogus]\nx = 1\n", ["unknown key or stage [bogus]"]),
    ('epochs = 3\n[build_vocab]\nfiles = ["../data/train.csv"]\n', ["unknown key or stage [epochs]"]),
    (
        '[finetune]\nfiles = ["../data/train.csv"]\ntask = "sentiment"\nepochz = 2\n',
        ["[finetune]", "'epochz'", "allowed:", "epochs"],
    ),
    (
        '[finetune]\nfiles = ["../data/train.csv"]\ntask = "sentiment"\nout = "m.pt"\n',
        ["[finetune]", "'out'", "the run sets it"],
    ),
    ('[score]\nfiles = ["../data/train.csv"]\nmodel = "m.pt"\n', ["[score]", "'model'", "the run sets it"]),
    (
        '[pretrain]\nvocab = "v.txt"\nfiles = ["../data/train.csv"]\n',
        ["[pretrain]", "'vocab'", "the run sets it"],
    ),
    ('[build_vocab\nfiles = ["../data/train.csv"]\n', ["not valid TOML"]),
    ('name = "x"\nseed = 1\n', ["no stage to run"]),
]


@pytest.mark.parametrize("text, fragments", BAD)
def test_bad_pipeline_raises_bad_input(project, text, fragments):
    toml = project["toml"].with_name("bad.toml")
    toml.write_text(text)
    with pytest.raises(BadInput) as info:
        run(toml, runs_dir=project["runs"], quiet=True)
    message = str(info.value)
    assert str(toml) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not project["runs"].exists()


@pytest.mark.parametrize("text, fragments", BAD)
def test_bad_pipeline_exits_2(project, text, fragments):
    toml = project["toml"].with_name("bad.toml")
    toml.write_text(text)
    result = invoke("run", toml, "--runs-dir", project["runs"], "-q")
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    message = result.stderr.strip()
    assert message.startswith("error: ") and str(toml) in message
    for fragment in fragments:
        assert fragment in message
    assert not project["runs"].exists()


def test_missing_pipeline_file_exits_2(project):
    result = invoke("run", project["root"] / "nope.toml", "--runs-dir", project["runs"])
    assert result.exit_code == 2 and "nope.toml" in result.stderr and "not found" in result.stderr


def test_bad_data_in_a_pipeline_exits_2_naming_the_file(project):
    toml = project["toml"].with_name("missing_data.toml")
    toml.write_text('[build_vocab]\nfiles = ["../data/absent.csv"]\n')
    result = invoke("run", toml, "--runs-dir", project["runs"], "-q")
    assert result.exit_code == 2
    assert str((project["data"] / "absent.csv").resolve()) in result.stderr and "not found" in result.stderr


def test_a_single_path_string_is_one_file_or_a_clear_error(project):
    toml = project["toml"].with_name("str.toml")
    toml.write_text('[build_vocab]\nfiles = "../data/train.csv"\nmin_df = 1\n')
    try:
        result = run(toml, runs_dir=project["runs"], quiet=True)
    except BadInput as e:
        assert "[build_vocab]" in str(e) and "files" in str(e) and "list" in str(e)
    else:
        assert result["metrics"]["build_vocab"]["documents"] == N_ROWS


def test_a_stage_that_is_not_a_table_exits_2(project):
    toml = project["toml"].with_name("notable.toml")
    toml.write_text("finetune = 3\n")
    result = invoke("run", toml, "--runs-dir", project["runs"], "-q")
    assert result.exit_code == 2 and "[finetune]" in result.stderr


# ---------------------------------------------------------------------------------------------
# The real demo, end to end


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path):
    result = invoke("run", DEMO, "--runs-dir", tmp_path, "-q")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    out = result.stdout
    m = re.search(
        r"^finetune test: accuracy (\d\.\d+) \(n=400\); exact zeros: layer 1 (\d+\.\d)%$", out, re.M
    )
    assert m, out
    assert float(m[1]) > 0.80
    assert 0 < float(m[2]) < 100
    assert re.search(r"^evaluate: accuracy \d\.\d+ \(n=400\); exact zeros: layer 1 \d+\.\d%$", out, re.M)
    assert "score: read 400 = scored 400 + rejected 0" in out
    run_dir = only_run_dir(tmp_path)
    assert f"run folder: {run_dir}" in out
    listed = [
        Path(line.strip().split(" (")[0]) for line in out.split("outputs:", 1)[1].splitlines() if line.strip()
    ]
    assert {p.name for p in listed} >= set(RUN_OUTPUTS) - {"vocab.txt"}  # no build_vocab stage
    for p in listed:
        assert p.is_file() and p.stat().st_size > 0 or p.name == "rejects.jsonl", p
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["finetune"]["test"]["accuracy"] == pytest.approx(float(m[1]), abs=1e-4)
    assert metrics["evaluate"]["accuracy"] == pytest.approx(metrics["finetune"]["test"]["accuracy"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["stages"]["pretrain"]["hidden"] == 1000 and config["stages"]["finetune"]["seed"] == 0
    assert config["stages"]["pretrain"]["vocab"] is None  # pretrain counts its own, the model keeps it
    vocab = checkpoint.load(run_dir / "model.pt")["vocab"]
    assert vocab["ngrams"] == 2 and len(vocab["terms"]) > 5000
    # from the stack, the search tried the stack's candidates (NB weights or not, at a lower rate)
    tried = [c["options"] for c in metrics["finetune"]["search"]["candidates"]]
    assert tried == ["--nb-weights --learning-rate 0.0001", "--no-nb-weights --learning-rate 0.0001"]


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_pipelines_are_valid(path):
    """Every pipeline in pipelines/ parses with known stages and keys, and its comparison, if any,
    passes the same checks a run makes before it starts (no data is read)."""
    spec = load_pipeline(path)
    assert spec.get("name") == path.stem
    if "compare" in spec:
        c = spec["compare"]
        check_spec(
            c["datasets"],
            c["rows"],
            c.get("seeds", [0]),
            c.get("finetune_args", {}),
            c.get("pretrain_args", {}),
            c.get("pretrain_files"),
        )
