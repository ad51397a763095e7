"""A good Unix citizen (issue 23, items 9 and 11): stdin and stdout as `-`, links and special files
as outputs, signals (temporaries cleaned up, workers die with their parent, exit 130/143), a
closed pipe, and progress that is a bar only on a terminal.
"""

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import N_ROWS, invoke, ok, review_text, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("unix")
    rows = [(i, review_text(i, i % 2 == 0), "pos" if i % 2 == 0 else "neg") for i in range(N_ROWS)]
    train = write_csv(root / "train.csv", rows)
    ok(invoke("build-vocab", train, "--out", root / "v.txt", "--min-df", 1, "-q"))
    ok(
        invoke(
            "finetune",
            train,
            "--task",
            "sentiment",
            "--vocab",
            root / "v.txt",
            "--out",
            root / "m.pt",
            "--hidden",
            4,
            "--epochs",
            1,
            "--device",
            "cpu",
            "-q",
        )
    )
    return {"root": root, "train": train, "model": root / "m.pt"}


def spawn(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "textrelu", *map(str, args)],
        env=env,
        stdout=kwargs.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------
# item 9: - for stdin and stdout; links and special files


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "csv", "tsv"])
def test_score_reads_stdin_and_writes_stdout(made, kind):
    texts = [review_text(i, i % 2 == 0) for i in range(7)]
    if kind.startswith("jsonl"):
        data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
        data += b'{"text": ""}\n'  # one reject
    else:
        sep = "," if kind == "csv" else "\t"
        data = ("text" + sep + "label\n" + "".join(f"{t}{sep}pos\n" for t in texts) + f"{sep}pos\n").encode()
    if kind.endswith(".gz"):
        data = gzip.compress(data)
    result = ok(invoke("score", made["model"], "-", "--out", "-", input=data))
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds only predictions
    assert [r["row"] for r in rows] == list(range(1, 8)) and {r["source"] for r in rows} == {"<stdin>"}
    assert "read 8 = scored 7 + rejected 1" in result.stderr and "row 8: " in result.stderr


def test_score_to_stdout_writes_no_files_beside_it(made, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = ok(invoke("score", made["model"], made["train"], "--out", "-", "-q"))
    assert len(result.stdout.splitlines()) == N_ROWS and result.stderr == ""
    assert list(tmp_path.iterdir()) == []
    ok(invoke("score", made["model"], made["train"], "--out", "-", "--rejects", tmp_path / "r.jsonl", "-q"))
    assert (tmp_path / "r.jsonl").read_text() == ""


def test_output_through_a_link_replaces_its_target_and_keeps_the_link(made, tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "p.jsonl"
    target.write_text("old\n")
    link = tmp_path / "p.jsonl"
    link.symlink_to(target)
    ok(invoke("score", made["model"], made["train"], "--out", link, "-q"))
    assert link.is_symlink() and len(target.read_text().splitlines()) == N_ROWS
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_output_to_a_fifo_is_streamed(made, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    result = ok(invoke("score", made["model"], made["train"], "--out", fifo, "-q"))
    out, _ = reader.communicate(timeout=30)
    assert len(out.splitlines()) == N_ROWS and result.stdout == ""  # counts went to stderr (quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]  # no rejects or summary beside it


def test_a_closed_pipe_stops_quietly_with_141(made, tmp_path):
    big = write_csv(tmp_path / "big.csv", [(i, review_text(i, True), "pos") for i in range(20000)])
    process = spawn("score", made["model"], big, "--out", "-", "-q")
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err
    assert b"Traceback" not in err


# ---------------------------------------------------------------------------------------------
# item 11: signals


def big_corpus(path: Path, rows: int = 150_000) -> Path:
    words = "great awful pan knife love hate the a of broken perfect kettle toaster useless".split()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(rows):
            w.writerow([" ".join(words[(i * 7 + k * 3) % len(words)] for k in range(30)), "pos"])
    return path


def children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_build_vocab_workers_die_with_their_parent(tmp_path, sig, code):
    data = big_corpus(tmp_path / "big.csv")
    process = spawn("build-vocab", data, "--out", tmp_path / "v.txt", "--ngrams", 3, "--workers", 2, "-q")
    deadline = time.monotonic() + 60
    while len(workers := children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) >= 2, "the workers did not start"
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "workers outlived their parent"
    assert b"Traceback" not in err
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["big.csv"] or (sig == signal.SIGKILL and "v.txt" not in leftovers), leftovers


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_score_waits_on_input_removes_its_temporaries(made, tmp_path, sig, code):
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    process = spawn("score", made["model"], fifo, "--out", tmp_path / "out" / "p.jsonl", "-q")
    with open(fifo, "w") as writer:  # half an input, then nothing: score waits on the read
        writer.write("text,label\ngreat pan,pos\n")
        writer.flush()
        deadline = time.monotonic() + 60
        while not list((tmp_path / "out").glob(".*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list((tmp_path / "out").glob(".*.tmp")), "score made no temporaries"
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert list((tmp_path / "out").iterdir()) == [] and b"Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_finalizer_is_not_lost(sig):
    """A SIGTERM (or SIGINT) whose handler runs inside a __del__ (where the garbage collector
    happened to run) would raise there, where Python prints the exception and drops it; once the
    test above hung so, in a ZipFile's __del__. The handler sends the signal again, to land
    outside the finalizer."""
    from textrelu.cli import on_signal
    from textrelu.errors import Interrupted

    class Finalized:
        def __del__(self):
            on_signal(sig, sys._getframe())

    previous = signal.signal(sig, on_signal)
    try:
        with pytest.raises(Interrupted if sig == signal.SIGTERM else KeyboardInterrupt):
            Finalized()  # dropped at once: its __del__ runs the handler
            time.sleep(30)  # the signal sent again interrupts this
    finally:
        signal.signal(sig, previous)


# ---------------------------------------------------------------------------------------------
# progress: a bar only on a terminal, else a log line every few seconds


def test_progress_off_a_terminal_is_log_lines_with_count_rate_and_eta(capsys, monkeypatch):
    import textrelu.progress as progress

    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    for _ in progress.bar(range(3), total=3, desc="scoring", unit="reviews"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert (
        lines[-1].startswith("scoring: 3/3 reviews, ") and "reviews/s" in lines[-1] and "ETA 0s" in lines[-1]
    )
    assert "\r" not in "".join(lines)
    for _ in progress.bar(range(3), desc="x", quiet=True):
        pass
    assert capsys.readouterr().err == ""
