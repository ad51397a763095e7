"""Writing outputs: atomic files, checked before any work starts, and kept inside a folder.

- `atomic_path`: a file appears under its final name only once it is complete. A link or a special
  file (a FIFO, /dev/stdout) is written through instead: the link's target is replaced atomically,
  a special file is streamed into. Temporaries left by a killed run (`.NAME.PID-HEX.tmp`) are
  removed by the next write of the same output.
- `check_outputs`: before reading anything, refuse an output that is an input or another output,
  sits in a folder that cannot be made or written, or is a folder.
- `inside`: refuse a path that leaves a folder (a run folder's outputs).
- `atomic_folder` and `check_output_folder`: the same for an output folder of shards.
"""

import os
import re
import secrets
import shutil
import stat
import sys
from contextlib import contextmanager
from pathlib import Path

from textrelu.errors import BadInput

# A file name's slice ("reviews.csv[:100]") and an archive's member glob ("data.tar.gz::*.csv"):
# what the readers accept beside a path (data/readers.py), stripped to find the file itself.
_SLICE = re.compile(r"\[(-?\d*):(-?\d*)\]$")
STDIO = "-"  # stdin as an input, stdout as an output


def _temporaries(path: Path):
    """The temporaries of `path` that atomic_path may have left: (file, pid that made it or None)."""
    prefix, folder = f".{path.name}.", path.parent
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp"):
            middle = name[len(prefix) : -len(".tmp")]
            pid = middle.split("-", 1)[0]
            yield folder / name, int(pid) if pid.isdigit() and "-" in middle else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def remove_stale(path) -> list:
    """Remove the temporaries of `path` whose process is gone (a run killed before it could clean
    up, by SIGKILL or a power cut); those of a running process are left. Returns what went."""
    removed = []
    for tmp, pid in _temporaries(Path(path)):
        if pid is None or (pid != os.getpid() and not _alive(pid)):
            try:
                shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else os.remove(tmp)
                removed.append(tmp)
            except OSError:
                pass
    return removed


def is_special(path) -> bool:
    """A path that exists and is not a regular file or a folder: a FIFO, a character device."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success rename it over `path`, else remove it.

    The temporary file is made as open() makes files (mode 0666 less the process's umask), so
    the result has the usual mode without reading the umask. A symbolic link is followed: its
    target is replaced, the link stays. A special file (FIFO, /dev/stdout) is yielded as itself,
    to be streamed into."""
    path = Path(path)
    if is_special(path):
        with named_errors(path):
            yield str(path)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        with named_errors(path):
            yield str(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextmanager
def atomic_folder(path, marker: str):
    """Yield a fresh temporary folder beside `path`; on success it becomes `path`, else it is
    removed. An earlier output folder there (one holding `marker`, see `check_output_folder`)
    is moved aside first and removed once the new one is in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        with named_errors(path):
            yield tmp
        if (path / marker).is_file():
            old = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            if path.is_dir():
                path.rmdir()  # empty (check_output_folder): nothing is lost
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_folder(what: str, path, marker: str, inputs=()) -> None:
    """Check, before any work, that `atomic_folder` may write the folder `path`: it is missing,
    empty or an earlier output (it holds `marker`), holds no input, and its parent is writable."""
    path = Path(path)
    if os.fspath(path) == STDIO or is_special(path) or (path.exists() and not path.is_dir()):
        raise BadInput(f"{what} {path} must be a folder (it is written as shards)")
    for spec in inputs:
        source = input_file(spec) if spec is not None else None
        if source is None or not source.exists():
            continue
        real, folder = Path(os.path.realpath(source)), Path(os.path.realpath(path))
        if real == folder or folder in real.parents:
            raise BadInput(f"{what} {path} holds the input {spec}: refusing to replace an input")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise BadInput(
            f"{what} {path} is a folder that is not empty and holds no {marker}: "
            "refusing to replace it; give a new or empty folder"
        )
    problem = _writable_folder(path)
    if problem:
        raise BadInput(f"cannot write {what} {path}: {problem}")


@contextmanager
def named_errors(path):
    """An OSError without a file name (a failed write or flush: ENOSPC) raised as one naming `path`,
    so that the message says which output could not be written."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None


@contextmanager
def output_file(path, mode: str = "wb"):
    """An open output: stdout for `-` (streamed, left open), else the file through `atomic_path`
    (a special file or a link's target is written through)."""
    if os.fspath(path) == STDIO:
        stream = sys.stdout.buffer if "b" in mode else sys.stdout
        with named_errors("stdout"):
            yield stream
            stream.flush()
        return
    with atomic_path(path) as tmp, open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        yield f


def input_file(spec) -> Path | None:
    """The file or folder an input names, without a reader's slice or member glob; None for stdin."""
    text = os.fspath(spec)
    if text == STDIO:
        return None
    match = _SLICE.search(text)
    if match and not os.path.exists(text):
        text = text[: match.start()]
    if "::" in text and not os.path.exists(text):
        text = text.split("::", 1)[0]
    return Path(text)


def _same(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _writable_folder(path: Path) -> str | None:
    """Why no file can be made in `path`'s folder, or None: the nearest folder that exists must be
    a folder we can write to (the missing ones below it are made then)."""
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            return f"its folder {folder} is a broken link"
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"the folder {probe} is not writable"
    return None


def check_outputs(outputs: dict, inputs=()) -> None:
    """Check, before any work, that each output (option name -> path; None is skipped) can be
    written and overwrites nothing it must not: an input (resolved, the same file under another
    name too), another output, a folder. `-` (stdout) and special files are not checked for place."""
    named = [(what, Path(os.fspath(p))) for what, p in outputs.items() if p is not None]
    files = [(f, input_file(f)) for f in inputs if f is not None]
    for i, (what, out) in enumerate(named):
        if os.fspath(out) == STDIO:
            continue
        for spec, source in files:
            if source is not None and source.exists() and _same(out, source):
                raise BadInput(f"{what} {out} is the input {spec}: refusing to overwrite an input")
        for other_what, other in named[:i]:
            if os.fspath(other) != STDIO and _same(out, other):
                raise BadInput(f"{what} {out} is also the {other_what}: give them different files")
        if is_special(out):
            continue
        if out.is_dir():
            raise BadInput(f"{what} {out} is a folder; give a file name")
        problem = _writable_folder(out)
        if problem:
            raise BadInput(f"cannot write {what} {out}: {problem}")


def inside(folder, path, what: str) -> Path:
    """`path` resolved, if it lies inside `folder` (links followed); else BadInput."""
    root, resolved = Path(os.path.realpath(folder)), Path(os.path.realpath(path))
    if resolved != root and root not in resolved.parents:
        raise BadInput(f"{what} {path} is outside the run folder {folder}; refusing to write there")
    return resolved


def plain(value):
    """A config value as JSON-able plain data: paths and other objects become strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)
