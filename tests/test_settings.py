"""Settings are declared once (textrelu/settings.py) and everything else derives from them."""

import ast
import dataclasses
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textrelu.cli import app
from textrelu.errors import BadInput, BadSetting
from textrelu.settings import (
    STAGE_SETTINGS,
    Engine,
    Finetuning,
    Group,
    Images,
    Net,
    Pretraining,
    Reading,
    Scoring,
    Settings,
    Terms,
)

PACKAGE = Path(__file__).resolve().parents[1] / "textrelu"
CLASSES = (Reading, Terms, Net, Pretraining, Finetuning, Scoring, Engine, Images)
SETTING_NAMES = {f.name for cls in CLASSES for f in dataclasses.fields(cls)}
# Parameters that share a setting's name but are another thing, with the reason.
NOT_THE_SETTING = {
    ("nn/model.py", "head"): "the network's output head (softmax, regression, expectation); the "
    "setting chooses the rating head",
    ("nn/train.py", "batch_size"): "rows evaluated at a time, which changes no result; the setting "
    "is the training minibatch",
    ("data/readers.py", "size"): "a file object's read size (io's signature); the setting is the "
    "vocabulary's",
    ("data/readers.py", "format"): "the format of the files read; the setting is the format of score's "
    "shards on Ray",
    ("cli.py", "format"): "export's model format (onnx); the setting is the format of score's shards on Ray",
}


def neutral(node) -> bool:
    """A default that means 'not given' or 'off' (None, False, 0), or a setting's own default
    (Net.activation and the like), not a value of its own."""
    if isinstance(node, ast.Constant):
        return node.value in (None, False, 0) and not isinstance(node.value, str)
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in {cls.__name__ for cls in CLASSES}
    )


def test_each_setting_default_is_written_once():
    """Outside settings.py no function gives a parameter named as a setting a default of its
    own: a setting's default lives in its dataclass field alone."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "settings.py":
            continue
        where = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                if (
                    arg.arg in SETTING_NAMES
                    and not neutral(default)
                    and (where, arg.arg) not in NOT_THE_SETTING
                ):
                    found.append(f"{where}:{node.lineno} {node.name}({arg.arg}={ast.unparse(default)})")
    assert not found, "defaults of settings written outside settings.py: " + "; ".join(found)


def test_resolve_checks_every_key_and_flat_gives_them_back():
    s = STAGE_SETTINGS["finetune"]
    r = s.resolve({"layers": 2, "hidden": "300,200", "dropout": 0.2, "learning_rate": 1})
    assert r.net.sizes([1000]) == [300, 200] and r.training.dropout == 0.2
    assert r.training.learning_rate == 1.0 and isinstance(r.training.learning_rate, float)
    flat = s.flat(r)
    assert set(flat) == set(s.keys) and flat["dropout"] == 0.2 and flat["epochs"] == 30
    assert s.resolve(flat) == r  # a saved config builds the same settings again


@pytest.mark.parametrize(
    "given, message",
    [
        ({"dropuot": 0.2}, "unknown setting 'dropuot'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"epochs": 2.5}, "epochs must be int, got 2.5"),
        ({"epochs": True}, "epochs must be int, got True"),
        ({"learning_rate": math.nan}, "learning_rate must be a finite number, got nan"),
        ({"learning_rate": math.inf}, "learning_rate must be a finite number"),
        ({"learning_rate": 0}, "learning_rate must be positive"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of adam, sgd"),
        ({"activation": "sigmoid"}, "activation must be relu, softplus, tanh or softplus:A"),
        ({"hidden": "1000,x"}, "hidden must be a size or sizes"),
        ({"layers": 3, "hidden": "10,20"}, "hidden lists 2 sizes for 3 layers"),
        ({"text_column": 3}, "text_column must be str or none, got 3"),
    ],
)
def test_bad_settings_name_the_key(given, message):
    with pytest.raises(BadInput, match=message):
        STAGE_SETTINGS["finetune"].resolve(given, "[finetune] ")


def test_a_bad_setting_says_where_it_was_given():
    with pytest.raises(BadSetting) as err:
        STAGE_SETTINGS["pretrain"].resolve({"noise": 1.5}, "p.toml: [pretrain] ")
    assert str(err.value) == "p.toml: [pretrain] noise must be in [0, 1), got 1.5"
    assert (err.value.key, err.value.where) == ("noise", "p.toml: [pretrain] ")


def test_images_pretraining_follows_fine_tuning_unless_set():
    s = STAGE_SETTINGS["images"]
    assert s.defaults()["pretrain_learning_rate"] is None and s.defaults()["pretrain_epochs"] == 10
    r = s.resolve({"learning_rate": 0.05, "l1": 0.0})
    assert (r.pretraining.learning_rate, r.pretraining.l1, r.pretraining.batch_size) == (0.05, 0.0, 10)
    assert r.pretraining.epochs == 10 and r.training.epochs == 30
    r = s.resolve({"learning_rate": 0.05, "pretrain_learning_rate": 0.01})
    assert (r.training.learning_rate, r.pretraining.learning_rate) == (0.05, 0.01)
    assert "nb_weights" not in s.keys and "valid_fraction" not in s.keys


def test_a_key_declared_twice_in_one_stage_is_refused():
    with pytest.raises(ValueError, match="declared by two groups"):
        Settings(Group("training", Finetuning()), Group("scoring", Scoring()))


@pytest.mark.parametrize(
    "stage, command",
    [
        ("build_vocab", "build-vocab"),
        ("pretrain", "pretrain"),
        ("finetune", "finetune"),
        ("evaluate", "evaluate"),
        ("score", "score"),
        ("images", "images"),
    ],
)
def test_every_setting_of_a_stage_is_an_option_of_its_command(stage, command):
    text = " ".join(CliRunner().invoke(app, [command, "--help"], terminal_width=200).stdout.split())
    for key in STAGE_SETTINGS[stage].keys:
        assert f"--{key.replace('_', '-')}" in text, f"{command} --help lacks --{key}"
    if stage == "finetune":  # each default beside its own option
        for option, default in (("epochs", 30), ("dropout", 0.5), ("learning-rate", 0.001)):
            after = re.split(rf"--{option}\b", text, maxsplit=1)[1]
            assert re.search(r"\[default: ([^\]]*)\]", after).group(1) == str(default), option


def test_a_bad_option_exits_2_naming_the_option(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            str(tmp_path / "x.csv"),
            "--task",
            "sentiment",
            "--out",
            str(tmp_path / "m.pt"),
            "--dropout",
            "1.5",
        ],
    )
    assert result.exit_code == 2 and "--dropout must be in [0, 1), got 1.5" in result.output
    assert not (tmp_path / "m.pt").exists()
