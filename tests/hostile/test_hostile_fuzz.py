"""Property-based fuzzing of the readers through `textrelu score` (issue 23).

The property: every input row is scored or rejected with a reason (read = scored + rejected, and
the files say so line by line), or the command fails with exit 2, a one-line message and no output
under its final name; never a traceback, never a hang (Hypothesis' deadline), never a temporary
left behind. Examples are few and small so that the hostile tier stays well under 3 minutes.
"""

import json
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from textrelu.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import N_ROWS, review_text, write_csv  # noqa: E402

FUZZ = settings(
    max_examples=40,
    deadline=5000,  # ms per example: a hang fails, it does not stall the suite
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    rows = [(i, review_text(i, i % 2 == 0), "pos" if i % 2 == 0 else "neg") for i in range(N_ROWS)]
    train = write_csv(root / "train.csv", rows)
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["build-vocab", str(train), "--out", str(root / "v.txt"), "--min-df", "1", "-q"]
        ).exit_code
        == 0
    )
    args = [
        "finetune",
        str(train),
        "--task",
        "sentiment",
        "--vocab",
        str(root / "v.txt"),
        "--out",
        str(root / "m.pt"),
    ]
    assert (
        runner.invoke(app, [*args, "--hidden", "4", "--epochs", "1", "--device", "cpu", "-q"]).exit_code == 0
    )
    return root / "m.pt"


def check_score(model: Path, name: str, data: bytes, rows: int | None = None) -> None:
    """Score `data` written as `name`; assert the property (and read == rows where known)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / name).write_bytes(data)
        out, rejects = tmp / "out" / "p.jsonl", tmp / "out" / "p.rejects.jsonl"
        result = CliRunner().invoke(
            app, ["score", str(model), str(tmp / name), "--out", str(out), "--workers", "0", "-q"]
        )
        assert "Traceback" not in result.output
        assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
        assert isinstance(result.exception, (SystemExit, type(None))), result.exception
        left = sorted(p.name for p in (tmp / "out").iterdir()) if (tmp / "out").exists() else []
        assert not [n for n in left if n.endswith(".tmp")], left
        if result.exit_code == 2:
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
            assert not out.exists() and not rejects.exists()
            return
        summary = json.loads((tmp / "out" / "p.summary.json").read_text())
        predictions = out.read_text(encoding="utf-8").splitlines()
        rejected = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
        assert summary["read"] == summary["scored"] + summary["rejected"]
        assert len(predictions) == summary["scored"] and len(rejected) == summary["rejected"]
        assert all(r["reason"] and r["source"] and r["row"] >= 1 for r in rejected)
        if rows is not None:
            assert summary["read"] == rows


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
VALUE = st.one_of(
    TEXT,
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@FUZZ
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["text", "label", "id", "stars", "x"]), VALUE, max_size=5),
        max_size=12,
    )
)
def test_jsonl_rows_are_scored_or_rejected(model, objects):
    lines = [json.dumps(o) for o in objects]
    data = ("\n".join(lines) + "\n").encode() if lines else b""
    check_score(
        model, "r.jsonl", data, rows=len(lines) if lines and any("text" in o for o in objects) else None
    )


@FUZZ
@given(st.lists(st.lists(TEXT, min_size=1, max_size=4), max_size=12), st.sampled_from([",", "\t"]))
def test_delimited_rows_are_scored_or_rejected(model, rows, delimiter):
    header = delimiter.join(["text", "label"])
    body = "\n".join(delimiter.join(r) for r in rows)
    check_score(model, "r.csv" if delimiter == "," else "r.tsv", (header + "\n" + body).encode())


@FUZZ
@given(
    st.binary(max_size=300),
    st.sampled_from(
        [
            "r.csv",
            "r.tsv",
            "r.jsonl",
            "r.review",
            "r.svmlight",
            "r.csv.gz",
            "r.tar.gz",
            "r.zip",
            "r.parquet",
            "r.txt",
        ]
    ),
)
def test_arbitrary_bytes_never_crash(model, data, name):
    check_score(model, name, data)


@FUZZ
@given(st.binary(max_size=200))
def test_a_valid_file_with_garbage_appended_never_crashes(model, tail):
    head = b"text,label\ngood one,pos\nbad one,neg\n"
    check_score(model, "r.csv", head + tail)
