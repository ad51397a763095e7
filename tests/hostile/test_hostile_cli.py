"""Hostile and broken input to the commands (issue 23): where outputs go, outputs that are inputs,
unwritable folders, dead networks, bad labels, damaged files and disk errors.

Every case asserts the class of failure: exit 2 (bad input or usage) or 1 (training failed), one
line naming the file or setting, no traceback, and nothing written under a final name.
"""

import errno
import json
import os
import sys
from pathlib import Path

import pytest
import torch

import textrelu.io
from textrelu import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import N_ROWS, invoke, ok, review_text, write_csv  # noqa: E402

KITCHEN = Path(__file__).resolve().parents[2] / "data" / "amazon-kitchen"


def refused(result, *words, code=2):
    """Exit `code` with a one-line message holding `words`, and no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    for w in words:
        assert w in result.stderr, (w, result.stderr)
    return result


def no_temporaries(folder: Path):
    return [p for p in folder.rglob("*.tmp")] == []


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A labeled corpus, its vocabulary and a tiny model, made once."""
    root = tmp_path_factory.mktemp("made")
    rows = [(i, review_text(i, i % 2 == 0), "pos" if i % 2 == 0 else "neg") for i in range(N_ROWS)]
    train = write_csv(root / "train.csv", rows)
    stars = write_csv(
        root / "stars.csv",
        [(i, review_text(i, i % 2 == 0), 5 if i % 2 == 0 else 1) for i in range(N_ROWS)],
        header=("id", "text", "stars"),
    )
    vocab = root / "vocab.txt"
    ok(invoke("build-vocab", train, "--out", vocab, "--min-df", 1, "-q"))
    model = root / "model.pt"
    common = ("--hidden", 8, "--epochs", 1, "--device", "cpu", "-q")
    ok(invoke("finetune", train, "--task", "sentiment", "--vocab", vocab, "--out", model, *common))
    return {"root": root, "train": train, "stars": stars, "vocab": vocab, "model": model, "common": common}


# ---------------------------------------------------------------------------------------------
# item 3: a run writes only inside its run folder


def write_pipeline(path: Path, name, made, extra: str = "") -> Path:
    name_line = "" if name is None else f"name = {json.dumps(name)}\n"
    path.write_text(
        f'{name_line}seed = 0\n{extra}[build_vocab]\nfiles = ["{made["train"]}"]\nmin_df = 1\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    "name", ["../../x", "../escape", "/tmp/textrelu-absolute", "a/b", "..", ".", ".hidden", ""]
)
def test_a_pipeline_name_cannot_leave_the_runs_folder(tmp_path, made, name):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    pipeline = write_pipeline(work / "p.toml", name, made)
    before = set(tmp_path.rglob("*"))
    refused(invoke("run", pipeline, "--runs-dir", work / "runs", "-q"), "name", "plain folder name")
    assert set(tmp_path.rglob("*")) == before  # nothing made, not even --runs-dir
    assert not Path("/tmp/textrelu-absolute").exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        ("name = 3\n", ["name must be a string"]),
        ('seed = "x"\n', ["seed must be an integer"]),
        ("device = 1\n", ["device must be a string"]),
    ],
)
def test_top_level_keys_of_the_wrong_type_exit_2_before_a_run_folder(tmp_path, made, extra, words):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(f'{extra}[build_vocab]\nfiles = ["{made["train"]}"]\n', encoding="utf-8")
    refused(invoke("run", pipeline, "--runs-dir", tmp_path / "runs", "-q"), *words)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "table, words",
    [
        ("[build_vocab]\nfiles = 3\n", ["files must be a path or a list of paths, got 3"]),
        ("[build_vocab]\nfiles = [1, 2]\n", ["files must be a path or a list of paths"]),
        ('[finetune]\nfiles = "t.csv"\ntask = 5\n', ["task must be a string, got 5"]),
        ('[finetune]\nfiles = "t.csv"\ntask = "sentiment"\ntest = {a = 1}\n', ["test must be a path"]),
        ('[evaluate]\nfiles = "t.csv"\nquiet = "yes"\n', ["quiet must be true or false"]),
        ('[images]\ndataset = "mnist"\ndata_dir = 7\n', ["data_dir must be a string"]),
    ],
)
def test_pipeline_arguments_of_the_wrong_type_exit_2_before_a_run_folder(tmp_path, table, words):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(table, encoding="utf-8")
    refused(invoke("run", pipeline, "--runs-dir", tmp_path / "runs", "-q"), *words)
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def finished_run(tmp_path, made):
    pipeline = write_pipeline(tmp_path / "p.toml", "conf", made)
    ok(invoke("run", pipeline, "--runs-dir", tmp_path / "runs", "-q"))
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


@pytest.mark.parametrize("where", ["absolute", "dotdot", "link"])
def test_resume_refuses_an_edited_config_that_writes_outside_the_run_folder(tmp_path, finished_run, where):
    config_file = finished_run / "config.json"
    config = json.loads(config_file.read_text())
    outside = tmp_path / "outside"
    outside.mkdir()
    if where == "absolute":
        target = str(outside / "vocab.txt")
    elif where == "dotdot":
        target = str(finished_run / ".." / ".." / "outside" / "vocab.txt")
    else:  # a link inside the run folder to a folder outside it
        (finished_run / "sub").symlink_to(outside)
        target = str(finished_run / "sub" / "vocab.txt")
    config["stages"]["build_vocab"]["out"] = target
    config_file.write_text(json.dumps(config))
    (finished_run / "vocab.txt").unlink()
    refused(invoke("run", "--resume", finished_run, "-q"), "outside the run folder", "[build_vocab] out")
    assert list(outside.iterdir()) == []


def test_resume_refuses_a_config_from_another_folder_or_of_the_wrong_shape(tmp_path, finished_run):
    config_file = finished_run / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "run_dir": str(tmp_path)}))
    refused(invoke("run", "--resume", finished_run, "-q"), "belongs to the run folder")
    for stages, words in (
        (3, "no table of stages"),
        ({"evil": {}}, "unknown stage 'evil'"),
        ({"build_vocab": 1}, "must be a table"),
    ):
        config_file.write_text(json.dumps({**config, "stages": stages}))
        refused(invoke("run", "--resume", finished_run, "-q"), words)


# ---------------------------------------------------------------------------------------------
# items 8 and 10: an output is never an input or another output, and its folder is checked first


def test_score_refuses_out_or_rejects_that_are_inputs_or_each_other(tmp_path, made):
    data = tmp_path / "in.csv"
    data.write_bytes(made["train"].read_bytes())
    original = data.read_bytes()
    (tmp_path / "hard.csv").hardlink_to(data)
    (tmp_path / "soft.csv").symlink_to(data)
    m = made["model"]
    cases = [
        (["--out", data], "is the input"),
        (["--out", tmp_path / "." / "in.csv"], "is the input"),
        (["--out", tmp_path / "hard.csv"], "is the input"),  # the same file under another name
        (["--out", tmp_path / "soft.csv"], "is the input"),
        (["--out", tmp_path / "p.jsonl", "--rejects", data], "is the input"),
        (["--out", tmp_path / "p.jsonl", "--rejects", tmp_path / "p.jsonl"], "is also the --out"),
        (["--out", tmp_path / "p.jsonl", "--rejects", tmp_path / "p.summary.json"], "is also"),
        (["--out", m], "is the input"),  # the model file
    ]
    for args, words in cases:
        refused(invoke("score", m, data, *args, "-q"), words)
        assert data.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.csv", "in.csv", "soft.csv"]


def test_other_commands_refuse_an_output_that_is_an_input(tmp_path, made):
    data = tmp_path / "in.csv"
    data.write_bytes(made["train"].read_bytes())
    original, vocab_text = data.read_bytes(), made["vocab"].read_bytes()
    common = made["common"]
    refused(invoke("build-vocab", data, "--out", data, "-q"), "--out", "is the input")
    refused(invoke("build-vocab", f"{data}[:10]", "--out", data, "-q"), "is the input")  # a slice of it
    refused(invoke("pretrain", data, "--vocab", made["vocab"], "--out", made["vocab"], "-q"), "is the input")
    refused(
        invoke("finetune", data, "--task", "sentiment", "--vocab", made["vocab"], "--out", data, *common),
        "is the input",
    )
    refused(
        invoke(
            "finetune",
            data,
            "--task",
            "sentiment",
            "--vocab",
            made["vocab"],
            "--test",
            made["train"],
            "--out",
            made["train"],
            *common,
        ),
        "is the input",
    )
    assert data.read_bytes() == original and made["vocab"].read_bytes() == vocab_text


def test_an_unusable_output_folder_is_found_before_any_work(tmp_path, made, monkeypatch):
    import textrelu.stages.finetune

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(textrelu.stages.finetune, "fit", must_not_train)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    args = ("finetune", made["train"], "--task", "sentiment", "--vocab", made["vocab"], *made["common"])
    refused(invoke(*args, "--out", blocker / "sub" / "m.pt"), "cannot write --out", "is not a folder")
    refused(invoke(*args, "--out", tmp_path), "is a folder")
    real_access = os.access
    # root writes anywhere: deny writing here (reading stays allowed, for the inputs)
    monkeypatch.setattr(
        textrelu.io.os, "access", lambda p, m, **k: not m & os.W_OK and real_access(p, m, **k)
    )
    refused(invoke(*args, "--out", tmp_path / "new" / "m.pt"), "is not writable")
    refused(
        invoke("score", made["model"], made["train"], "--out", tmp_path / "p.jsonl", "-q"), "not writable"
    )
    refused(invoke("build-vocab", made["train"], "--out", tmp_path / "v.txt", "-q"), "not writable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_missing_output_folder_is_made(tmp_path, made):
    ok(invoke("score", made["model"], made["train"], "--out", tmp_path / "x" / "y" / "p.jsonl", "-q"))
    assert (tmp_path / "x" / "y" / "p.jsonl").is_file()


# ---------------------------------------------------------------------------------------------
# item 12: a dead or diverged network is a failure (exit 1), never a saved model


@pytest.mark.skipif(not KITCHEN.is_dir(), reason="needs data/amazon-kitchen")
def test_a_learning_rate_that_kills_the_network_exits_1_and_saves_nothing(tmp_path):
    files = [f"{KITCHEN / 'positive.review'}[:300]", f"{KITCHEN / 'negative.review'}[:300]"]
    ok(invoke("build-vocab", *files, "--out", tmp_path / "v.txt", "-q"))
    result = invoke(
        "finetune",
        *files,
        "--task",
        "sentiment",
        "--vocab",
        tmp_path / "v.txt",
        "--out",
        tmp_path / "m.pt",
        "--hidden",
        32,
        "--epochs",
        2,
        "--learning-rate",
        1e6,
        "--device",
        "cpu",
        "-q",
    )
    refused(result, "hidden layer 1 is all zero", "lower the learning rate (now 1e+06)", code=1)
    assert not (tmp_path / "m.pt").exists() and no_temporaries(tmp_path)


def test_fit_stops_on_a_silent_hidden_layer():
    import scipy.sparse as sp

    from textrelu.errors import DeadNetwork
    from textrelu.nn.batches import ArrayData
    from textrelu.nn.model import SparseRectifierNet
    from textrelu.nn.targets import Target
    from textrelu.nn.train import fit
    from textrelu.settings import Finetuning

    X = sp.random(40, 30, density=0.3, format="csr", dtype="float32", random_state=0)
    X.data[:] = 1
    y = torch.tensor([i % 2 for i in range(40)])
    net = SparseRectifierNet(30, [8], n_outputs=2)
    with torch.no_grad():
        net.layers[0].bias.fill_(-1e6)  # every unit zero for every review
    target = Target("sentiment", "softmax", ["neg", "pos"])
    with pytest.raises(DeadNetwork, match="hidden layer 1 is all zero for 100% of the 10 validation rows"):
        fit(
            net,
            target,
            ArrayData(X[:30], y[:30]),
            ArrayData(X[30:], y[30:]),
            Finetuning(epochs=2),
            quiet=True,
        )


@pytest.mark.parametrize(
    "value, words", [("nan", "finite"), ("inf", "finite"), ("-1", "positive"), ("0", "positive")]
)
def test_a_learning_rate_that_is_no_number_exits_2(tmp_path, made, value, words):
    result = invoke(
        "finetune",
        made["train"],
        "--task",
        "sentiment",
        "--vocab",
        made["vocab"],
        "--out",
        tmp_path / "m.pt",
        "--learning-rate",
        value,
        "-q",
    )
    refused(result, "--learning-rate", words)
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------------------------------------
# item 13 (and 15): bad labels are rejected per row, with file, row and value, up to a share


def stars_file(path: Path, bad: dict) -> Path:
    rows = [(i, review_text(i, i % 2 == 0), bad.get(i, 5 if i % 2 == 0 else 1)) for i in range(N_ROWS)]
    return write_csv(path, rows, header=("id", "text", "stars"))


@pytest.mark.parametrize(
    "value, reason",
    [
        ("Like", "rating 'Like' is not a number"),
        ("1e308", "rating '1e308' is absurd"),
        ("-1e300", "rating '-1e300' is absurd"),
        ("inf", "rating 'inf' is not finite"),
        ("nan", "rating 'nan' is not finite"),
        ("", "no rating"),
    ],
)
def test_a_bad_rating_is_rejected_alone_naming_file_row_and_value(tmp_path, made, value, reason):
    data = stars_file(tmp_path / "stars.csv", {3: value})
    model = tmp_path / "m.pt"
    result = ok(
        invoke(
            "finetune",
            data,
            "--task",
            "rating",
            "--vocab",
            made["vocab"],
            "--out",
            model,
            *made["common"][:-1],
        )
    )
    assert f"{data}, row 4: {reason}" in result.stderr
    metrics = checkpoint.load(model)["metrics"]
    assert metrics["n_bad_labels"]["training"] == 1
    assert all(v == v and abs(v) < 1e6 for row in metrics["history"] for v in row.values())  # finite
    evaluated = json.loads(ok(invoke("evaluate", model, data, "--json", "-q")).stdout)
    assert evaluated["n_bad_labels"] == 1 and evaluated["n"] == N_ROWS - 1 and evaluated["rmse"] < 1e6


def test_a_wrong_label_column_still_fails_loudly(tmp_path, made):
    result = invoke(
        "finetune",
        made["train"],
        "--task",
        "rating",
        "--vocab",
        made["vocab"],
        "--out",
        tmp_path / "m.pt",
        *made["common"],
    )
    refused(result, f"{N_ROWS} of {N_ROWS} training reviews", "rating 'pos' is not a number", "row 1")
    data = stars_file(tmp_path / "stars.csv", {i: "Like" for i in range(10)})
    args = ("finetune", data, "--task", "rating", "--vocab", made["vocab"], *made["common"])
    refused(invoke(*args, "--out", tmp_path / "m.pt"), "10 of 60", "over max_bad_labels 0.1")
    ok(invoke(*args, "--out", tmp_path / "m.pt", "--max-bad-labels", 0.2))
    one_bad = stars_file(tmp_path / "one.csv", {0: "Like"})
    refused(
        invoke(
            "finetune",
            one_bad,
            "--task",
            "rating",
            "--vocab",
            made["vocab"],
            *made["common"],
            "--out",
            tmp_path / "m2.pt",
            "--max-bad-labels",
            0,
        ),
        "1 of 60",
        "row 1: rating 'Like'",
    )
    assert not (tmp_path / "m2.pt").exists()


def test_evaluate_rejects_unknown_classes_per_row(tmp_path, made):
    rows = [(i, review_text(i, i % 2 == 0), "pos" if i % 2 == 0 else "neg") for i in range(N_ROWS)]
    rows[5] = (5, rows[5][1], "meh")
    data = write_csv(tmp_path / "t.csv", rows)
    result = ok(invoke("evaluate", made["model"], data, "--json"))
    assert json.loads(result.stdout)["n_bad_labels"] == 1
    assert "row 6: label 'meh' is not among the training classes" in result.stderr


# ---------------------------------------------------------------------------------------------
# item 14: clear messages, never a traceback


def test_an_unreadable_file_in_a_folder_is_named(tmp_path, made, monkeypatch):
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "a.csv").write_bytes(made["train"].read_bytes())
    (folder / "b.csv").symlink_to(tmp_path / "gone.csv")  # a dangling link: cannot be opened
    refused(
        invoke("score", made["model"], folder, "--out", tmp_path / "p.jsonl", "-q"), "b.csv", "cannot read"
    )
    (folder / "b.csv").unlink()
    (folder / "b.csv").write_bytes(made["train"].read_bytes())
    import textrelu.data.readers as readers

    real_open = readers._File.open

    def denied(self):
        if self.source.endswith("b.csv"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self.local))
        return real_open(self)

    monkeypatch.setattr(readers._File, "open", denied)  # root reads anything: deny it here
    refused(
        invoke("score", made["model"], folder, "--out", tmp_path / "p.jsonl", "-q"),
        "b.csv",
        "Permission denied",
    )
    refused(invoke("build-vocab", folder, "--out", tmp_path / "v.txt", "-q"), "b.csv", "Permission denied")
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "v.txt").exists()
    assert no_temporaries(tmp_path)


@pytest.mark.parametrize(
    "code, words",
    [(errno.ENOSPC, "no space left"), (errno.EACCES, "permission denied"), (errno.EROFS, "read-only")],
)
def test_an_os_error_on_write_is_one_line_naming_the_path(tmp_path, made, monkeypatch, code, words):
    def fails(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(textrelu.io.os, "replace", fails)
    out = tmp_path / "p.jsonl"
    result = refused(invoke("score", made["model"], made["train"], "--out", out, "-q"), words)
    assert f"error: {tmp_path / 'p.'}" in result.stderr  # the path that failed
    assert list(tmp_path.iterdir()) == []  # temporaries removed


def test_debug_shows_the_traceback_of_an_unexpected_error(tmp_path, made, monkeypatch):
    import textrelu.stages.score

    def bug(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(textrelu.stages.score, "prediction_rows", bug)
    args = ("score", made["model"], made["train"], "--out", tmp_path / "p.jsonl", "-q")
    refused(invoke(*args), "unexpected ZeroDivisionError: oops", "TEXTRELU_DEBUG=1", code=1)
    monkeypatch.setenv("TEXTRELU_DEBUG", "1")
    result = invoke(*args)
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)
    assert list(tmp_path.iterdir()) == []


def test_a_binary_or_damaged_vocabulary_is_named(tmp_path, made):
    common = ("finetune", made["train"], "--task", "sentiment", "--out", tmp_path / "m.pt", *made["common"])
    binary = tmp_path / "v.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    refused(invoke(*common, "--vocab", binary), str(binary), "not UTF-8 text")
    edited = tmp_path / "v.txt"
    edited.write_text(made["vocab"].read_text().replace("# ngrams: 1", "# ngrams: x"))
    refused(invoke(*common, "--vocab", edited), str(edited), "damaged vocabulary")
    refused(
        invoke("pretrain", made["train"], "--vocab", binary, "--out", tmp_path / "p.pt", "-q"), "not UTF-8"
    )
    assert not (tmp_path / "m.pt").exists()


class Foreign:
    pass


def edits():
    def drop(key):
        return lambda p: p.pop(key)

    def state(fn):
        def edit(p):
            fn(p["state_dict"])

        return edit

    def shape(sd):
        k = next(iter(sd))
        sd[k] = torch.zeros(3, 3)

    return {
        "no state_dict": drop("state_dict"),
        "no model_args": drop("model_args"),
        "no target": drop("target"),
        "no vocab": drop("vocab"),
        "bad kind": lambda p: p.update(kind="rocket"),
        "a weight missing": state(lambda sd: sd.pop(next(iter(sd)))),
        "a weight of the wrong shape": shape_edit(shape),
        "an extra weight": state(lambda sd: sd.update(extra=torch.zeros(1))),
        "model_args wrong": lambda p: p["model_args"].update(hidden=[99]),
        "model_args unknown": lambda p: p["model_args"].update(colour="red"),
        "target keys": lambda p: p.update(target={"task": "sentiment"}),
        "vocab terms": lambda p: p["vocab"].update(terms=p["vocab"]["terms"][:3]),
        "not a table": lambda p: p.update(state_dict=[1, 2]),
        "a string weight": state(lambda sd: sd.update({next(iter(sd)): "x"})),
    }


def shape_edit(fn):
    return lambda p: fn(p["state_dict"])


@pytest.mark.parametrize("edit", list(edits()))
def test_an_edited_checkpoint_is_named_not_a_traceback(tmp_path, made, edit):
    payload = torch.load(made["model"], weights_only=True)
    edits()[edit](payload)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    refused(invoke("score", bad, made["train"], "--out", tmp_path / "p.jsonl", "-q"), str(bad))
    refused(invoke("evaluate", bad, made["train"], "-q"), str(bad))
    assert not (tmp_path / "p.jsonl").exists()


def test_a_checkpoint_with_python_objects_gets_no_advice_to_unpickle(tmp_path, made):
    payload = torch.load(made["model"], weights_only=True)
    payload["metrics"] = Foreign()
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    result = refused(invoke("score", bad, made["train"], "--out", tmp_path / "p.jsonl", "-q"), str(bad))
    assert "weights_only" not in result.stderr and "trust" not in result.stderr


# ---------------------------------------------------------------------------------------------
# item 11: Ctrl-C and SIGTERM clean up, and stale temporaries go on the next run


@pytest.mark.parametrize("signal_name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_while_scoring_leaves_no_temporaries(tmp_path, made, monkeypatch, signal_name, code):
    import signal

    import textrelu.stages.score

    real = textrelu.stages.score.prediction_rows

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, signal_name))
        return real(*args, **kwargs)

    monkeypatch.setattr(textrelu.stages.score, "prediction_rows", interrupted)
    result = invoke("score", made["model"], made["train"], "--out", tmp_path / "p.jsonl", "-q")
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) or callable(
        signal.getsignal(signal.SIGTERM)
    )


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path, made):
    out = tmp_path / "p.jsonl"
    dead = tmp_path / ".p.jsonl.999999999-abcd1234.tmp"  # no such process
    old_style = tmp_path / ".p.jsonl.abcd1234.tmp"
    alive = tmp_path / f".p.jsonl.{os.getppid()}-abcd1234.tmp"  # a live process's: kept
    other = tmp_path / ".q.jsonl.999999999-abcd1234.tmp"  # another output's: kept
    for p in (dead, old_style, alive, other):
        p.write_bytes(b"x" * 1000)
    ok(invoke("score", made["model"], made["train"], "--out", out, "-q"))
    assert not dead.exists() and not old_style.exists() and alive.exists() and other.exists()


def test_report_refuses_an_output_that_is_its_intro_or_unwritable(tmp_path, made):
    intro = tmp_path / "intro.md"
    intro.write_text("# how\n")
    refused(invoke("report", made["root"], "--out", intro, "--intro", intro), "is the input")
    assert intro.read_text() == "# how\n"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    refused(invoke("report", made["root"], "--out", blocker / "r.md"), "is not a folder")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_for_predictions_and_models(tmp_path, made):
    """/dev/full: every write fails with ENOSPC, as on a full disk."""
    result = refused(invoke("score", made["model"], made["train"], "--out", "/dev/full", "-q"), "/dev/full")
    assert "no space left" in result.stderr
    args = ("finetune", made["train"], "--task", "sentiment", "--vocab", made["vocab"], *made["common"])
    refused(invoke(*args, "--out", "/dev/full"), "/dev/full", "is the disk full?")
    refused(invoke("build-vocab", made["train"], "--out", "/dev/full", "-q"), "/dev/full", "no space left")


def test_images_refuses_to_overwrite_the_pretrained_stack_it_reads(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "pretrained.pt").write_bytes(b"stack")
    (run / "model.pt").write_bytes(b"model")  # a finished run (an unfinished one is resumed this way)
    result = invoke(
        "images", "mnist", "--data-dir", tmp_path, "--pretrained", run / "pretrained.pt", "--out", run
    )
    refused(result, "pretrained.pt", "is the run that made the input")
    assert (run / "pretrained.pt").read_bytes() == b"stack" and (run / "model.pt").read_bytes() == b"model"


# ---------------------------------------------------------------------------------------------
# what a fresh review of this work found (each failed before its fix)


def test_export_refuses_to_overwrite_its_input(tmp_path, made):
    model = tmp_path / "m.pt"
    model.write_bytes(made["model"].read_bytes())
    refused(invoke("export", model, "--out", model), "is the input")
    assert model.read_bytes() == made["model"].read_bytes()


@pytest.mark.parametrize(
    "tables, words",
    [
        ("[pretrain]\nlayers = 1\n", ["[pretrain] needs files"]),
        ("[finetune]\nfiles = ['{train}']\n", ["[finetune] needs task"]),
        ("[evaluate]\nfiles = ['{train}']\n", ["[evaluate] reads the model", "[finetune]"]),
    ],
)
def test_a_pipeline_missing_an_argument_or_a_stage_exits_2_before_a_run_folder(tmp_path, made, tables, words):
    pipeline = write_pipeline(tmp_path / "p.toml", "p", made, tables.format(train=made["train"]))
    refused(invoke("run", pipeline, "--runs-dir", tmp_path / "runs", "-q"), *words)
    assert not (tmp_path / "runs").exists()
    refused(
        invoke(
            "run",
            write_pipeline(tmp_path / "q.toml", "q", made),
            "--runs-dir",
            tmp_path / "runs",
            "--set",
            "pretrain.epochs=1",
        ),
        "has no [pretrain] stage",
    )


def test_resume_checks_a_set_before_saving_it(tmp_path):
    from textrelu.errors import BadInput
    from textrelu.experiments.pipeline import resume

    run = tmp_path / "run"
    run.mkdir()
    table = {
        "datasets": {"d": {"train": ["t.csv"], "test": ["u.csv"]}},
        "task": "sentiment",
        "rows": [{"name": "r", "layers": 1}],
        "seeds": [0],
        "peers": False,
        "out": str(run / "compare"),
        "vocab": str(run / "vocab.txt"),
    }
    config = {"pipeline": "p.toml", "run_dir": str(run), "overrides": [], "stages": {"compare": table}}
    (run / "config.json").write_text(json.dumps(config))
    for override in ("compare.seeds=x", 'compare.seeds=["a"]', "compare.peers=7"):
        with pytest.raises(BadInput, match="seeds must be a list of distinct integers|peers must be"):
            resume(run, overrides=[override], quiet=True)
        assert json.loads((run / "config.json").read_text()) == config  # nothing saved


def test_finetune_on_a_stack_records_the_stack_s_network(tmp_path, made):
    stack = tmp_path / "p.pt"
    ok(
        invoke(
            "pretrain",
            made["train"],
            "--vocab",
            made["vocab"],
            "--out",
            stack,
            "--layers",
            1,
            "--hidden",
            12,
            "--epochs",
            1,
            "-q",
        )
    )
    model = tmp_path / "m.pt"
    ok(
        invoke(
            "finetune",
            made["train"],
            "--task",
            "sentiment",
            "--init",
            stack,
            "--out",
            model,
            "--hidden",
            77,
            "--activation",
            "tanh",
            "--epochs",
            1,
            "-q",
        )
    )
    config = checkpoint.load(model)["config"]
    # the stack's 12 units (from a stack the search holds out one split), not the settings given
    assert (config["hidden"], config["activation"], config["layers"]) == ([12], "relu", 1)


def test_settings_that_would_be_ignored_are_refused(tmp_path, made):
    common = ("--vocab", made["vocab"], "--hidden", 8, "--epochs", 1, "-q")
    refused(
        invoke(
            "finetune",
            made["train"],
            "--task",
            "sentiment",
            "--head",
            "regression",
            "--out",
            tmp_path / "a.pt",
            *common,
        ),
        "--head chooses the output of ratings",
    )
    refused(
        invoke(
            "finetune",
            made["stars"],
            "--task",
            "rating",
            "--head",
            "regression",
            "--label-smoothing",
            0.2,
            "--out",
            tmp_path / "b.pt",
            *common,
        ),
        "--label-smoothing needs classes",
    )


def test_tied_decoders_work_on_a_wide_vocabulary():
    """Wide inputs turn on sparse gradients, which a tied decoder cannot share: it keeps dense ones."""
    import scipy.sparse as sp

    from textrelu.nn.batches import ArrayData
    from textrelu.nn.model import SparseRectifierNet
    from textrelu.nn.train import SPARSE_GRAD_MIN_FEATURES, pretrain_layers
    from textrelu.settings import Pretraining

    X = sp.random(40, SPARSE_GRAD_MIN_FEATURES, density=0.002, format="csr", random_state=0)
    X.data[:] = 1
    net = SparseRectifierNet(SPARSE_GRAD_MIN_FEATURES, (8,))
    history = pretrain_layers(net, ArrayData(X), Pretraining(epochs=1, batch_size=20, tied=True), quiet=True)
    assert len(history) == 1 and not net.layers[0].sparse_grad


def test_a_saved_pipeline_of_integer_labels_scores_from_the_cli(tmp_path):
    from sklearn.pipeline import make_pipeline

    import textrelu

    texts = [review_text(i, i % 2 == 0) for i in range(60)]
    labels = [i % 2 for i in range(60)]
    model = make_pipeline(textrelu.BagOfWords(min_df=1), textrelu.RectifierClassifier(hidden=8, epochs=2))
    textrelu.save(model.fit(texts, labels), tmp_path / "m.pt")
    data = write_csv(tmp_path / "d.csv", [(i, t, str(y)) for i, (t, y) in enumerate(zip(texts, labels))])
    ok(invoke("score", tmp_path / "m.pt", data, "--out", tmp_path / "p.jsonl", "-q"))
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert set(first["probabilities"]) == {"0", "1"}
    ok(invoke("evaluate", tmp_path / "m.pt", data, "-q"))


def test_compare_takes_one_pretrain_file_as_a_path():
    from textrelu.experiments.compare import paths

    args = {"pretrain_files": "one.review", "datasets": {}}
    paths(args, lambda f: f"/abs/{f}")
    assert args["pretrain_files"] == ["/abs/one.review"]


def test_a_prefixed_setting_is_named_as_given():
    from textrelu.errors import BadSetting
    from textrelu.settings import STAGE_SETTINGS

    with pytest.raises(BadSetting, match="pretrain_learning_rate must be positive"):
        STAGE_SETTINGS["images"].resolve({"pretrain_learning_rate": -1})
