"""The Ray engine (`--engine ray`, textrelu/stages/ray_engine.py, textrelu/ray.py) against the
local commands: the same rows, rejects and vocabulary, on one local Ray instance (2 CPUs) that
the module starts once and shuts down at the end.

The inputs are a folder of a CSV, a JSON Lines file with bad rows, a Parquet file and a README
(skipped), and a second CSV given on its own; the models are tiny (16 hidden units)."""

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.pipeline import make_pipeline

import textrelu
import textrelu.ray
from textrelu.stages import ray_engine

sys.path.insert(0, str(Path(__file__).parent))
from corpus import N_ROWS, invoke, ok, review_text, write_csv  # noqa: E402

TINY = dict(hidden=16, epochs=3, learning_rate=0.01, random_state=0, device="cpu")
EXTRA = "pip install 'textrelu[ray]'"


def needs_ray():
    try:
        ray_engine.need_ray()
    except textrelu.errors.BadInput:
        pytest.skip(f"the Ray tests need the extra: {EXTRA}")


@pytest.fixture(scope="module")
def ray_instance():
    needs_ray()
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
        runtime_env=ray_engine.shipped(),  # as the engine starts it: the workers run this textrelu
    )
    yield ray
    ray.shutdown()


def text(i: int) -> str:
    return review_text(i, i % 2 == 0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    folder = root / "reviews"
    folder.mkdir()
    write_csv(folder / "a.csv", [(f"a{i}", text(i), "") for i in range(25)])
    with open(folder / "b.jsonl", "w", encoding="utf-8") as f:
        for i in range(25, 45):
            f.write(json.dumps({"id": f"b{i}", "text": text(i) + " café"}, ensure_ascii=False) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"id": "empty", "text": "  "}) + "\n")
        f.write(json.dumps({"text": text(3)}) + "\n")  # no id: source:row
    pq.write_table(pa.table({"review": [text(i) for i in range(45, 60)]}), folder / "c.parquet")
    (folder / "README.md").write_text("not data\n")
    single = write_csv(root / "single.csv", [(f"s{i}", text(i), "") for i in range(7)])
    return {"root": root, "files": [folder, single]}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    texts = [text(i) for i in range(N_ROWS)]
    labels = ["positive" if i % 2 == 0 else "negative" for i in range(N_ROWS)]
    stars = [(5, 1, 4, 2)[i % 4] for i in range(N_ROWS)]
    paths = {}
    for name, est, y in (
        ("sentiment", textrelu.RectifierClassifier(**TINY), labels),
        ("rating", textrelu.RectifierRegressor(**TINY), stars),
    ):
        pipe = make_pipeline(textrelu.BagOfWords(size=100, min_df=1, ngrams=2), est).fit(texts, y)
        paths[name] = out / f"{name}.pt"
        textrelu.save(pipe, paths[name])
    return paths


def lines(paths) -> list[dict]:
    return [
        json.loads(line) for path in paths for line in Path(path).read_text(encoding="utf-8").splitlines()
    ]


def by_key(rows: list[dict]) -> dict:
    keyed = {(r["source"], r["row"]): r for r in rows}
    assert len(keyed) == len(rows), "a row is in two shards"
    return keyed


def assert_same_rows(ray_rows: list[dict], local_rows: list[dict]) -> None:
    """The same (source, row) keys, ids and labels; probabilities and ratings within 1e-6."""
    ours, theirs = by_key(ray_rows), by_key(local_rows)
    assert ours.keys() == theirs.keys()
    for key, mine in ours.items():
        local = theirs[key]
        assert mine.keys() == local.keys(), key
        assert (mine["id"], mine.get("label")) == (local["id"], local.get("label")), key
        if "rating" in local:
            assert abs(mine["rating"] - local["rating"]) <= 1e-6, key
        else:
            assert mine["probabilities"].keys() == local["probabilities"].keys(), key
            for c, p in local["probabilities"].items():
                assert abs(mine["probabilities"][c] - p) <= 1e-6, key


def local_score(model, files, folder: Path):
    out = folder / "local.jsonl"
    ok(invoke("score", model, *files, "--out", out, "-q"))
    return lines([out]), lines([folder / "local.rejects.jsonl"])


def shard_rows(out: Path, shard_format: str) -> list[dict]:
    if shard_format == "jsonl":
        return lines(sorted(out.glob("part-*.jsonl")))
    return [row for path in sorted(out.glob("part-*.parquet")) for row in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize("task, shard_format", [("sentiment", "jsonl"), ("rating", "parquet")])
def test_ray_scores_every_row_as_the_local_command(
    task, shard_format, ray_instance, inputs, models, tmp_path, monkeypatch
):
    monkeypatch.setattr(ray_engine, "SHARD_ROWS", 16)  # several shards from 70 rows
    model, files = models[task], inputs["files"]
    out = tmp_path / "scored"
    ray_args = ["--engine", "ray", "--batch-size", 8, "--format", shard_format, "-q"]
    ok(invoke("score", model, *files, "--out", out, *ray_args))
    local_rows, local_rejects = local_score(model, files, tmp_path)
    assert_same_rows(shard_rows(out, shard_format), local_rows)
    rejects = lines(sorted(out.glob("rejects-*.jsonl")))
    key = lambda r: (r["source"], r["row"])  # noqa: E731
    assert sorted(rejects, key=key) == sorted(local_rejects, key=key)
    assert {r["reason"].split(":")[0] for r in rejects} == {"malformed JSON", "empty text"}

    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["read"], manifest["scored"], manifest["rejected"]) == (
        len(local_rows) + len(local_rejects),
        len(local_rows),
        len(local_rejects),
    )
    assert sum(manifest["parts"].values()) == manifest["scored"] and len(manifest["parts"]) > 1
    assert sum(manifest["rejects"].values()) == manifest["rejected"]
    folder, single = manifest["inputs"]
    assert [Path(f["path"]).name for f in folder["files"]] == ["a.csv", "b.jsonl", "c.parquet"]
    assert [(f["read"], f["rejected"]) for f in folder["files"]] == [(25, 0), (23, 2), (15, 0)]
    assert (single["read"], single["scored"]) == (7, 7)
    assert manifest["format"] == shard_format
    assert not list(tmp_path.glob(".scored.*")), "the temporary folder is left"


def test_a_file_system_uri_reads_as_the_local_path(ray_instance, inputs, models, tmp_path):
    """A folder given as a URI (file:// here; s3:// and the like go the same pyarrow way): the
    same rows and rejects, named by the URI."""
    folder = inputs["files"][0]
    uri = folder.resolve().as_uri()

    def named(row):
        return {k: v.replace(str(folder), uri, 1) if k in ("source", "id") else v for k, v in row.items()}

    out = tmp_path / "scored"
    ok(invoke("score", models["sentiment"], uri, "--out", out, "--engine", "ray", "-q"))
    local_rows, local_rejects = local_score(models["sentiment"], [folder], tmp_path)
    assert_same_rows(lines(sorted(out.glob("part-*.jsonl"))), [named(r) for r in local_rows])
    key = lambda r: (r["source"], r["row"])  # noqa: E731
    rejects = sorted(lines(sorted(out.glob("rejects-*.jsonl"))), key=key)
    assert rejects == sorted((named(r) for r in local_rejects), key=key)
    args = ["--size", 40, "--min-df", 2, "-q"]
    ok(invoke("build-vocab", folder, *args, "--out", tmp_path / "local.txt"))
    ok(invoke("build-vocab", uri, *args, "--out", tmp_path / "ray.txt", "--engine", "ray"))
    assert (tmp_path / "ray.txt").read_bytes() == (tmp_path / "local.txt").read_bytes()


def test_a_cut_parquet_file_fails_the_job_naming_it(ray_instance, inputs, models, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.table({"text": [text(i) for i in range(10)]}), folder / "part-0.parquet")
    whole = (folder / "part-0.parquet").read_bytes()
    (folder / "part-1.parquet").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "scored"
    result = invoke("score", models["sentiment"], folder, "--out", out, "--engine", "ray", "-q")
    assert result.exit_code == 2, result.output
    assert "part-1.parquet: not a readable Parquet file" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".scored.*"))


def test_ray_build_vocab_writes_the_same_file(ray_instance, inputs, tmp_path):
    args = [*inputs["files"], "--ngrams", 2, "--size", 40, "--min-df", 2, "-q"]  # ties at the cut
    ok(invoke("build-vocab", *args, "--out", tmp_path / "local.txt"))
    ok(invoke("build-vocab", *args, "--out", tmp_path / "ray.txt", "--engine", "ray"))
    assert (tmp_path / "ray.txt").read_bytes() == (tmp_path / "local.txt").read_bytes()


def test_python_score_of_a_ray_dataset(ray_instance, models):
    from textrelu.stages.score import Scorer

    texts = [text(i) for i in range(12)] + ["", None]
    ds = ray_instance.data.from_items([{"key": i, "text": t} for i, t in enumerate(texts)])
    rows = sorted(
        textrelu.ray.score(ds, models["sentiment"], batch_size=5).take_all(), key=lambda r: r["key"]
    )
    local = [json.loads(line) for line in Scorer(models["sentiment"], "cpu")(_reviews(texts[:12]))]
    for row, want in zip(rows, local):
        assert row["label"] == want["label"] and row["reason"] is None
        assert all(abs(row["probabilities"][c] - p) <= 1e-6 for c, p in want["probabilities"].items())
    assert [(r["label"], r["reason"]) for r in rows[12:]] == [(None, "empty text"), (None, "missing text")]


def _reviews(texts):
    from textrelu.data.readers import Review

    return [Review(t, None, None, None, "", 0, "") for t in texts]


def test_the_output_folder_may_not_hold_an_input(inputs, models):
    needs_ray()
    folder = inputs["files"][0]
    result = invoke("score", models["sentiment"], folder, "--out", folder, "--engine", "ray", "-q")
    assert result.exit_code == 2 and "refusing to replace an input" in result.stderr


def test_ray_options_need_the_ray_engine(inputs, models, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke("score", models["sentiment"], *inputs["files"], "--out", out, "--format", "parquet")
    assert result.exit_code == 2 and "--engine ray" in result.stderr and not out.exists()


def test_without_ray_the_engine_says_how_to_get_it(inputs, models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    for args in (
        ("score", models["sentiment"], *inputs["files"], "--out", tmp_path / "scored"),
        ("build-vocab", *inputs["files"], "--out", tmp_path / "vocab.txt"),
    ):
        result = invoke(*args, "--engine", "ray")
        assert result.exit_code == 2, result.output
        assert EXTRA in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())
