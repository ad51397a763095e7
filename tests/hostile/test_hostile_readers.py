"""Hostile and broken input to textrelu.data.readers: bombs and giant records, every format in every
archive kind, truncated and corrupted compression, strict CSV quoting, links in archives.

Each class of failure has a test over all the formats or archive kinds it can reach, not one case.
"""

import bz2
import gzip
import io
import lzma
import re
import resource
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from textrelu.data.readers import MAX_RECORD_BYTES, Reject, Review, iter_records, read_reviews
from textrelu.errors import BadInput

MiB = 1 << 20


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def summary(records):
    """What a record says, without where it came from (which differs between archive kinds)."""
    return [
        (
            type(r).__name__,
            r.row,
            getattr(r, "text", None),
            getattr(r, "terms", None),
            getattr(r, "label", None),
            getattr(r, "reason", None),
        )
        for r in records
    ]


# ---------------------------------------------------------------------------------------------
# one small file of each format: (member name, bytes); two good records and one bad one where the
# format has bad records

AMAZON_ONE = (
    b"<review>\n<unique_id>\nB%d\n</unique_id>\n<rating>\n5.0\n</rating>\n<title>\nT%d\n</title>\n"
    b"<review_text>\nText %d & more.\n</review_text>\n</review>\n"
)


def sample(fmt: str) -> list[tuple[str, bytes]]:
    if fmt == "csv":
        return [("data/r.csv", b'text,label\ngood one,pos\n"two\nlines",neg\nbad,row,here\n')]
    if fmt == "tsv":
        return [("data/r.tsv", b"text\tlabel\ngood one\tpos\ntoo\tmany\tfields\nsecond\tneg\n")]
    if fmt == "jsonl":
        return [("data/r.jsonl", b'{"text": "good one", "label": "pos"}\n{"text": "broken"\n{"text": "b"}\n')]
    if fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        buffer = io.BytesIO()
        pq.write_table(pa.table({"text": ["good one", " ", "third"], "label": ["pos", "neg", "pos"]}), buffer)
        return [("data/r.parquet", buffer.getvalue())]
    if fmt == "amazon":
        return [("books/positive.review", b"".join(AMAZON_ONE % (i, i, i) for i in range(2)) + b"<review>\n")]
    if fmt == "processed":
        return [
            (
                "books/positive.review",
                b"a:1 b_c:2 #label#:positive\nbad:x #label#:negative\nd:1 #label#:negative\n",
            )
        ]
    if fmt == "svmlight":
        return [("d/train.svmlight", b"+1 3:1 27:0.5\nbad 1:1\n-1 4:2\n")]
    if fmt == "imdb":
        return [
            ("aclImdb/train/neg/1_2.txt", b"   "),
            ("aclImdb/train/neg/2_1.txt", b"Dreadful, really."),
            ("aclImdb/train/pos/0_9.txt", b"A gem."),
        ]  # sorted: a folder's order is the archive's
    raise AssertionError(fmt)


def tar_bytes(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def gz(members):
    return [(name + ".gz", gzip.compress(data)) for name, data in members]


ARCHIVES = {  # kind -> (file name, bytes) of the sample members packed that way
    "tar": lambda m: ("a.tar", tar_bytes(m)),
    "tar.gz": lambda m: ("a.tar.gz", tar_bytes(m, "w:gz")),
    "tgz": lambda m: ("a.tgz", tar_bytes(m, "w:gz")),
    "tar.bz2": lambda m: ("a.tar.bz2", tar_bytes(m, "w:bz2")),
    "tar.xz": lambda m: ("a.tar.xz", tar_bytes(m, "w:xz")),
    "zip": lambda m: ("a.zip", zip_bytes(m)),
    ".gz members in a tar.gz": lambda m: ("a.tar.gz", tar_bytes(gz(m), "w:gz")),
    ".gz members in a zip": lambda m: ("a.zip", zip_bytes(gz(m))),
}
FORMATS = ["csv", "tsv", "jsonl", "parquet", "amazon", "processed", "svmlight", "imdb"]


@pytest.mark.parametrize("kind", list(ARCHIVES) + ["gz"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_alike_from_every_archive_kind(tmp_path, fmt, kind):
    """A tar member in stream mode is not seekable; io.TextIOWrapper (csv, tsv) used to crash on it."""
    members = sample(fmt)
    for name, data in members:
        write(tmp_path / "plain" / name, data)
    expected = summary(iter_records(tmp_path / "plain"))
    assert len(expected) == 3
    if fmt == "imdb" and "gz" in kind.split()[0]:
        pytest.skip("IMDB's layout is one plain .txt file a review, never gzipped one by one")
    if kind == "gz":  # a plain .gz of one file
        ((name, data),) = members
        path = write(tmp_path / (Path(name).name + ".gz"), gzip.compress(data))
    else:
        file_name, data = ARCHIVES[kind](members)
        path = write(tmp_path / file_name, data)
    assert summary(iter_records(path)) == expected
    assert summary(iter_records(path, format=fmt)) == expected


# ---------------------------------------------------------------------------------------------
# giant records and decompression bombs


def gzip_stream(parts) -> bytes:
    """A gzip of the concatenated parts, compressed as they come (never all in memory)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return b"".join(compressor.compress(part) for part in parts) + compressor.flush()


def repeated(byte: bytes, size: int, chunk: int = MiB):
    for start in range(0, size, chunk):
        yield byte * min(chunk, size - start)


def giant_sample(fmt: str, size: int) -> tuple[str, object]:
    """(file name, gzip parts): a good record, one record of `size` bytes, a good record."""
    giant = repeated(b"x", size)
    if fmt == "csv":
        return "r.csv.gz", [b"text,label\nfirst,pos\n", *giant, b",neg\nlast,pos\n"]
    if fmt == "tsv":
        return "r.tsv.gz", [b"text\tlabel\nfirst\tpos\n", *giant, b"\tneg\nlast\tpos\n"]
    if fmt == "jsonl":
        return "r.jsonl.gz", [b'{"text": "first"}\n{"text": "', *giant, b'"}\n{"text": "last"}\n']
    if fmt == "processed":
        return "positive.review.gz", [
            b"first:1 #label#:positive\n",
            *giant,
            b":1 #label#:positive\nlast:1 #label#:positive\n",
        ]
    if fmt == "svmlight":
        return "r.svmlight.gz", [b"1 1:1\n-1 ", *giant, b"\n1 2:1\n"]
    if fmt == "amazon":
        return "positive.review.gz", [
            b"<review><review_text>first</review_text></review>\n<review><review_text>",
            *giant,
            b"</review_text></review>\n<review><title>last</title></review>\n",
        ]
    if fmt == "amazon, no newline at all":
        return "positive.review.gz", [
            b"<review><title>first</title></review>" + b"<review><title>",
            *giant,
            b"</title></review><review><title>last</title></review>",
        ]
    raise AssertionError(fmt)


def giant_tar_gz(size: int) -> list[bytes]:
    """An IMDB tar.gz whose middle review is `size` bytes, streamed (tar headers written by hand)."""

    def member(name, size, parts):
        info = tarfile.TarInfo(name)
        info.size = size
        yield info.tobuf(format=tarfile.GNU_FORMAT)
        yield from parts
        yield b"\0" * (-size % 512)

    return [
        *member("aclImdb/train/pos/0_9.txt", 5, [b"first"]),
        *member("aclImdb/train/pos/1_8.txt", size, repeated(b"x", size)),
        *member("aclImdb/train/neg/2_1.txt", 4, [b"last"]),
        b"\0" * 1024,
    ]


def read_measured(path, **options):
    """The records of path, and the peak of Python memory allocated while reading them."""
    tracemalloc.start()
    try:
        records = list(iter_records(path, **options))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return records, peak


TEXT_FORMATS = ["csv", "tsv", "jsonl", "processed", "svmlight", "amazon", "amazon, no newline at all", "imdb"]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_a_record_over_the_limit_is_rejected_unheld_and_the_next_rows_still_read(tmp_path, fmt):
    size = 24 * MiB  # over the default 1 MiB limit
    if fmt == "imdb":
        path = write(tmp_path / "aclImdb.tar.gz", gzip_stream(giant_tar_gz(size)))
    else:
        name, parts = giant_sample(fmt, size)
        path = write(tmp_path / name, gzip_stream(parts))
    assert path.stat().st_size < 200_000  # a small file...
    records, peak = read_measured(path)
    assert peak < 6 * MiB  # ... read in bounded memory: not the 24 MiB record, nor a quarter of it
    rejects = [r for r in records if isinstance(r, Reject)]
    assert len(records) == 3 and len(rejects) == 1
    assert rejects[0].row == 2 and "over the limit of 1,048,576 bytes" in rejects[0].reason
    assert "max_record_bytes" in rejects[0].reason and "xxxxxxxxxxxxxxxx'..." in rejects[0].reason
    if fmt != "imdb":  # the exact size, counted while skipping
        assert re.search(r"\(25,16\d,\d{3} bytes", rejects[0].reason), rejects[0].reason
    first, last = records[0], records[2]
    assert isinstance(first, Review) and isinstance(last, Review)
    if fmt == "svmlight":
        assert (first.terms, last.terms) == (["1"], ["2"])
    else:
        assert "first" in (first.text or first.terms[0]) and "last" in (last.text or last.terms[0])


def test_a_gzip_bomb_of_one_endless_line_reads_in_bounded_memory(tmp_path):
    """512 MiB of one line in a gzip of ~500 KB: the process must not grow by the line's size."""
    size = 512 * MiB
    path = write(
        tmp_path / "bomb.jsonl.gz",
        gzip_stream([b'{"text": "before"}\n{"text": "', *repeated(b"a", size), b'"}\n{"text": "after"}\n']),
    )
    assert path.stat().st_size < 1 * MiB
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    records, peak = read_measured(path)
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    assert peak < 8 * MiB and rss_growth < 64 * MiB  # vs 512 MiB if the line were held
    assert [type(r).__name__ for r in records] == ["Review", "Reject", "Review"]
    assert records[1].reason.startswith(
        f"record over the limit of {MAX_RECORD_BYTES:,} bytes ({size + 13:,} bytes"
    )
    assert [records[0].text, records[2].text] == ["before", "after"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "processed", "svmlight", "amazon", "imdb"])
def test_max_record_bytes_sets_the_limit(tmp_path, fmt):
    members = sample(fmt)
    for name, data in members:
        write(tmp_path / name, data)
    path = tmp_path / Path(members[0][0]).parts[0]
    everything = list(iter_records(path))
    small = list(iter_records(path, max_record_bytes=12))  # a CSV header of 11 bytes still fits
    assert any(isinstance(r, Reject) and "over the limit of 12 bytes" in r.reason for r in small)
    assert all(len(r.text or " ".join(r.terms)) <= 12 for r in small if isinstance(r, Review))
    assert [r.row for r in small] == list(range(1, len(small) + 1))  # every record, in order
    if fmt != "csv":  # (a CSV record over lines is given up alone, its later lines read again)
        assert len(small) == len(everything)
    assert read_reviews(path, max_record_bytes=10 * MiB) == read_reviews(path)


def test_the_limit_applies_to_parquet_text_too(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"text": ["short", "y" * 100]}), path)
    records = list(iter_records(path, max_record_bytes=50))
    assert isinstance(records[0], Review) and isinstance(records[1], Reject)
    assert records[1].reason.startswith("record over the limit of 50 bytes (100 bytes")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1MB", True])
def test_a_bad_limit_is_refused(tmp_path, bad):
    path = write(tmp_path / "r.csv", b"text\na\n")
    with pytest.raises(BadInput, match="max_record_bytes must be a positive number of bytes"):
        iter_records(path, max_record_bytes=bad)


def test_csv_an_unclosed_quote_running_past_the_limit_costs_its_row_only(tmp_path):
    rows = b"".join(b"row %d,pos\n" % i for i in range(200))
    path = write(tmp_path / "r.csv", b'text,label\nfirst,pos\n"open quote,neg\n' + rows)
    records = list(iter_records(path, max_record_bytes=500))
    assert isinstance(records[1], Reject) and records[1].row == 2
    expected = r"record on lines 3-\d+ over the limit of 500 bytes .*\(an unclosed quote\?\)$"
    assert re.match(expected, records[1].reason)
    assert [r.text for r in records if isinstance(r, Review)] == ["first"] + [f"row {i}" for i in range(200)]


# ---------------------------------------------------------------------------------------------
# truncated and corrupted compression and archives: BadInput, never a short success


def many_rows(n: int = 4000) -> list[tuple[str, bytes]]:
    return [
        ("data/a.csv", b"text,label\n" + b"".join(b"review number %d is here,pos\n" % i for i in range(n))),
        ("data/b.jsonl", b"".join(b'{"text": "line %d"}\n' % i for i in range(n))),
    ]


def compressed_kinds():
    csv_data = many_rows()[0][1]
    return {
        "csv.gz": ("a.csv.gz", gzip.compress(csv_data)),
        "tar": ("a.tar", tar_bytes(many_rows())),
        "tar.gz": ("a.tar.gz", tar_bytes(many_rows(), "w:gz")),
        "tar.bz2": ("a.tar.bz2", tar_bytes(many_rows(), "w:bz2")),
        "tar.xz": ("a.tar.xz", tar_bytes(many_rows(), "w:xz")),
        "zip": ("a.zip", zip_bytes(many_rows())),
        ".gz member in a tar": ("a.tar", tar_bytes(gz(many_rows()))),
    }


def read_until_error(path) -> tuple[list, BadInput | None]:
    """The records read before the error, and the error (None when the read succeeded)."""
    records = []
    try:
        for record in iter_records(path):
            records.append(record)
    except BadInput as error:
        return records, error
    return records, None


def assert_fails_naming_file_and_progress(path, records, error):
    assert error is not None, f"{path.name}: read {len(records)} records and succeeded"
    message = str(error)
    assert str(path) in message and "truncated or corrupt" in message
    if isinstance(error, BadInput) and "stopped after" in message:  # failures while reading say how far
        assert f"stopped after {len(records):,} records" in message
        if records:
            assert f"row {records[-1].row} of {records[-1].source}" in message


@pytest.mark.parametrize("kind", list(compressed_kinds()))
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95, -1, -4, -9])
def test_a_truncated_file_or_archive_fails_naming_it_and_how_far_it_got(tmp_path, kind, keep):
    name, data = compressed_kinds()[kind]
    assert len(read_until_error(write(tmp_path / "whole" / name, data))[0]) > 0
    cut = int(len(data) * keep) if keep > 0 else len(data) + keep
    path = write(tmp_path / name, data[:cut])
    records, error = read_until_error(path)
    if name.endswith(".tar") and cut >= tar_end_marker(data) + 512:
        # the cut falls in the zero blocks that pad a tar to 10 KiB, after its end-of-archive
        # marker: every record is there, nothing is lost
        assert error is None and len(records) == 8000
        return
    assert_fails_naming_file_and_progress(path, records, error)


def tar_end_marker(data: bytes) -> int:
    """Where the end-of-archive marker of an uncompressed tar begins."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


def compressed_data_positions(kind: str, data: bytes) -> list[int]:
    """Bytes inside the compressed data of each kind (not in a header field nothing checks)."""
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [
                i.header_offset + 30 + len(i.filename) + len(i.extra) + i.compress_size // 2
                for i in archive.infolist()
            ]
    if kind == ".gz member in a tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return [i.offset_data + i.size // 2 for i in tar.getmembers()]
    return [len(data) // 2, len(data) * 4 // 5]


@pytest.mark.parametrize("kind", [kind for kind in compressed_kinds() if kind != "tar"])
@pytest.mark.parametrize("which", [0, 1])
def test_a_flipped_byte_in_compressed_data_fails(tmp_path, kind, which):
    """(An uncompressed tar has no checksum over its data; its headers have: see below.)"""
    name, data = compressed_kinds()[kind]
    corrupt = bytearray(data)
    corrupt[compressed_data_positions(kind, data)[which]] ^= 0x10
    path = write(tmp_path / name, bytes(corrupt))
    assert_fails_naming_file_and_progress(path, *read_until_error(path))


@pytest.mark.parametrize("kind", ["csv.gz", "tar.gz", ".gz member in a tar"])
@pytest.mark.parametrize("offset", [-8, -5, -4, -1])  # gzip's trailer: CRC-32, then the length
def test_a_bad_gzip_crc_or_length_fails_after_the_rows_it_read(tmp_path, kind, offset):
    name, data = compressed_kinds()[kind]
    corrupt = bytearray(data)
    if kind == ".gz member in a tar":  # the member's own trailer: find the gzip inside the tar
        member = tar_bytes(gz(many_rows()))
        with tarfile.open(fileobj=io.BytesIO(member)) as tar:
            info = tar.getmember("data/a.csv.gz")
        corrupt[info.offset_data + info.size + offset] ^= 0x01
    else:
        corrupt[offset] ^= 0x01
    path = write(tmp_path / name, bytes(corrupt))
    records, error = read_until_error(path)
    assert_fails_naming_file_and_progress(path, records, error)
    assert len(records) > 1000  # the data before the check was read, then the check failed


def test_a_tar_cut_at_a_member_boundary_or_with_a_bad_header_fails(tmp_path):
    """tarfile itself stops quietly at a missing or corrupt header after the first member."""
    data = tar_bytes(many_rows())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        second = tar.getmember("data/b.jsonl")
    cut = write(tmp_path / "cut.tar", data[: second.offset])  # no second member, no end marker
    records, error = read_until_error(cut)
    assert len(records) == 4000
    assert_fails_naming_file_and_progress(cut, records, error)
    assert "it ends without the end-of-archive marker" in str(error)
    half_header = write(tmp_path / "half.tar", data[: second.offset + 100])
    assert "it ends inside a member header" in str(read_until_error(half_header)[1])
    corrupt = bytearray(data)
    corrupt[second.offset + 10] ^= 0x20  # in the name: the header checksum no longer matches
    path = write(tmp_path / "flip.tar", bytes(corrupt))
    records, error = read_until_error(path)
    assert len(records) == 4000 and "a member header is corrupt (bad checksum)" in str(error)


@pytest.mark.parametrize(
    "name, data",
    [
        ("a.tar.gz", b"not gzip at all"),
        ("a.csv.gz", b"text\nplain, not gzip\n"),
        ("a.zip", b"PK\x03\x04 not really"),
        ("a.tar", b"x" * 1024),
        ("a.tar.gz", gzip.compress(b"text\na csv, not a tar\n" * 50)),
    ],
)
def test_a_file_that_is_not_what_its_name_says_fails_naming_it(tmp_path, name, data):
    path = write(tmp_path / name, data)
    with pytest.raises(BadInput, match=re.escape(str(path))):
        list(iter_records(path))


# ---------------------------------------------------------------------------------------------
# CSV and TSV quoting


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_an_unclosed_quote_rejects_its_row_alone_with_its_line(tmp_path, delimiter):
    """Strict parsing stops at the stray quote's end (the end of the file, or where the next quote
    closes it); the rows it swallowed are then read again."""
    kind, name = ("CSV", "r.csv") if delimiter == "," else ("TSV", "r.tsv")
    never_closed = ["text,label", "first,pos", "second,pos", '"unclosed quote,neg', "third,pos", "fourth,neg"]
    closed_later = [
        "text,label",
        "first,pos",
        '"unclosed quote,neg',
        "second,pos",
        '"two',
        'lines",neg',
        "third,neg",
    ]
    start = repr(f'"unclosed quote{delimiter}neg\n')  # the bad line, as the reason quotes it
    for lines, reason, texts in [
        (
            never_closed,
            f"malformed {kind}: a quoted field opened on line 4 is never closed; "
            f"the line starts {start} (reading resumes on the next line)",
            ["first", "second", "third", "fourth"],
        ),
        (
            closed_later,
            f"malformed {kind} on lines 3-5: '{delimiter}' expected after '\"'; the record starts {start}",
            ["first", "second", "two\nlines", "third"],
        ),
    ]:
        path = write(tmp_path / name, "\n".join(lines).replace(",", delimiter).encode() + b"\n")
        records = list(iter_records(path))
        (reject,) = [r for r in records if isinstance(r, Reject)]
        assert reject.reason == reason and reject.row == lines.index('"unclosed quote,neg')
        assert [r.text for r in records if isinstance(r, Review)] == texts
        assert [r.row for r in records] == list(range(1, len(texts) + 2))


def test_text_after_a_closing_quote_is_a_reject_not_glued_on(tmp_path):
    path = write(
        tmp_path / "r.csv", b'text,label\n"quoted"tail,pos\n"fine, quoted",neg\n"a\nb"c,pos\nlast,neg\n'
    )
    records = list(iter_records(path))
    assert [(type(r).__name__, r.row) for r in records] == [
        ("Reject", 1),
        ("Review", 2),
        ("Reject", 3),
        ("Review", 4),
        ("Review", 5),
    ]
    assert records[0].reason == (
        "malformed CSV on line 2: ',' expected after '\"'; the record starts '\"quoted\"tail,pos\\n'"
    )
    assert records[2].reason.startswith("malformed CSV on lines 4-5: ',' expected after '\"'")
    # line 5 is read again on its own, where (a quote inside an unquoted field) it is a good row
    assert [r.text for r in records if isinstance(r, Review)] == ["fine, quoted", 'b"c', "last"]


def test_a_record_with_the_wrong_field_count_over_lines_names_them(tmp_path):
    path = write(tmp_path / "r.csv", b'text,label\n"one\ntwo",pos,extra\nok,neg\n')
    records = list(iter_records(path))
    assert records[0] == Reject(
        str(path), 1, "expected 2 fields, found 3 on lines 2-3 (is a quote misplaced?)"
    )
    assert records[1].text == "ok"


def test_errors_in_the_header_and_first_line_name_the_line(tmp_path):
    with pytest.raises(BadInput, match=r"r\.csv: unreadable header row \(line 1\): ',' expected after '\"'"):
        list(iter_records(write(tmp_path / "r.csv", b'"text"x,label\na,b\n')))
    with pytest.raises(BadInput, match=r"h\.csv: header record on line 1 over the limit of 20 bytes"):
        list(iter_records(write(tmp_path / "h.csv", b"text," + b"y" * 100 + b"\na,b\n"), max_record_bytes=20))
    with pytest.raises(
        BadInput, match=r"u\.csv: header row has undecodable bytes \(not UTF-8\) in column 2: 'la"
    ):
        list(iter_records(write(tmp_path / "u.csv", b"text,la\xffbel\na,b\n")))
    with pytest.raises(BadInput, match=r"r\.jsonl: line 2 is a JSON array"):
        list(iter_records(write(tmp_path / "r.jsonl", b"\n[1, 2]\n")))
    (reject,) = [
        r
        for r in iter_records(write(tmp_path / "m.jsonl", b'{"text": "a"}\n{"text": oops}\n'))
        if isinstance(r, Reject)
    ]
    assert reject.row == 2 and reject.reason.endswith("""in '{"text": oops}'""")


# ---------------------------------------------------------------------------------------------
# amazon blocks


def test_an_amazon_block_cut_short_by_the_next_is_rejected_and_the_next_read(tmp_path):
    data = (
        b"<review><title>one</title>\n<review_text>never closed\n"
        b"<review><title>two</title></review>\n<review><title>three</title>"
    )
    records = list(iter_records(write(tmp_path / "positive.review", data)))
    assert records == [
        Reject(
            str(tmp_path / "positive.review"),
            1,
            "unterminated <review> block (opened on line 1): a new <review> opens on line 3",
        ),
        Review(
            "two",
            None,
            "positive",
            None,
            str(tmp_path / "positive.review"),
            2,
            f"{tmp_path / 'positive.review'}:2",
        ),
        Reject(
            str(tmp_path / "positive.review"),
            3,
            "unterminated <review> block (opened on line 4) at end of file",
        ),
    ]


# ---------------------------------------------------------------------------------------------
# links and special members in archives


def linked_tar(path: Path, compression: str = "") -> Path:
    members = [
        ("d/a.csv", tarfile.REGTYPE, b"text\nreal\n", ""),
        ("d/hard.csv", tarfile.LNKTYPE, b"", "d/a.csv"),
        ("d/soft.csv", tarfile.SYMTYPE, b"", "a.csv"),
        ("d/etc.csv", tarfile.SYMTYPE, b"", "/etc/passwd"),
        ("d/README", tarfile.SYMTYPE, b"", "../README"),  # not data: skipped as any README
        ("d/fifo.csv", tarfile.FIFOTYPE, b"", ""),
        ("d/b.csv", tarfile.REGTYPE, b"text\nafter\n", ""),
    ]
    with tarfile.open(path, f"w:{compression}") as tar:
        for name, kind, data, target in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, target, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("compression", ["", "gz"])
def test_links_and_special_members_in_a_tar_are_rejected_with_a_reason(tmp_path, compression):
    path = linked_tar(tmp_path / ("links.tar" + (f".{compression}" if compression else "")), compression)
    records = list(iter_records(path))
    src = f"{path}::d/"
    assert [(r.source, r.row, getattr(r, "text", None) or r.reason) for r in records] == [
        (src + "a.csv", 1, "real"),
        (
            src + "hard.csv",
            1,
            "a hard link to 'd/a.csv': links in an archive are not followed "
            "(repack it with tar --hard-dereference)",
        ),
        (src + "soft.csv", 1, "a symbolic link to 'a.csv': links in an archive are not followed"),
        (src + "etc.csv", 1, "a symbolic link to '/etc/passwd': links in an archive are not followed"),
        (src + "fifo.csv", 1, "not a regular file (a device, FIFO or unknown member type): not read"),
        (src + "b.csv", 1, "after"),
    ]
    assert [r.reason for r in iter_records(f"{path}::d/hard.csv")] == [records[1].reason]  # by glob too
    forced = list(iter_records(path, format="csv"))
    assert [type(r).__name__ for r in forced] == ["Review", "Reject", "Reject", "Reject", "Reject", "Review"]


def test_a_link_among_imdb_files_is_numbered_with_them(tmp_path):
    path = tmp_path / "imdb.tar"
    with tarfile.open(path, "w") as tar:
        for name, target in [
            ("aclImdb/train/pos/0_9.txt", ""),
            ("aclImdb/train/pos/1_8.txt", "0_9.txt"),
            ("aclImdb/train/neg/2_1.txt", ""),
        ]:
            info = tarfile.TarInfo(name)
            if target:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"good"))
    assert [(type(r).__name__, r.row) for r in iter_records(path)] == [
        ("Review", 1),
        ("Reject", 2),
        ("Review", 3),
    ]


def test_a_symlink_in_a_zip_is_rejected_with_a_reason(tmp_path):
    path = tmp_path / "links.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("d/a.csv", "text\nreal\n")
        link = zipfile.ZipInfo("d/soft.csv")
        link.create_system = 3
        link.external_attr = 0o120777 << 16  # S_IFLNK: the member's data is the target path
        archive.writestr(link, "a.csv")
    records = list(iter_records(path))
    assert [getattr(r, "text", None) or r.reason for r in records] == [
        "real",
        "a symbolic link: links in an archive are not followed",
    ]


def test_an_archive_holding_only_links_reports_them_not_an_empty_read(tmp_path):
    path = tmp_path / "only.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("x.jsonl")
        info.type, info.linkname = tarfile.SYMTYPE, "/dev/zero"
        tar.addfile(info)
    assert [r.reason for r in iter_records(path)] == [
        "a symbolic link to '/dev/zero': links in an archive are not followed"
    ]


def test_bz2_and_xz_single_member_tars_and_a_forced_format_on_a_gz(tmp_path):
    csv = b"text,label\nhello,pos\n"
    for suffix, compress in ((".tar.bz2", bz2.compress), (".tar.xz", lzma.compress)):
        path = write(tmp_path / f"a{suffix}", compress(tar_bytes([("r.csv", csv)])))
        assert [r.text for r in iter_records(path)] == ["hello"]
    odd = write(tmp_path / "reviews.data.gz", gzip.compress(csv))  # no format in its name
    assert [r.text for r in iter_records(odd, format="csv")] == ["hello"]
