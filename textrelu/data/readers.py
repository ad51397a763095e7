"""Read review corpora into `Review` records, one at a time.

Every reader streams: memory stays flat however large the file or archive is (the one exception is
a trailing slice such as ``[-200:]``, which holds that many records). A row that cannot be used does
not stop the read: it becomes a `Reject` naming its source, its row and why, in order among the
reviews, so a caller can count and report what was dropped.

Path syntax accepted by `iter_records` and `read_reviews`::

    reviews.csv                          a file (format from its extension, or sniffed)
    aclImdb/train                        a folder, read recursively in sorted order
    data.tar.gz                          every member of a known format, in archive order
    data.tar.gz::books/*.review          members whose path matches an fnmatch glob (* crosses /)
    positive.review[:800]                any of the above, then a python slice over its records

Formats (`FORMATS`): csv, tsv and jsonl (JSON Lines, also .json) with a text column and an optional
label column; parquet; amazon (the Blitzer multi-domain ``<review>`` pseudo-XML); imdb (the aclImdb
``{train,test}/{pos,neg,unsup}/<id>_<rating>.txt`` layout, one file a review); processed (Blitzer's
processed_acl ``feature:count ... #label#:positive`` lines); svmlight (``label idx:val ...``).
A plain ``.gz`` on a line-based file (``reviews.csv.gz``) is read through gzip.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import orjson

from textrelu.errors import BadInput

FORMATS = ("csv", "tsv", "jsonl", "parquet", "amazon", "imdb", "processed", "svmlight")

__all__ = ["FORMATS", "Reject", "Review", "detect_format", "iter_records", "read_reviews"]


@dataclass(slots=True)
class Review:
    text: str | None  # raw text; None when the format gives terms instead
    terms: list[str] | None  # pre-extracted features (processed, svmlight); None for raw text
    label: str | None  # raw label string, or None when unlabeled
    rating: float | None  # numeric rating where the format has one
    source: str  # the file, or "archive.tar.gz::member/path" for an archive member
    row: int  # 1-based record number within source (IMDB: ordinal among the path's records)
    id: str  # the record's own id if the format has one, else f"{source}:{row}"


@dataclass(slots=True)
class Reject:
    source: str
    row: int  # 1-based record number, numbered like Review.row
    reason: str


Record = Review | Reject

TEXT_COLUMNS = ("text", "review", "review_text", "sentence", "content", "body")
LABEL_COLUMNS = ("label", "sentiment", "polarity", "rating", "stars", "score")
RATING_COLUMNS = ("rating", "stars", "score")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".svmlight": "svmlight",
    ".svm": "svmlight",
    ".libsvm": "svmlight",
}
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_FORMAT_HINT = (
    "expected one of .csv .tsv .jsonl .json .parquet .review .svmlight .svm .libsvm, "
    "an aclImdb folder, or a .tar.gz of them"
)

_SLICE = re.compile(r"\[(-?\d*):(-?\d*)\]$")
# group 1 is the id ("train/pos/123_8"), then label folder and rating; the split folder is optional
# so that a folder holding pos/neg/unsup directly is read too.
_IMDB_PATH = re.compile(r"(?:^|/)((?:(?:train|test)/)?(pos|neg|unsup)/\d+_(\d+))\.txt$")
_PROCESSED_LINE = re.compile(r"^\S+:\d+( \S+:\d+)* #label#:\S+$")
_PROCESSED_PREFIX = re.compile(r"^\S+:\d+( \S+:\d+)*$")
_AMAZON_FIELD = re.compile(rb"<(unique_id|rating|title|review_text)>(.*?)</\1>", re.S)
# surrogateescape turns each undecodable byte into one of these code points
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# Files that sit beside the data in the corpora we know; skipped when a format is forced on a
# whole folder or archive (in "auto" mode they are skipped anyway, being of no known format).
_NOT_DATA = re.compile(
    r"(^|/)(readme[^/]*|[^/]*\.md|[^/]*\.vocab|imdber\.txt|urls_[^/]*\.txt|[^/]*\.feat|\.[^/]*)$"
)
_SNIFF_BYTES = 1 << 16
_UNDECODABLE_REASON = "undecodable bytes (not UTF-8)"

# A long review must not become a "field larger than field limit" reject. The limit is global to
# the csv module; raising it affects nobody adversely.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


# --------------------------------------------------------------------------------------------
# Public API


def iter_records(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    format: str = "auto",
) -> Iterator[Review | Reject]:
    """Stream the records of one file, folder or archive (see the module docstring for the syntax).

    Bad paths, an unknown format and bad column names raise `BadInput`; unreadable rows are yielded
    as `Reject`s. The path is checked at once; the records are read lazily.
    """
    if format != "auto" and format not in FORMATS:
        raise BadInput(f"unknown format {format!r}: expected 'auto' or one of {', '.join(FORMATS)}")
    spec = _parse_spec(path)
    if spec.kind == "file":
        if spec.glob is not None:
            raise BadInput(f"{spec.display}: '::' selects members of an archive or folder, not of a file")
        if format == "auto":
            # Fail now rather than on first next(): a mistyped file name should not look like an empty corpus.
            with _File(spec.display, _detect_name(spec.path), spec.path).open() as stream:
                if _detect(spec.path.name, _detect_name(spec.path), stream)[0] is None:
                    raise BadInput(f"cannot tell the format of {spec.display}: {_FORMAT_HINT}")
    records = _records(spec, text_column, label_column, format)
    if spec.start is not None or spec.stop is not None:
        records = _slice(records, spec.start, spec.stop)
    return records


def read_reviews(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    text_column: str | None = None,
    label_column: str | None = None,
    format: str = "auto",
) -> tuple[list[Review], list[Reject]]:
    """All records of one path or several, in order, split into reviews and rejects."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    reviews: list[Review] = []
    rejects: list[Reject] = []
    for path in paths:
        for record in iter_records(path, text_column, label_column, format):
            (reviews if isinstance(record, Review) else rejects).append(record)
    return reviews, rejects


def detect_format(path: str | os.PathLike) -> str:
    """The format (one of `FORMATS`) of a file, or of the first readable file of a folder or archive."""
    spec = _parse_spec(path)
    # An aclImdb folder needs no special case: its first data file (sorted order) is an IMDB review.
    files = {"file": _single_file, "folder": _folder_files, "archive": _archive_files}[spec.kind](spec)
    for file in files:
        with file.open() as stream:
            fmt = _detect(file.name, file.detect_name, stream)[0]
        if fmt is not None:
            return fmt
    raise BadInput(f"cannot tell the format of {spec.display}: {_FORMAT_HINT}")


# --------------------------------------------------------------------------------------------
# Path specs, files, folders and archives


@dataclass(frozen=True, slots=True)
class _Spec:
    display: str  # the path as the user wrote it, without glob and slice: used in sources
    path: Path
    kind: str  # "file", "folder" or "archive"
    glob: str | None
    start: int | None
    stop: int | None


def _parse_spec(spec: str | os.PathLike) -> _Spec:
    text = os.fspath(spec)
    start = stop = None
    # A file may really be called "x[1:2]"; only a name that does not exist carries a slice.
    match = _SLICE.search(text)
    if match and not os.path.exists(text):
        text = text[: match.start()]
        start = int(match[1]) if match[1] not in ("", "-") else None
        stop = int(match[2]) if match[2] not in ("", "-") else None
    glob = None
    if "::" in text and not os.path.exists(text):
        text, glob = text.split("::", 1)
        glob = glob or None
    path = Path(text)
    if not path.exists():
        raise BadInput(f"{text}: not found")
    if path.is_dir():
        kind = "folder"
    elif path.name.lower().endswith(_ARCHIVE_SUFFIXES):
        kind = "archive"
    else:
        kind = "file"
    return _Spec(text, path, kind, glob, start, stop)


@dataclass(slots=True)
class _File:
    """One file to read: a real file, or an archive member valid until the archive moves on."""

    source: str  # what Review.source says
    detect_name: str  # posix path used to tell the format (and the IMDB label/rating)
    local: Path | None  # the file on disk, None for an archive member
    opener: Callable[[], BinaryIO] | None = None

    @property
    def name(self) -> str:
        return self.detect_name.rsplit("/", 1)[-1]

    def open(self) -> BinaryIO:
        return self.opener() if self.opener is not None else open(self.local, "rb")


def _detect_name(path: Path) -> str:
    # The absolute path, so that aclImdb/train/pos given as a folder still shows its layout.
    return path.resolve().as_posix()


def _single_file(spec: _Spec) -> Iterator[_File]:
    yield _File(spec.display, _detect_name(spec.path), spec.path)


def _folder_files(spec: _Spec) -> Iterator[_File]:
    root = spec.path
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or (spec.glob is not None and not fnmatch.fnmatchcase(rel, spec.glob)):
                continue
            yield _File(os.path.join(spec.display, rel), _detect_name(path), path)


def _archive_files(spec: _Spec) -> Iterator[_File]:
    # Stream mode ("r|*") reads members in archive order without seeking back. tarfile still keeps
    # every TarInfo it has seen; clearing that list keeps memory flat over IMDB's 100,000 members.
    with tarfile.open(spec.path, "r|*") as tar:
        while (info := tar.next()) is not None:
            tar.members.clear()
            name = info.name.removeprefix("./")
            if not info.isfile() or (spec.glob is not None and not fnmatch.fnmatchcase(name, spec.glob)):
                continue
            yield _File(f"{spec.display}::{info.name}", name, None, lambda info=info: tar.extractfile(info))


class _Replay(io.RawIOBase):
    """A stream whose first bytes were read to sniff its format: serves them again, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(buffer)

    def close(self) -> None:
        self._rest.close()
        super().close()


def _detect(name: str, detect_name: str, stream: BinaryIO) -> tuple[str | None, BinaryIO]:
    """The format of a file from its name (and first bytes for .review), and the stream to read it from."""
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
        stream = gzip.GzipFile(fileobj=stream)
    suffix = os.path.splitext(lower)[1]
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix], stream
    if suffix == ".review":
        # Both Blitzer formats use .review: the raw one is pseudo-XML, the processed one feature lines.
        head = stream.read(_SNIFF_BYTES)
        return _sniff_review(head), io.BufferedReader(_Replay(head, stream))
    if _IMDB_PATH.search(detect_name):
        return "imdb", stream
    return None, stream


def _sniff_review(head: bytes) -> str | None:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<"):  # <review>, or <data> in some repackings
        return "amazon"
    line, newline, _ = text.partition("\n")
    line = line.rstrip()
    if newline or len(head) < _SNIFF_BYTES:
        return "processed" if _PROCESSED_LINE.match(line) else None
    # The first line is longer than the sniffed bytes: judge the complete tokens only.
    return "processed" if _PROCESSED_PREFIX.match(line.rsplit(" ", 1)[0]) else None


# --------------------------------------------------------------------------------------------
# Driving the readers over a path


def _records(spec: _Spec, text_column: str | None, label_column: str | None, forced: str) -> Iterator[Record]:
    files = {"file": _single_file, "folder": _folder_files, "archive": _archive_files}[spec.kind](spec)
    read_any = False
    ordinal = 0  # records of this path so far: numbers IMDB files, which are one record each
    for file in files:
        with file.open() as raw:
            if forced != "auto":
                if spec.kind != "file" and spec.glob is None and _NOT_DATA.search(file.detect_name.lower()):
                    continue
                fmt, stream = forced, raw
            else:
                fmt, stream = _detect(file.name, file.detect_name, raw)
                if fmt is None:  # README, imdb.vocab, urls_pos.txt ...: not ours to read
                    continue
            read_any = True
            with stream:
                for record in _READERS[fmt](stream, file, text_column, label_column):
                    ordinal += 1
                    if fmt == "imdb":
                        record.row = ordinal
                    yield record
    if not read_any:
        what = f"members matching {spec.glob!r} in" if spec.glob else "files of a known format in"
        raise BadInput(f"no {what} {spec.display}: {_FORMAT_HINT}")


def _slice(records: Iterator[Record], start: int | None, stop: int | None) -> Iterator[Record]:
    """records[start:stop] without a list: a negative bound holds at most that many records."""
    if (start is None or start >= 0) and (stop is None or stop >= 0):
        yield from islice(records, start, stop)  # stops reading the file at `stop`
        return
    if start is not None and start < 0:
        tail = deque(enumerate(records), maxlen=-start)
        total = tail[-1][0] + 1 if tail else 0
        first, end, _ = slice(start, stop).indices(total)
        yield from (record for i, record in tail if first <= i < end)
        return
    # start >= 0 and stop < 0: a record is known to be in range once -stop more have followed it.
    held: deque[tuple[int, Record]] = deque()
    for item in enumerate(records):
        held.append(item)
        if len(held) > -stop:
            i, record = held.popleft()
            if i >= (start or 0):
                yield record


# --------------------------------------------------------------------------------------------
# Tabular formats: csv, tsv, jsonl, parquet


@dataclass(frozen=True, slots=True)
class _Columns:
    text: str
    label: str | None
    rating: str | None
    id: str | None


def _resolve_columns(
    names: list[str], text_column: str | None, label_column: str | None, source: str
) -> _Columns:
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(str(name).lower(), name)

    def find(name: str) -> str | None:
        return name if name in names else by_lower.get(name.lower())

    def first(candidates: tuple[str, ...]) -> str | None:
        return next((found for c in candidates if (found := find(c)) is not None), None)

    found = ", ".join(map(str, names)) or "(none)"
    if text_column is not None:
        text = find(text_column)
        if text is None:
            raise BadInput(f"{source}: no column {text_column!r} (text_column); columns found: {found}")
    else:
        text = first(TEXT_COLUMNS)
        if text is None:
            raise BadInput(
                f"{source}: no text column (looked for {', '.join(TEXT_COLUMNS)}); columns found: {found}; "
                "name one with text_column"
            )
    if label_column is not None:
        label = find(label_column)
        if label is None:
            raise BadInput(f"{source}: no column {label_column!r} (label_column); columns found: {found}")
    else:
        label = first(LABEL_COLUMNS)
    rating = first(tuple(c for c in RATING_COLUMNS if find(c) not in (label, text)))
    return _Columns(text, label, rating, find("id"))


def _to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _tabular(get: Callable[[str], Any], columns: _Columns, source: str, row: int) -> Record:
    text = get(columns.text)
    if text is None:
        return Reject(source, row, "missing text")
    if not isinstance(text, str):
        return Reject(source, row, f"text is not a string (found {type(text).__name__})")
    if not text.strip():
        return Reject(source, row, "empty text")
    label = None
    if columns.label is not None:
        value = get(columns.label)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            label = str(value).strip() or None
    if columns.rating is not None:
        rating = _to_float(get(columns.rating))
    else:
        rating = _to_float(label)
    own_id = get(columns.id) if columns.id is not None else None
    own_id = str(own_id).strip() if own_id is not None else ""
    return Review(text, None, label, rating, source, row, own_id or f"{source}:{row}")


def _read_delimited(
    stream: BinaryIO, file: _File, text_column, label_column, delimiter: str
) -> Iterator[Record]:
    # The stdlib csv module, not the datasets library: we need exact record numbers and a Reject per
    # bad row while streaming. surrogateescape keeps a bad byte from failing the whole file: the rows
    # that hold one are found by their surrogates and rejected alone.
    lines = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    rows = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(rows, None)
    except csv.Error as error:
        raise BadInput(f"{file.source}: unreadable header row: {error}") from None
    if header is None:
        raise BadInput(f"{file.source}: empty file, expected a header row")
    if any(_UNDECODABLE.search(name) for name in header):
        raise BadInput(f"{file.source}: header row has {_UNDECODABLE_REASON}")
    columns = _resolve_columns(header, text_column, label_column, file.source)
    index = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)
    row = 0
    while True:
        try:
            fields = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            row += 1
            yield Reject(file.source, row, f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {error}")
            continue
        if not fields:  # a blank line is no record
            continue
        row += 1
        if any(_UNDECODABLE.search(field) for field in fields):
            yield Reject(file.source, row, _UNDECODABLE_REASON)
        elif len(fields) != len(header):
            yield Reject(file.source, row, f"expected {len(header)} fields, found {len(fields)}")
        else:
            yield _tabular(lambda name: fields[index[name]], columns, file.source, row)


def _read_csv(stream, file, text_column, label_column):
    return _read_delimited(stream, file, text_column, label_column, ",")


def _read_tsv(stream, file, text_column, label_column):
    return _read_delimited(stream, file, text_column, label_column, "\t")


def _jsonl_object(raw: bytes, file: _File, row: int, first: bool) -> dict | Reject | None:
    """The object of a JSON line that orjson did not read as one: a Reject that says why, None for
    a blank line, or the object where Python's json module reads it (a BOM, NaN, big integers)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Reject(file.source, row, _UNDECODABLE_REASON)
    line = line.removeprefix("\ufeff").strip()
    if not line:
        return None
    if first and line.startswith("["):
        raise BadInput(f"{file.source}: a JSON array; expected JSON Lines (one object a line)")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as error:
        return Reject(file.source, row, f"malformed JSON: {error}")
    if not isinstance(obj, dict):
        return Reject(file.source, row, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def _read_jsonl(stream: BinaryIO, file: _File, text_column, label_column) -> Iterator[Record]:
    columns = None  # from the first object: JSON Lines has no header
    for row, raw in enumerate(stream, 1):  # row = line number; blank lines are skipped, not renumbered
        try:  # the common case, one well-formed object in UTF-8, at orjson's speed
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict) or any(type(v) is float and abs(v) >= 9.2e18 for v in obj.values()):
            # Anything else takes the path that explains it, and so do integers beyond 64 bits,
            # which orjson reads as floats (an id 12345678901234567890123 would lose its digits).
            obj = _jsonl_object(raw, file, row, first=columns is None)
            if obj is None:
                continue
            if isinstance(obj, Reject):
                yield obj
                continue
        if columns is None:
            columns = _resolve_columns(list(obj), text_column, label_column, file.source)
        yield _tabular(obj.get, columns, file.source, row)


def _read_parquet(stream: BinaryIO, file: _File, text_column, label_column) -> Iterator[Record]:
    from datasets import load_dataset  # imported here: it takes a second or two to import

    with tempfile.TemporaryDirectory(prefix="textrelu-") as scratch:
        local = file.local
        if local is None:  # an archive member: parquet needs a seekable file
            local = Path(scratch, "member.parquet")
            with open(local, "wb") as out:
                shutil.copyfileobj(stream, out)
        data = load_dataset("parquet", data_files=str(local), split="train", streaming=True)
        columns = None
        if data.features is not None:
            columns = _resolve_columns(list(data.features), text_column, label_column, file.source)
        for row, obj in enumerate(data, 1):
            if columns is None:
                columns = _resolve_columns(list(obj), text_column, label_column, file.source)
            yield _tabular(obj.get, columns, file.source, row)


# --------------------------------------------------------------------------------------------
# Review formats: amazon (raw multi-domain), imdb, processed_acl, svmlight


def _amazon_blocks(stream: BinaryIO) -> Iterator[bytes | None]:
    """The bytes between <review> and </review>, block by block; None for an unterminated last block."""
    block: list[bytes] | None = None
    for line in stream:
        while line:
            if block is None:
                start = line.find(b"<review>")
                if start < 0:
                    break
                block, line = [], line[start + len(b"<review>") :]
            end = line.find(b"</review>")
            if end < 0:
                block.append(line)
                break
            block.append(line[:end])
            yield b"".join(block)
            block, line = None, line[end + len(b"</review>") :]
    if block is not None:
        yield None


def _read_amazon(stream: BinaryIO, file: _File, text_column=None, label_column=None) -> Iterator[Record]:
    # Not XML: the files hold raw '&' and '<' in the text, so the fields are cut out by regex.
    label = {"positive.review": "positive", "negative.review": "negative"}.get(file.name.lower())
    for row, block in enumerate(_amazon_blocks(stream), 1):
        if block is None:
            yield Reject(file.source, row, "unterminated <review> block at end of file")
            continue
        fields: dict[str, str] = {}
        try:
            for match in _AMAZON_FIELD.finditer(block):
                fields.setdefault(match[1].decode(), match[2].decode("utf-8").strip())
        except UnicodeDecodeError:
            yield Reject(file.source, row, _UNDECODABLE_REASON)
            continue
        text = "\n".join(part for part in (fields.get("title"), fields.get("review_text")) if part)
        if not text:
            yield Reject(file.source, row, "empty review (no title and no review_text)")
            continue
        own_id = fields.get("unique_id") or f"{file.source}:{row}"
        yield Review(text, None, label, _to_float(fields.get("rating")), file.source, row, own_id)


def _read_imdb(stream: BinaryIO, file: _File, text_column=None, label_column=None) -> Iterator[Record]:
    # One file is one review; _records renumbers `row` among the records of the whole path.
    match = _IMDB_PATH.search(file.detect_name)
    try:
        text = stream.read().decode("utf-8")
    except UnicodeDecodeError:
        yield Reject(file.source, 1, _UNDECODABLE_REASON)
        return
    if not text.strip():
        yield Reject(file.source, 1, "empty text")
        return
    if match is None:  # only when the format was forced on a file outside the aclImdb layout
        own_id = file.name.removesuffix(".txt")
        yield Review(text, None, None, None, file.source, 1, own_id)
        return
    own_id, folder, rating = match.groups()
    label = None if folder == "unsup" else folder
    yield Review(text, None, label, float(rating) or None, file.source, 1, own_id)


def _lines(stream: BinaryIO, source: str) -> Iterator[tuple[int, str | Reject]]:
    """(line number, text) of each non-blank line, or a Reject for an undecodable one."""
    for row, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8").removeprefix("\ufeff").strip()
        except UnicodeDecodeError:
            yield row, Reject(source, row, _UNDECODABLE_REASON)
            continue
        if line:
            yield row, line


def _read_processed(stream: BinaryIO, file: _File, text_column=None, label_column=None) -> Iterator[Record]:
    for row, line in _lines(stream, file.source):
        if isinstance(line, Reject):
            yield line
            continue
        terms, label, bad = [], None, None
        for token in line.split():
            if token.startswith("#label#:"):
                label = token[len("#label#:") :] or None
                continue
            # Counts are dropped (the vectors are binary); a feature may hold ':', so split on the last.
            name, colon, count = token.rpartition(":")
            if not colon or not name or not count.isdigit():
                bad = token
                break
            if int(count) > 0:
                terms.append(name)
        if bad is not None:
            yield Reject(file.source, row, f"malformed feature {bad!r}: expected name:count")
        elif not terms:
            yield Reject(file.source, row, "no features")
        else:
            yield Review(None, terms, label, None, file.source, row, f"{file.source}:{row}")


def _read_svmlight(stream: BinaryIO, file: _File, text_column=None, label_column=None) -> Iterator[Record]:
    for row, line in _lines(stream, file.source):
        if isinstance(line, Reject):
            yield line
            continue
        tokens = line.split("#", 1)[0].split()
        if not tokens:  # a comment line
            continue
        label = _svmlight_label(tokens[0])
        if label is None:
            yield Reject(file.source, row, f"malformed label {tokens[0]!r}: expected a number")
            continue
        terms, bad = [], None
        for token in tokens[1:]:
            index, colon, value = token.partition(":")
            if index == "qid":
                continue
            number = _to_float(value) if colon and index.isdigit() else None
            if number is None:
                bad = token
                break
            if number != 0:  # an explicit zero is an absent feature
                terms.append(index)
        if bad is not None:
            yield Reject(file.source, row, f"malformed feature {bad!r}: expected index:value")
        else:
            yield Review(None, terms, label, None, file.source, row, f"{file.source}:{row}")


def _svmlight_label(token: str) -> str | None:
    number = _to_float(token)
    if number is None:
        return None
    return str(int(number)) if number.is_integer() else str(number)  # "+1" -> "1", "-1.0" -> "-1"


# Each reader takes (binary stream, _File, text_column, label_column) and yields records in order.
_READERS: dict[str, Callable[..., Iterator[Record]]] = {
    "csv": _read_csv,
    "tsv": _read_tsv,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "amazon": _read_amazon,
    "imdb": _read_imdb,
    "processed": _read_processed,
    "svmlight": _read_svmlight,
}
