"""Read review corpora into `Review` records, one at a time.

Every reader streams: memory stays flat however large the file or archive is (the one exception is
a trailing slice such as ``[-200:]``, which holds that many records). A row that cannot be used does
not stop the read: it becomes a `Reject` naming its source, its row and why, in order among the
reviews, so a caller can count and report what was dropped.

Hostile or broken input is bounded and loud, never a crash, a hang on memory or a short success:

- one record (a line, a CSV record, an Amazon block, an IMDB file) holds at most `MAX_RECORD_BYTES`
  (or `max_record_bytes=`); a longer one is skipped without being held and becomes a Reject, so a
  small .gz that expands to one endless line reads in bounded memory;
- a truncated or corrupt .gz, .tar(.gz/.bz2/.xz) or .zip raises BadInput naming the file and how
  many records were read, never ends the read early as if the data were complete;
- CSV/TSV are parsed strictly: a quote that is never closed rejects its record alone (reading
  resumes on the next line) rather than swallowing the rest of the file into one field;
- links in archives (symbolic or hard) and special members are not followed: each that would be
  data by its name becomes a Reject saying so.

Path syntax accepted by `iter_records` and `read_reviews`::

    reviews.csv                          a file (format from its extension, or sniffed)
    aclImdb/train                        a folder, read recursively in sorted order
    data.tar.gz                          every member of a known format, in archive order
    data.zip                             the same for a zip archive
    data.tar.gz::books/*.review          members whose path matches an fnmatch glob (* crosses /)
    positive.review[:800]                any of the above, then a python slice over its records

Formats (`FORMATS`): csv, tsv and jsonl (JSON Lines, also .json) with a text column and an optional
label column; parquet; amazon (the Blitzer multi-domain ``<review>`` pseudo-XML); imdb (the aclImdb
``{train,test}/{pos,neg,unsup}/<id>_<rating>.txt`` layout, one file a review); processed (Blitzer's
processed_acl ``feature:count ... #label#:positive`` lines); svmlight (``label idx:val ...``).
A plain ``.gz`` on a file (``reviews.csv.gz``) is read through gzip, inside an archive too.
"""

from __future__ import annotations

import bz2
import csv
import fnmatch
import gzip
import io
import json
import lzma
import math
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from textrelu.errors import BadInput
from textrelu.settings import Reading

FORMATS = ("csv", "tsv", "jsonl", "parquet", "amazon", "imdb", "processed", "svmlight")

# The most one record may hold, in bytes (line ending included). Well above any real review (the
# longest IMDB review is 14 KB); what is longer is skipped unread and rejected, so that a bomb or a
# runaway quote cannot grow memory. iter_records(max_record_bytes=...) sets another.
MAX_RECORD_BYTES = Reading.max_record_bytes

__all__ = [
    "FORMATS",
    "MAX_RECORD_BYTES",
    "Reject",
    "Review",
    "detect_format",
    "iter_records",
    "named_format",
    "parts",
    "read_reviews",
]


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

# Found by name, first match wins (text_column/label_column name others). The later names are
# those of common review dumps: Amazon's (review_body, star_rating; the older one's overall,
# summary), Yelp's and others' (review_text, title); a summary or title is the text only where
# nothing longer is there.
TEXT_COLUMNS = (
    "text",
    "review",
    "review_text",
    "review_body",
    "sentence",
    "content",
    "body",
    "summary",
    "title",
)
LABEL_COLUMNS = ("label", "sentiment", "polarity", "rating", "stars", "star_rating", "overall", "score")
RATING_COLUMNS = ("rating", "stars", "star_rating", "overall", "score")

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
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
_FORMAT_HINT = (
    "expected one of .csv .tsv .jsonl .json .parquet .review .svmlight .svm .libsvm (or .gz of one), "
    "an aclImdb folder, or a .tar.gz or .zip of them"
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
_CHUNK = 1 << 16  # bytes read at a time where a line may be endless
_PREVIEW = 40  # characters of a bad value quoted in a message
_UNDECODABLE_REASON = "undecodable bytes (not UTF-8)"

# A record's size is bounded by max_record_bytes (see _RecordLines), which may exceed csv's default
# field limit of 128 KiB: csv's own limit must not reject first. It is global to the csv module;
# raising it affects nobody adversely.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


# --------------------------------------------------------------------------------------------
# Public API


def iter_records(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    format: str = "auto",
    max_record_bytes: int | None = None,
    id_column: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> Iterator[Review | Reject]:
    """Stream the records of one file, folder or archive (see the module docstring for the syntax).

    Bad paths, an unknown format, bad column names and a truncated or corrupt compressed file or
    archive raise `BadInput`; unreadable rows, and rows over `max_record_bytes` (default
    `MAX_RECORD_BYTES`), are yielded as `Reject`s. The path is checked at once; the records are read
    lazily. `id_column` names the column of a tabular file that holds each row's id [default:
    id]; `notify` is told, once per tabular file, which columns were chosen by name.
    """
    if format != "auto" and format not in FORMATS:
        raise BadInput(f"unknown format {format!r}: expected 'auto' or one of {', '.join(FORMATS)}")
    limit = _record_limit(max_record_bytes)
    spec = _parse_spec(path)
    if spec.kind == "file":  # (stdin is sniffed as it is read: its bytes can be read only once)
        if spec.glob is not None:
            raise BadInput(f"{spec.display}: '::' selects members of an archive or folder, not of a file")
        if format == "auto":
            # Fail now rather than on first next(): a mistyped file name should not look like an empty corpus.
            file = _File(spec.display, _detect_name(spec.path), spec.path)
            with _opened(file) as stream:
                if _detect(file, stream)[0] is None:
                    raise BadInput(f"cannot tell the format of {spec.display}: {_FORMAT_HINT}")
    records = _records(spec, text_column, label_column, format, limit, id_column, notify)
    if spec.start is not None or spec.stop is not None:
        records = _slice(records, spec.start, spec.stop)
    return records


def records(files, reading: Reading, notify=None):
    """Every record (Review or Reject) of `files`, in order, read as `reading` says (its columns
    and its cap on one record)."""
    for path in files:
        yield from iter_records(
            path,
            text_column=reading.text_column,
            label_column=reading.label_column,
            id_column=reading.id_column,
            max_record_bytes=reading.max_record_bytes,
            notify=notify,
        )


def read_reviews(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    text_column: str | None = None,
    label_column: str | None = None,
    format: str = "auto",
    max_record_bytes: int | None = None,
) -> tuple[list[Review], list[Reject]]:
    """All records of one path or several, in order, split into reviews and rejects."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    reviews: list[Review] = []
    rejects: list[Reject] = []
    for path in paths:
        for record in iter_records(path, text_column, label_column, format, max_record_bytes):
            (reviews if isinstance(record, Review) else rejects).append(record)
    return reviews, rejects


def detect_format(path: str | os.PathLike) -> str:
    """The format (one of `FORMATS`) of a file, or of the first readable file of a folder or archive."""
    spec = _parse_spec(path)
    # An aclImdb folder needs no special case: its first data file (sorted order) is an IMDB review.
    for file in _files(spec):
        if file.refused is not None:
            continue
        with _opened(file) as stream:
            fmt = _detect(file, stream)[0]
        if fmt is not None:
            return fmt
    raise BadInput(f"cannot tell the format of {spec.display}: {_FORMAT_HINT}")


def parts(path: str | os.PathLike) -> list[str]:
    """Paths that, read one after another by `iter_records`, give the records of `path` with the
    same sources, rows and ids: a folder's data files, each on its own, so that they can be read
    apart (on a cluster); a `::GLOB` on a folder selects among them. A file, an archive, stdin, a
    slice and a folder of IMDB reviews (numbered across the folder) stay whole: [path]."""
    spec = _parse_spec(path)
    whole = [os.fspath(path)]
    if spec.kind != "folder" or spec.start is not None or spec.stop is not None:
        return whole
    found = []
    for file in _folder_files(spec):
        with _opened(file) as raw:
            fmt = _detect(file, raw)[0]
        if fmt == "imdb":
            return whole
        if fmt is not None:  # README, imdb.vocab ...: skipped, as a read of the folder skips them
            found.append(file.source)
    return found or whole  # none: the read of the folder says so


def named_format(name: str) -> str | None:
    """The format a file's name says (".review": one of the two Blitzer formats), or None for a
    name of no known format (README.md...), which a read of its folder skips."""
    return _name_format(posixpath.basename(name), name)


def _record_limit(max_record_bytes: int | None) -> int:
    limit = MAX_RECORD_BYTES if max_record_bytes is None else max_record_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadInput(f"max_record_bytes must be a positive number of bytes, not {limit!r}")
    return limit


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


STDIN = "-"  # a path that reads standard input (its format sniffed from its first bytes)
_STDIN_SOURCE = "<stdin>"


def _parse_spec(spec: str | os.PathLike) -> _Spec:
    text = os.fspath(spec)
    if text == STDIN:
        return _Spec(_STDIN_SOURCE, Path(STDIN), "stdin", None, None, None)
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
    refused: str | None = None  # why an archive member is not read (a link...): its Reject's reason
    size: int | None = None  # bytes, where the archive says: a read never goes past it
    id_column: str | None = None  # the tabular readers' id column (None: "id")
    notify: Callable[[str], None] | None = None  # told which columns a tabular file's rows use

    @property
    def name(self) -> str:
        return self.detect_name.rsplit("/", 1)[-1]

    def open(self) -> BinaryIO:
        return self.opener() if self.opener is not None else open(self.local, "rb")


def _opened(file: _File) -> BinaryIO:
    """file.open(), with a file that cannot be opened (permissions, a folder, a vanished file)
    as BadInput naming it."""
    try:
        return file.open()
    except OSError as error:
        raise BadInput(f"{file.source}: cannot read: {error.strerror or error}") from None


def _detect_name(path: Path) -> str:
    # The absolute path, so that aclImdb/train/pos given as a folder still shows its layout.
    return path.resolve().as_posix()


class _Borrowed(io.RawIOBase):
    """Standard input, read as a file that closing leaves open."""

    def __init__(self, inner: BinaryIO):
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _stdin() -> BinaryIO:
    import sys

    return io.BufferedReader(_Borrowed(sys.stdin.buffer))


def _files(spec: _Spec) -> Iterator[_File]:
    if spec.kind == "stdin":
        return iter([_File(_STDIN_SOURCE, _STDIN_SOURCE, None, opener=_stdin)])
    if spec.kind == "file":
        return iter([_File(spec.display, _detect_name(spec.path), spec.path)])
    if spec.kind == "folder":
        return _folder_files(spec)
    return _zip_files(spec) if spec.path.name.lower().endswith(".zip") else _tar_files(spec)


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


class _Corrupt(BadInput):
    """A truncated or corrupt compressed file or archive. _records adds how far the read got."""

    def __init__(self, source: str, detail: str):
        super().__init__(f"{source}: truncated or corrupt ({detail})")
        self.source, self.detail = source, detail


class _Checked(io.BufferedIOBase):
    """A stream whose decoding errors become `_Corrupt` naming its file.

    gzip, bz2, lzma, tarfile and zipfile each raise their own errors (EOFError on truncation, a CRC
    mismatch as OSError or BadZipFile...); left alone they would crash with a traceback, or be
    taken for the end of the data. It also gives every stream what io.TextIOWrapper needs, which a
    tar member in stream mode lacks (seekable()). A thin proxy: a buffer of its own would cost a
    fifth of the time of reading IMDB's 100,000 small members.
    """

    _ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, tarfile.TarError, zipfile.BadZipFile)

    def __init__(self, inner: BinaryIO, source: str):
        self._inner, self.source = inner, source

    def readable(self) -> bool:
        return True

    def _call(self, method, *args):
        try:
            return method(*args)
        except self._ERRORS as error:
            raise _Corrupt(self.source, _error_text(error)) from None

    def read(self, size=-1) -> bytes:
        return self._call(self._inner.read, size)

    def read1(self, size=-1) -> bytes:
        return self._call(self._inner.read1, size)

    def readinto(self, buffer) -> int:
        return self._call(self._inner.readinto, buffer)

    def readline(self, size=-1) -> bytes:
        return self._call(self._inner.readline, size)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _drain(stream: BinaryIO) -> None:
    """Read to the end: a compressed stream checks its length and CRC only there."""
    while stream.read(_CHUNK):
        pass


def _decompressed(raw: BinaryIO, source: str) -> BinaryIO:
    """`raw` through the decompressor its first bytes call for (gzip, bzip2, xz, or none)."""
    head = raw.peek(6)[:6]
    if head.startswith(b"\x1f\x8b"):
        inner = gzip.GzipFile(fileobj=raw)
    elif head.startswith(b"BZh"):
        inner = bz2.BZ2File(raw)
    elif head.startswith(b"\xfd7zXZ\x00"):
        inner = lzma.LZMAFile(raw)
    else:
        return _Checked(raw, source)
    return _Checked(inner, source)


class EndCheckedTarInfo(tarfile.TarInfo):
    """A TarInfo that records on its TarFile why the member list ended (see `tar_end_problem`)."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as error:
            tar.stopped_by = error
            raise


def tar_end_problem(tar: tarfile.TarFile) -> str | None:
    """Why a tar opened with tarinfo=EndCheckedTarInfo ended, if not at its end-of-archive marker.

    After the first member, tarfile takes a missing, cut or corrupt header for the end of the
    archive and stops without a word: a truncated or damaged archive would read as a shorter good one.
    """
    stop = getattr(tar, "stopped_by", None)
    if stop is None or isinstance(stop, tarfile.EOFHeaderError):
        return None
    if isinstance(stop, tarfile.EmptyHeaderError):
        return "it ends without the end-of-archive marker"
    if isinstance(stop, tarfile.TruncatedHeaderError):
        return "it ends inside a member header"
    return f"a member header is corrupt ({stop}) at byte {tar.offset:,} of the tar data"


def _tar_files(spec: _Spec) -> Iterator[_File]:
    # Stream mode ("r|") reads members in archive order without seeking back. tarfile still keeps
    # every TarInfo it has seen; clearing that list keeps memory flat over IMDB's 100,000 members.
    # The decompression is ours, not tarfile's: GzipFile checks the length and CRC that tarfile's
    # stream skips, and every error becomes BadInput (_Checked).
    with open(spec.path, "rb") as raw, _decompressed(raw, spec.display) as data:
        try:
            tar = tarfile.open(fileobj=data, mode="r|", tarinfo=EndCheckedTarInfo)
        except tarfile.TarError as error:
            raise BadInput(
                f"{spec.display}: truncated or corrupt, or not a tar archive ({_error_text(error)})"
            ) from None
        with tar:
            while (info := _next_member(tar, spec.display)) is not None:
                tar.members.clear()
                name = info.name.removeprefix("./")
                if info.isdir() or (spec.glob is not None and not fnmatch.fnmatchcase(name, spec.glob)):
                    continue
                source = f"{spec.display}::{info.name}"
                if not info.isfile():
                    yield _File(source, name, None, refused=_tar_refusal(info))
                    continue
                yield _File(source, name, None, partial(_open_tar_member, tar, info, source), size=info.size)
            problem = tar_end_problem(tar)
            if problem is not None:
                raise _Corrupt(spec.display, problem)
            _drain(data)


def _open_tar_member(tar: tarfile.TarFile, info: tarfile.TarInfo, source: str) -> BinaryIO:
    return _Checked(tar.extractfile(info), source)


def _next_member(tar: tarfile.TarFile, source: str) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except tarfile.TarError as error:  # "unexpected end of data" in a member skipped, a bad header
        raise _Corrupt(source, _error_text(error)) from None


def _tar_refusal(info: tarfile.TarInfo) -> str:
    # A link's target is another member (or a path outside): in stream mode it has passed or is
    # not there at all. Reading nothing in its place, silently, would lose data unnoticed.
    if info.issym():
        return f"a symbolic link to {info.linkname!r}: links in an archive are not followed"
    if info.islnk():
        return (
            f"a hard link to {info.linkname!r}: links in an archive are not followed "
            "(repack it with tar --hard-dereference)"
        )
    return "not a regular file (a device, FIFO or unknown member type): not read"


def _zip_files(spec: _Spec) -> Iterator[_File]:
    try:
        archive = zipfile.ZipFile(spec.path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:  # a cut zip loses its central directory
        raise BadInput(
            f"{spec.display}: truncated or corrupt, or not a zip archive ({_error_text(error)})"
        ) from None
    with archive:
        for info in archive.infolist():
            name = info.filename.removeprefix("./")
            if info.is_dir() or (spec.glob is not None and not fnmatch.fnmatchcase(name, spec.glob)):
                continue
            source = f"{spec.display}::{info.filename}"
            refused = _zip_refusal(info)
            if refused is not None:
                yield _File(source, name, None, refused=refused)
                continue
            yield _File(
                source, name, None, partial(_open_zip_member, archive, info, source), size=info.file_size
            )


def _zip_refusal(info: zipfile.ZipInfo) -> str | None:
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link: links in an archive are not followed"
    if info.flag_bits & 0x1:
        return "encrypted: not read"
    if info.compress_type not in (
        zipfile.ZIP_STORED,
        zipfile.ZIP_DEFLATED,
        zipfile.ZIP_BZIP2,
        zipfile.ZIP_LZMA,
    ):
        return f"compressed with zip method {info.compress_type}, which is not supported: not read"
    return None


def _open_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> BinaryIO:
    try:
        member = archive.open(info)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _Corrupt(source, _error_text(error)) from None
    return _Checked(member, source)  # ZipExtFile checks the CRC at the member's end


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


def _name_format(name: str, detect_name: str) -> str | None:
    """The format a file name says (".review" for either Blitzer format, told by content), or None."""
    lower = name.lower().removesuffix(".gz")
    suffix = os.path.splitext(lower)[1]
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if suffix == ".review":
        return ".review"
    if _IMDB_PATH.search(detect_name):
        return "imdb"
    return None


def _gunzipped(file: _File, stream: BinaryIO) -> BinaryIO:
    """The stream of a file, through gzip when its name ends in .gz."""
    if file.name.lower().endswith(".gz"):
        return _Checked(gzip.GzipFile(fileobj=stream), file.source)
    return stream


def _sniff_stream(head: bytes) -> str:
    """The format of a nameless stream (stdin) from its first bytes: JSON lines, a raw Amazon
    .review, TSV (a tab and no comma in the first line) or else CSV."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith(_OPEN):
        return "amazon"
    first = text.split(b"\n", 1)[0]
    return "tsv" if b"\t" in first and b"," not in first else "csv"


def _detect(file: _File, stream: BinaryIO) -> tuple[str | None, BinaryIO]:
    """The format of a file from its name (and first bytes for .review), and the stream to read it from."""
    if file.source == _STDIN_SOURCE and file.local is None:
        head = stream.read(2)
        if head == b"\x1f\x8b":  # gzip: zcat not needed
            stream = _Checked(gzip.GzipFile(fileobj=io.BufferedReader(_Replay(head, stream))), file.source)
            head = b""
        head += stream.read(_SNIFF_BYTES)
        return _sniff_stream(head), io.BufferedReader(_Replay(head, stream))
    fmt = _name_format(file.name, file.detect_name)
    stream = _gunzipped(file, stream)
    if fmt == ".review":
        # Both Blitzer formats use .review: the raw one is pseudo-XML, the processed one feature lines.
        head = stream.read(_SNIFF_BYTES)
        return _sniff_review(head), io.BufferedReader(_Replay(head, stream))
    return fmt, stream


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


def _records(
    spec: _Spec,
    text_column: str | None,
    label_column: str | None,
    forced: str,
    limit: int,
    id_column: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> Iterator[Record]:
    progress = _Progress()
    try:
        yield from _read_files(spec, text_column, label_column, forced, limit, progress, id_column, notify)
    except _Corrupt as error:
        raise BadInput(progress.explain(error)) from None


@dataclass(slots=True)
class _Progress:
    """How far a read got, for the error that stops it: the data before it is real, but not all."""

    records: int = 0
    reading: str | None = None  # the file being read; None between files
    last: Record | None = None

    def explain(self, error: _Corrupt) -> str:
        where = self.reading or error.source
        done = f"after {self.records:,} records"
        if self.last is not None:
            done += f" (the last: row {self.last.row} of {self.last.source})"
        return f"{where}: truncated or corrupt ({error.detail}); stopped {done}, so the data is incomplete"


def _read_files(
    spec: _Spec,
    text_column: str | None,
    label_column: str | None,
    forced: str,
    limit: int,
    progress: _Progress,
    id_column: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> Iterator[Record]:
    read_any = False
    ordinal = 0  # records of this path so far: numbers IMDB files, which are one record each
    for file in _files(spec):
        if (
            forced != "auto"
            and spec.kind != "file"
            and spec.glob is None
            and _NOT_DATA.search(file.detect_name.lower())
        ):
            continue
        if file.refused is not None:
            fmt = forced if forced != "auto" else _name_format(file.name, file.detect_name)
            if fmt is None:  # not data (a README link...): skipped like any such file
                continue
            read_any = True
            ordinal += 1
            progress.records += 1
            progress.last = Reject(file.source, ordinal if fmt == "imdb" else 1, file.refused)
            yield progress.last
            continue
        progress.reading = file.source
        file.id_column, file.notify = id_column, notify
        with _opened(file) as raw:
            if forced != "auto":
                fmt, stream = forced, _gunzipped(file, raw)
            else:
                fmt, stream = _detect(file, raw)
                if fmt is None:  # README, imdb.vocab, urls_pos.txt ...: not ours to read
                    progress.reading = None
                    continue
            read_any = True
            with stream:
                for record in _READERS[fmt](stream, file, text_column, label_column, limit):
                    ordinal += 1
                    if fmt == "imdb":
                        record.row = ordinal
                    progress.records += 1
                    progress.last = record
                    yield record
        progress.reading = None
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
    names: list[str],
    text_column: str | None,
    label_column: str | None,
    source: str,
    file: _File | None = None,
) -> _Columns:
    by_lower: dict[str, str] = {}
    for name in names:
        by_lower.setdefault(str(name).lower(), name)

    def find(name: str) -> str | None:
        return name if name in names else by_lower.get(name.lower())

    def first(candidates: tuple[str, ...]) -> str | None:
        return next((found for c in candidates if (found := find(c)) is not None), None)

    found = ", ".join(map(str, names)) or "(none)"

    def named(column: str, setting: str) -> str:
        """The column a setting names, which must be there."""
        if find(column) is None:
            raise BadInput(f"{source}: no column {column!r} ({setting}); columns found: {found}")
        return find(column)

    text = named(text_column, "text_column") if text_column is not None else first(TEXT_COLUMNS)
    if text is None:
        raise BadInput(
            f"{source}: no text column (looked for {', '.join(TEXT_COLUMNS)}); columns found: {found}; "
            "name one with text_column"
        )
    label = named(label_column, "label_column") if label_column is not None else first(LABEL_COLUMNS)
    rating = first(tuple(c for c in RATING_COLUMNS if find(c) not in (label, text)))
    id_column = file.id_column if file is not None else None
    own_id = named(id_column, "id_column") if id_column is not None else find("id")
    columns = _Columns(text, label, rating, own_id)
    if file is not None and file.notify is not None and (text_column is None or label_column is None):
        chosen = [f"text {text!r}", f"label {label!r}" if label is not None else "no label"]
        chosen += [f"rating {rating!r}"] if rating is not None else []
        chosen += [f"id {own_id!r}"] if own_id is not None else []
        file.notify(f"{source}: columns {', '.join(chosen)} (found by name; set text_column, label_column)")
    return columns


def _to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if type(value) is str:
        return _string_to_float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@lru_cache(maxsize=1024)
def _string_to_float(value: str) -> float | None:
    """`_to_float` of a string, remembered: a file's labels are mostly a few strings ("pos",
    "neg") that are not numbers, and raising a ValueError for each row cost 15% of reading
    IMDB's test JSONL (0.076 s for 25,000 rows, 0.065 s remembered)."""
    try:
        number = float(value.strip())
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


def _preview(value: bytes | str) -> str:
    """The start of a bad value, quoted, to show which one it was."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[: _PREVIEW * 4]).decode("utf-8", errors="replace")
    value = value.removeprefix("\ufeff")
    return repr(value[:_PREVIEW]) + ("..." if len(value) > _PREVIEW else "")


def _over_limit(limit: int, head: bytes | str, size: int | None = None, where: str = "") -> str:
    size = f"{size:,} bytes, " if size is not None else ""
    return (
        f"record{where} over the limit of {limit:,} bytes ({size}see max_record_bytes), "
        f"starting {_preview(head)}"
    )


@dataclass(frozen=True, slots=True)
class _Overlong:
    """A line over the record limit, skipped: its size and first bytes stand for it."""

    size: int
    head: bytes


def _bounded_lines(stream: BinaryIO, limit: int) -> Iterator[bytes | _Overlong]:
    """Each line of `stream` (with its newline), or an `_Overlong` for a line over `limit` bytes.

    An overlong line is skipped a chunk at a time, never held whole: a gzip of a few KB can expand
    to one endless line.
    """
    while line := stream.readline(limit + 1):
        if len(line) <= limit:
            yield line
            continue
        size, piece = len(line), line
        while not piece.endswith(b"\n") and (piece := stream.readline(_CHUNK)):
            size += len(piece)
        yield _Overlong(size, line[: _PREVIEW * 4])


class _RecordTooLong(Exception):
    def __init__(self, line: int, size: int, head: str, whole: bool):
        self.line, self.size, self.head, self.whole = line, size, head, whole


class _RecordLines:
    """The lines of a delimited file, fed one at a time to csv.reader, which parses a record from
    as many as its quotes span.

    It counts the bytes of the record being parsed, so that an overlong record (one endless line,
    or an unclosed quote running on) stops at the limit instead of growing in memory; and it keeps
    that record's lines (at most the limit's worth) so that a broken record spanning lines is given
    up alone: `retry` has its lines after the first read again, rather than lose every row a stray
    quote swallowed.
    """

    def __init__(self, text: io.TextIOBase, limit: int):
        self._text, self._limit = text, limit
        self._again: deque[tuple[int, str]] = deque()  # lines to read again, with their numbers
        self._read = 0  # lines read from the file
        self.lines: list[tuple[int, str]] = []  # (line number, text) of the record being parsed
        self._size = 0

    def start(self) -> None:
        """A new record begins."""
        self.lines, self._size = [], 0

    def retry(self) -> None:
        """Give up the record being parsed: its lines but the first are parsed again."""
        self._again.extendleft(reversed(self.lines[1:]))
        self.start()

    def span(self) -> str:
        """ "line 4", or "lines 4-9" for a record over several."""
        if not self.lines:
            return f"line {self._read}"
        first, last = self.lines[0][0], self.lines[-1][0]
        return f"line {first}" if first == last else f"lines {first}-{last}"

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        if self._again:
            number, line = self._again.popleft()
        else:
            line = self._text.readline(self._limit + 1)  # characters: at least as many bytes
            if not line:
                raise StopIteration
            self._read += 1
            number = self._read
            if len(line) > self._limit:
                raise _RecordTooLong(number, self._skip_line(line), line[: _PREVIEW + 1], whole=True)
        self._size += len(line.encode("utf-8", "surrogateescape"))
        self.lines.append((number, line))
        if self._size > self._limit:
            raise _RecordTooLong(number, self._size, self.lines[0][1][: _PREVIEW + 1], whole=False)
        return line

    def _skip_line(self, line: str) -> int:
        """Read past the rest of an overlong line, a chunk at a time; its size in bytes."""
        size = len(line.encode("utf-8", "surrogateescape"))
        while not line.endswith(("\n", "\r")) and (line := self._text.readline(_CHUNK)):
            size += len(line.encode("utf-8", "surrogateescape"))
        return size


def _read_delimited(
    stream: BinaryIO, file: _File, text_column, label_column, limit: int, delimiter: str
) -> Iterator[Record]:
    # The stdlib csv module, not the datasets library: we need exact record numbers and a Reject per
    # bad row while streaming. surrogateescape keeps a bad byte from failing the whole file: the rows
    # that hold one are found by their surrogates and rejected alone. strict=True makes a stray quote
    # an error (a Reject) where the lax default would quietly glue text together.
    kind = "TSV" if delimiter == "\t" else "CSV"
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _RecordLines(text, limit)
    rows = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(rows, None)
    except csv.Error as error:
        raise BadInput(f"{file.source}: unreadable header row ({lines.span()}): {error}") from None
    except _RecordTooLong as error:
        where = f" on line {error.line}" if error.whole else f" on {lines.span()}"
        raise BadInput(f"{file.source}: header {_over_limit(limit, error.head, where=where)}") from None
    if header is None:
        raise BadInput(f"{file.source}: empty file, expected a header row")
    for i, name in enumerate(header, 1):
        if _UNDECODABLE.search(name):
            raise BadInput(
                f"{file.source}: header row has {_UNDECODABLE_REASON} in column {i}: {_preview(name)}"
            )
    columns = _resolve_columns(header, text_column, label_column, file.source, file)
    index = {}
    for i, name in enumerate(header):
        index.setdefault(name, i)
    row = 0
    while True:
        lines.start()
        try:
            fields = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            row += 1
            yield Reject(file.source, row, _malformed(kind, error, lines))
            lines.retry()
            continue
        except _RecordTooLong as error:
            row += 1
            if error.whole:  # one line too long: skipped already
                reason = _over_limit(limit, error.head, error.size, f" on line {error.line}")
            else:  # the lines so far are over: most often a quote that is never closed
                reason = _over_limit(limit, error.head, where=f" on {lines.span()}") + " (an unclosed quote?)"
            yield Reject(file.source, row, reason)
            lines.retry()
            continue
        if not fields:  # a blank line is no record
            continue
        row += 1
        if any(_UNDECODABLE.search(field) for field in fields):
            yield Reject(file.source, row, _UNDECODABLE_REASON)
        elif len(fields) != len(header):
            spread = "" if len(lines.lines) < 2 else f" on {lines.span()} (is a quote misplaced?)"
            yield Reject(file.source, row, f"expected {len(header)} fields, found {len(fields)}{spread}")
        else:
            yield _tabular(lambda name, fields=fields: fields[index[name]], columns, file.source, row)


def _malformed(kind: str, error: csv.Error, lines: _RecordLines) -> str:
    first = lines.lines[0] if lines.lines else (0, "")
    if str(error) == "unexpected end of data":  # the file ended inside a quoted field
        return (
            f"malformed {kind}: a quoted field opened on line {first[0]} is never closed; "
            f"the line starts {_preview(first[1])} (reading resumes on the next line)"
        )
    return f"malformed {kind} on {lines.span()}: {error}; the record starts {_preview(first[1])}"


def _read_csv(stream, file, text_column, label_column, limit):
    return _read_delimited(stream, file, text_column, label_column, limit, ",")


def _read_tsv(stream, file, text_column, label_column, limit):
    return _read_delimited(stream, file, text_column, label_column, limit, "\t")


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
        raise BadInput(f"{file.source}: line {row} is a JSON array; expected JSON Lines (one object a line)")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as error:
        return Reject(file.source, row, f"malformed JSON: {error}, in {_preview(line)}")
    if not isinstance(obj, dict):
        return Reject(file.source, row, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def _read_jsonl(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    columns = None  # from the first object: JSON Lines has no header
    for row, raw in enumerate(_bounded_lines(stream, limit), 1):  # row = line number; blank lines skipped
        if isinstance(raw, _Overlong):
            yield Reject(file.source, row, _over_limit(limit, raw.head, raw.size))
            continue
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
            columns = _resolve_columns(list(obj), text_column, label_column, file.source, file)
        yield _tabular(obj.get, columns, file.source, row)


def _read_parquet(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    """A Parquet file's rows; a file that pyarrow cannot read (cut, or not Parquet at all) is
    BadInput naming it, whatever pyarrow or datasets raise."""
    import logging

    quiet = logging.getLogger("datasets.packaged_modules.parquet.parquet")  # it logs what we raise
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        yield from _parquet_rows(stream, file, text_column, label_column, limit)
    except (BadInput, _Corrupt):
        raise
    except Exception as error:  # noqa: BLE001 - pyarrow's and datasets' many kinds
        raise BadInput(f"{file.source}: not a readable Parquet file ({_error_text(error)})") from None
    finally:
        quiet.setLevel(level)


def _parquet_rows(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    from datasets import load_dataset  # imported here: it takes a second or two to import

    with tempfile.TemporaryDirectory(prefix="textrelu-") as scratch:
        local = file.local
        if local is None or file.name.lower().endswith(".gz"):  # parquet needs a seekable, plain file
            local = Path(scratch, "member.parquet")
            with open(local, "wb") as out:
                shutil.copyfileobj(stream, out)
        data = load_dataset("parquet", data_files=str(local), split="train", streaming=True)
        columns = None
        if data.features is not None:
            columns = _resolve_columns(list(data.features), text_column, label_column, file.source, file)
        for row, obj in enumerate(data, 1):
            if columns is None:
                columns = _resolve_columns(list(obj), text_column, label_column, file.source, file)
            # Parquet pages hold the text already; the limit is kept so that every format rejects alike.
            text = obj.get(columns.text)
            size = 0
            if isinstance(text, str) and len(text) > limit // 4:
                size = len(text.encode("utf-8", "surrogateescape"))
            if size > limit:
                yield Reject(file.source, row, _over_limit(limit, text, size))
                continue
            yield _tabular(obj.get, columns, file.source, row)


# --------------------------------------------------------------------------------------------
# Review formats: amazon (raw multi-domain), imdb, processed_acl, svmlight


_OPEN, _CLOSE = b"<review>", b"</review>"


def _amazon_blocks(stream: BinaryIO, limit: int) -> Iterator[bytes | str]:
    """The bytes between <review> and </review> of each block, or why a block cannot be read: over
    `limit` bytes (skipped to its </review> without being held), cut short by the next <review>, or
    unterminated at the end of the file.

    Read in chunks, not lines: a file may hold its reviews on one endless line.
    """
    buffer = bytearray()
    line = 1  # the line of buffer[0]
    opened = None  # the line of the open block's <review>; None outside a block
    skipped = 0  # bytes of the open block dropped for being over the limit
    head = b""  # the first bytes of a block being skipped
    searched = 0  # the buffer is searched from here: tags found nowhere before it
    at_end = False

    def drop(n: int) -> None:
        nonlocal line, searched
        line += buffer.count(b"\n", 0, n)
        del buffer[:n]
        searched = 0

    while True:
        if opened is None:
            found = buffer.find(_OPEN, searched)
            if found >= 0:
                drop(found + len(_OPEN))
                opened, skipped = line, 0
                continue
            drop(max(0, len(buffer) - len(_OPEN) + 1))  # keeping what may be the start of a tag
        else:
            end, again = buffer.find(_CLOSE, searched), buffer.find(_OPEN, searched)
            if again >= 0 and (end < 0 or again < end):
                drop(again)
                yield f"unterminated <review> block (opened on line {opened}): a new <review> opens on line {line}"
                opened = None
                continue
            if end >= 0:
                if skipped or end > limit:
                    closed = line + buffer.count(b"\n", 0, end)
                    where = f" on line {opened}" if closed == opened else f" on lines {opened}-{closed}"
                    yield _over_limit(
                        limit, head if skipped else buffer[: _PREVIEW * 4], skipped + end, where
                    )
                else:
                    yield bytes(buffer[:end])
                drop(end + len(_CLOSE))
                opened = None
                continue
            searched = max(0, len(buffer) - len(_CLOSE) + 1)
            if len(buffer) > limit:  # too long to hold: count its bytes, keep none
                if not skipped:
                    head = bytes(buffer[: _PREVIEW * 4])
                kept = len(_CLOSE) - 1
                skipped += len(buffer) - kept
                drop(len(buffer) - kept)
        if at_end:
            break
        chunk = stream.read(_CHUNK)
        at_end = not chunk
        buffer += chunk
    if opened is not None:
        yield f"unterminated <review> block (opened on line {opened}) at end of file"


def _read_amazon(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    # Not XML: the files hold raw '&' and '<' in the text, so the fields are cut out by regex.
    name = file.name.lower().removesuffix(".gz")
    label = {"positive.review": "positive", "negative.review": "negative"}.get(name)
    for row, block in enumerate(_amazon_blocks(stream, limit), 1):
        if isinstance(block, str):
            yield Reject(file.source, row, block)
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


def _read_imdb(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    # One file is one review; _records renumbers `row` among the records of the whole path.
    match = _IMDB_PATH.search(file.detect_name)
    if file.size is not None and not file.name.lower().endswith(".gz"):  # an archive member of known size
        data = stream.read(limit + 1) if file.size > limit else stream.read()
    else:
        data = _read_up_to(stream, limit + 1)
    if len(data) > limit:
        yield Reject(file.source, 1, _over_limit(limit, data))
        return
    try:
        text = data.decode("utf-8")
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


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """stream.read(n), without allocating n bytes for a file that is mostly far smaller."""
    parts, size, asked = [], 0, 0
    # A buffered stream returns less than asked only at its end: one read does for a small file.
    while size == asked < n:
        asked += min(_CHUNK, n - size)
        parts.append(stream.read(asked - size))
        size += len(parts[-1])
    return b"".join(parts)


def _lines(stream: BinaryIO, source: str, limit: int) -> Iterator[tuple[int, str | Reject]]:
    """(line number, text) of each non-blank line, or a Reject for an undecodable or overlong one."""
    for row, raw in enumerate(_bounded_lines(stream, limit), 1):
        if isinstance(raw, _Overlong):
            yield row, Reject(source, row, _over_limit(limit, raw.head, raw.size))
            continue
        try:
            line = raw.decode("utf-8").removeprefix("\ufeff").strip()
        except UnicodeDecodeError:
            yield row, Reject(source, row, _UNDECODABLE_REASON)
            continue
        if line:
            yield row, line


def _read_processed(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    for row, line in _lines(stream, file.source, limit):
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


def _read_svmlight(stream: BinaryIO, file: _File, text_column, label_column, limit: int) -> Iterator[Record]:
    for row, line in _lines(stream, file.source, limit):
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


# Each reader takes (binary stream, _File, text_column, label_column, record limit in bytes) and
# yields records in order.
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
