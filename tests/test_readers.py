"""Tests of textrelu.data.readers: small hand-written files of every format, then the real corpora."""

import gzip
import itertools
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from textrelu.data.readers import FORMATS, Reject, Review, _slice, detect_format, iter_records, read_reviews
from textrelu.errors import BadInput

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def needs_shared(test):
    """A test on the real corpora: marked realdata, skipped where ../shared/data is absent."""
    return pytest.mark.realdata(
        pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")(test)
    )


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def split(records):
    records = list(records)
    return [r for r in records if isinstance(r, Review)], [r for r in records if isinstance(r, Reject)]


# ---------------------------------------------------------------------------------------------
# csv, tsv, jsonl, parquet

CSV = (
    b"id,text,label\n"
    b"r1,Great phone,pos\n"
    b'r2,"Bad, really bad",neg,extra,more\n'
    b"r3,caf\xe9 in latin-1,pos\n"
    b"r4,   ,neg\n"
    b'r5,"two\nlines",neg\n'
    b"\n"
    b"r6,no label,\n"
)


def test_csv_reads_good_rows_and_rejects_bad_ones_in_order(tmp_path):
    path = write(tmp_path / "reviews.csv", CSV)
    records = list(iter_records(path))
    src = str(path)
    assert records == [
        Review("Great phone", None, "pos", None, src, 1, "r1"),
        Reject(src, 2, "expected 3 fields, found 5"),
        Reject(src, 3, "undecodable bytes (not UTF-8)"),
        Reject(src, 4, "empty text"),
        Review("two\nlines", None, "neg", None, src, 5, "r5"),
        Review("no label", None, None, None, src, 6, "r6"),
    ]
    assert detect_format(path) == "csv"


def test_csv_label_that_is_a_number_is_also_the_rating_and_ids_default_to_source_row(tmp_path):
    path = write(tmp_path / "r.csv", "\ufeffReview,Stars\nnice,5\nmeh, 3 \n")
    reviews, rejects = read_reviews(path)
    assert rejects == []
    assert [(r.text, r.label, r.rating, r.id) for r in reviews] == [
        ("nice", "5", 5.0, f"{path}:1"),
        ("meh", "3", 3.0, f"{path}:2"),
    ]


def test_tsv_detects_columns_case_insensitively_and_takes_rating_from_its_own_column(tmp_path):
    path = write(
        tmp_path / "r.tsv", "Sentence\tSentiment\tscore\nfine film\tpositive\t4.5\nawful\tnegative\tn/a\n"
    )
    reviews, rejects = read_reviews(path)
    assert rejects == []
    assert [(r.text, r.label, r.rating, r.row, r.id) for r in reviews] == [
        ("fine film", "positive", 4.5, 1, f"{path}:1"),
        ("awful", "negative", None, 2, f"{path}:2"),
    ]
    assert detect_format(path) == "tsv"


def test_jsonl_values_read_as_pythons_json_reads_them(tmp_path):
    """orjson reads most lines; a BOM, NaN and integers beyond 64 bits take Python's json module,
    so ids keep every digit."""
    lines = [
        b'\xef\xbb\xbf{"text": "bom", "id": "r1", "label": "pos", "rating": 4}',
        b'{"text": "a", "id": 123456789012345678901234567890, "label": 12345678901234567890123}',
        b'{"text": "b", "rating": NaN, "id": -98765432109876543210}',
        b'{"text": "c", "id": 18446744073709551615, "label": 1e30}',
    ]
    path = write(tmp_path / "r.jsonl", b"\n".join(lines))
    reviews, rejects = split(iter_records(path))
    assert rejects == []
    assert [(r.text, r.id, r.label, r.rating) for r in reviews] == [
        ("bom", "r1", "pos", 4.0),
        ("a", "123456789012345678901234567890", "12345678901234567890123", None),
        ("b", "-98765432109876543210", None, None),
        ("c", "18446744073709551615", "1e+30", None),
    ]


def test_jsonl_rows_are_line_numbers_and_every_line_is_accounted_for(tmp_path):
    lines = [
        b'{"text": "Loved it", "label": 1, "stars": 4, "id": 7}',
        b'{"text": "broken"',
        b"",
        b'{"text": null, "label": 0}',
        b'{"label": 0}',
        b"[1, 2]",
        b'{"text": "\xff"}',
        b'{"text": "fine", "label": ""}',
    ]
    path = write(tmp_path / "r.jsonl", b"\n".join(lines) + b"\n")
    reviews, rejects = split(iter_records(path))
    src = str(path)
    assert reviews == [
        Review("Loved it", None, "1", 4.0, src, 1, "7"),
        Review("fine", None, None, None, src, 8, f"{src}:8"),
    ]
    assert [(r.row, r.reason) for r in rejects[1:]] == [
        (4, "missing text"),
        (5, "missing text"),
        (6, "expected a JSON object, found list"),
        (7, "undecodable bytes (not UTF-8)"),
    ]
    assert rejects[0].row == 2 and rejects[0].reason.startswith("malformed JSON: ")
    assert len(reviews) + len(rejects) == sum(1 for line in lines if line)
    assert detect_format(path) == "jsonl"


def test_json_array_is_refused_as_not_json_lines(tmp_path):
    path = write(tmp_path / "r.json", '[{"text": "a"}]\n')
    with pytest.raises(BadInput, match="JSON Lines"):
        list(iter_records(path))


def test_parquet_via_datasets(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "r.parquet"
    pq.write_table(
        pa.table({"ID": ["a", "b", "c"], "content": ["good", " ", None], "polarity": ["pos", "neg", "neg"]}),
        path,
    )
    src = str(path)
    assert list(iter_records(path)) == [
        Review("good", None, "pos", None, src, 1, "a"),
        Reject(src, 2, "empty text"),
        Reject(src, 3, "missing text"),
    ]
    assert detect_format(path) == "parquet"


def test_explicit_column_names(tmp_path):
    path = write(tmp_path / "r.csv", "body2,y,text\nchosen,yes,not this\n")
    (review,) = read_reviews(path, text_column="BODY2", label_column="y")[0]
    assert (review.text, review.label, review.rating) == ("chosen", "yes", None)


def test_missing_named_column_lists_the_columns_found(tmp_path):
    path = write(tmp_path / "r.csv", "comment,verdict\nhello,1\n")
    expected = r"r\.csv: no column 'label' \(label_column\); columns found: comment, verdict"
    with pytest.raises(BadInput, match=expected):
        read_reviews(path, text_column="comment", label_column="label")
    with pytest.raises(BadInput, match=r"r\.csv: no text column .*columns found: comment, verdict"):
        read_reviews(path)


def test_no_label_column_means_unlabeled(tmp_path):
    path = write(tmp_path / "r.csv", "text\nunlabeled one\n")
    assert [(r.text, r.label, r.rating) for r in read_reviews(path)[0]] == [("unlabeled one", None, None)]


def test_gzipped_csv(tmp_path):
    path = write(tmp_path / "r.csv.gz", gzip.compress(b"text,label\nzipped,pos\n"))
    assert [(r.text, r.label) for r in read_reviews(path)[0]] == [("zipped", "pos")]


# ---------------------------------------------------------------------------------------------
# amazon, processed, svmlight, imdb

AMAZON = b"""<review>
<unique_id>
B0001:great:ann
</unique_id>
<rating>
5.0
</rating>
<title>
Salt & pepper <3
</title>
<review_text>
Works with AT&T & more.
Second line.
</review_text>
</review>
<review>
<unique_id>
B0002:empty:bob
</unique_id>
<rating>
4.0
</rating>
</review>
<review>
<rating>
4.0
</rating>
<review_text>
bad byte \xff here
</review_text>
</review>
<review>
<unique_id>B0004</unique_id><rating>4.0</rating><review_text>no title</review_text>
</review>
"""


def test_amazon_pseudo_xml_with_raw_ampersands(tmp_path):
    path = write(tmp_path / "books" / "positive.review", AMAZON)
    src = str(path)
    assert list(iter_records(path)) == [
        Review(
            "Salt & pepper <3\nWorks with AT&T & more.\nSecond line.",
            None,
            "positive",
            5.0,
            src,
            1,
            "B0001:great:ann",
        ),
        Reject(src, 2, "empty review (no title and no review_text)"),
        Reject(src, 3, "undecodable bytes (not UTF-8)"),
        Review("no title", None, "positive", 4.0, src, 4, "B0004"),
    ]
    assert detect_format(path) == "amazon"


def test_amazon_label_comes_from_the_file_name(tmp_path):
    one = AMAZON[: AMAZON.index(b"</review>") + 10]
    negative = write(tmp_path / "negative.review", b"<data>\n" + one + b"</data>\n")  # as in sorted_data_acl
    unlabeled = write(tmp_path / "unlabeled.review", one)
    assert [r.label for r in read_reviews(negative)[0]] == ["negative"]
    assert [r.label for r in read_reviews(unlabeled)[0]] == [None]


def test_processed_acl_lines(tmp_path):
    lines = (
        "great_book:2 a:1 odd:name:1 #label#:positive\n"
        "\n"
        "boring:1 not_a_count:x #label#:negative\n"
        "dull:1 #label#:negative\n"
    )
    path = write(tmp_path / "processed_acl" / "books" / "positive.review", lines)
    src = str(path)
    assert list(iter_records(path)) == [
        Review(None, ["great_book", "a", "odd:name"], "positive", None, src, 1, f"{src}:1"),
        Reject(src, 3, "malformed feature 'not_a_count:x': expected name:count"),
        Review(None, ["dull"], "negative", None, src, 4, f"{src}:4"),
    ]
    assert detect_format(path) == "processed"


def test_svmlight_lines(tmp_path):
    lines = "+1 3:1 27:0.5 # a comment\n-1 4:2 5:0\nbad 1:1\n1 x:1\n# only a comment\n0\n"
    path = write(tmp_path / "d.svmlight", lines)
    src = str(path)
    assert list(iter_records(path)) == [
        Review(None, ["3", "27"], "1", None, src, 1, f"{src}:1"),
        Review(None, ["4"], "-1", None, src, 2, f"{src}:2"),
        Reject(src, 3, "malformed label 'bad': expected a number"),
        Reject(src, 4, "malformed feature 'x:1': expected index:value"),
        Review(None, [], "0", None, src, 6, f"{src}:6"),
    ]
    assert detect_format(path) == "svmlight"


IMDB_FILES = {
    "aclImdb/README": "the readme",
    "aclImdb/imdb.vocab": "the\nand\n",
    "aclImdb/imdbEr.txt": "0.1\n",
    "aclImdb/train/urls_pos.txt": "http://x\n",
    "aclImdb/train/pos/0_9.txt": "A gem.<br /><br />See it.",
    "aclImdb/train/neg/1_2.txt": "Dreadful.",
    "aclImdb/train/neg/2_1.txt": "  ",
    "aclImdb/train/unsup/5_0.txt": "Watched it once.",
    "aclImdb/test/pos/3_10.txt": "Perfect.",
}


def make_imdb(root: Path) -> Path:
    for name, text in IMDB_FILES.items():
        write(root / name, text)
    return root / "aclImdb"


def test_imdb_folder(tmp_path):
    folder = make_imdb(tmp_path)
    reviews, rejects = read_reviews(folder)
    # folders are walked in sorted order: test before train, neg before pos before unsup
    assert [(r.id, r.label, r.rating, r.row, r.text) for r in reviews] == [
        ("test/pos/3_10", "pos", 10.0, 1, "Perfect."),
        ("train/neg/1_2", "neg", 2.0, 2, "Dreadful."),
        ("train/pos/0_9", "pos", 9.0, 4, "A gem.<br /><br />See it."),
        ("train/unsup/5_0", None, None, 5, "Watched it once."),
    ]
    assert reviews[0].source == str(folder / "test/pos/3_10.txt")
    assert rejects == [Reject(str(folder / "train/neg/2_1.txt"), 3, "empty text")]
    assert detect_format(folder) == "imdb"
    train = read_reviews(folder / "train")[0]
    assert [r.id for r in train] == ["train/neg/1_2", "train/pos/0_9", "train/unsup/5_0"]
    assert detect_format(folder / "train") == "imdb"


def test_imdb_archive_in_archive_order_and_with_a_glob(tmp_path):
    make_imdb(tmp_path / "tree")
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree" / "aclImdb", arcname="aclImdb", recursive=False)
        for name in IMDB_FILES:  # dict order, not sorted: the archive's own order must be kept
            tar.add(tmp_path / "tree" / name, arcname=name)
    reviews, rejects = read_reviews(archive)
    assert [(r.id, r.label, r.rating, r.row) for r in reviews] == [
        ("train/pos/0_9", "pos", 9.0, 1),
        ("train/neg/1_2", "neg", 2.0, 2),
        ("train/unsup/5_0", None, None, 4),
        ("test/pos/3_10", "pos", 10.0, 5),
    ]
    assert reviews[0].source == f"{archive}::aclImdb/train/pos/0_9.txt"
    assert rejects == [Reject(f"{archive}::aclImdb/train/neg/2_1.txt", 3, "empty text")]
    assert detect_format(archive) == "imdb"
    assert [r.id for r in read_reviews(f"{archive}::aclImdb/train/*")[0]] == [
        "train/pos/0_9",
        "train/neg/1_2",
        "train/unsup/5_0",
    ]


# ---------------------------------------------------------------------------------------------
# path syntax: slices and archive globs


def test_slice_suffix(tmp_path):
    path = write(tmp_path / "r.csv", "text,label\n" + "".join(f"t{i},{i}\n" for i in range(5)))
    texts = lambda spec: [r.text for r in read_reviews(spec)[0]]  # noqa: E731
    assert texts(f"{path}[:2]") == ["t0", "t1"]
    assert texts(f"{path}[-1:]") == ["t4"]
    assert texts(f"{path}[1:-1]") == ["t1", "t2", "t3"]
    assert texts(f"{path}[-3:-1]") == ["t2", "t3"]
    assert texts(f"{path}[-2:4]") == ["t3"]
    assert [r.row for r in read_reviews(f"{path}[3:]")[0]] == [4, 5]


def test_slice_counts_rejects_as_records(tmp_path):
    path = write(tmp_path / "r.csv", "text\na\n \nc\n")
    assert [(type(r).__name__, r.row) for r in iter_records(f"{path}[1:]")] == [("Reject", 2), ("Review", 3)]


def test_a_file_whose_real_name_looks_like_a_slice_is_read_whole(tmp_path):
    path = write(tmp_path / "data[0:1]", "text\na\nb\n")
    assert [r.text for r in read_reviews(path, format="csv")[0]] == ["a", "b"]


@pytest.mark.parametrize("start, stop", list(itertools.product([None, 0, 1, 3, 9, -1, -3, -9], repeat=2)))
def test_slice_matches_list_slicing(start, stop):
    items = list(range(6))
    assert list(_slice(iter(items), start, stop)) == items[start:stop]


def test_a_leading_slice_stops_reading_early():
    seen = []

    def records():
        for i in itertools.count():
            seen.append(i)
            yield i

    assert list(_slice(records(), None, 3)) == [0, 1, 2]
    assert len(seen) == 3


def make_amazon_archive(tmp_path: Path) -> Path:
    one = AMAZON[: AMAZON.index(b"</review>") + 10]
    archive = tmp_path / "sorted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [
            ("sorted/README", b"read me"),
            ("sorted/books/positive.review", one * 2),
            ("sorted/books/negative.review", one * 3),
            ("sorted/dvd/positive.review", one),
        ]:
            tar.add(write(tmp_path / "src" / name, data), arcname=name)
    return archive


def test_archive_glob_selects_members_in_archive_order(tmp_path):
    archive = make_amazon_archive(tmp_path)
    reviews, _ = read_reviews(f"{archive}::sorted/*/positive.review")
    assert [(r.source, r.row, r.label) for r in reviews] == [
        (f"{archive}::sorted/books/positive.review", 1, "positive"),
        (f"{archive}::sorted/books/positive.review", 2, "positive"),
        (f"{archive}::sorted/dvd/positive.review", 1, "positive"),
    ]
    assert [(r.source, r.row) for r in read_reviews(f"{archive}::sorted/books/negative.review[-1:]")[0]] == [
        (f"{archive}::sorted/books/negative.review", 3)
    ]
    everything = read_reviews(archive)[0]  # README is skipped
    assert Counter(r.label for r in everything) == {"positive": 3, "negative": 3}


def test_read_reviews_keeps_the_order_of_its_paths(tmp_path):
    a = write(tmp_path / "a.csv", "text\na1\na2\n")
    b = write(tmp_path / "b.jsonl", '{"text": "b1"}\n')
    assert [r.text for r in read_reviews([b, a])[0]] == ["b1", "a1", "a2"]


# ---------------------------------------------------------------------------------------------
# errors


def test_missing_path(tmp_path):
    with pytest.raises(BadInput, match="nope.csv: not found"):
        iter_records(tmp_path / "nope.csv")
    with pytest.raises(BadInput, match="not found"):
        detect_format(tmp_path / "nope.tar.gz::x/*")


def test_unknown_format_of_a_named_file(tmp_path):
    path = write(tmp_path / "notes.docx", "x")
    with pytest.raises(BadInput, match=r"cannot tell the format of .*notes\.docx: expected one of \.csv"):
        iter_records(path)
    with pytest.raises(BadInput, match="cannot tell the format"):
        detect_format(path)
    odd = write(tmp_path / "odd.review", "neither xml nor features\n")
    with pytest.raises(BadInput, match="cannot tell the format"):
        iter_records(odd)


def test_bad_format_name_and_glob_on_a_plain_file(tmp_path):
    path = write(tmp_path / "r.csv", "text\na\n")
    with pytest.raises(BadInput, match="unknown format 'xml'"):
        iter_records(path, format="xml")
    with pytest.raises(BadInput, match="'::'"):
        iter_records(f"{path}::*")


def test_a_glob_that_matches_nothing(tmp_path):
    archive = make_amazon_archive(tmp_path)
    with pytest.raises(BadInput, match="no members matching 'nothing/\\*'"):
        read_reviews(f"{archive}::nothing/*")


def test_formats_constant():
    assert FORMATS == ("csv", "tsv", "jsonl", "parquet", "amazon", "imdb", "processed", "svmlight")


# ---------------------------------------------------------------------------------------------
# the real corpora in ../shared/data (a few seconds in all)


@needs_shared
def test_real_amazon_books_and_the_800_200_split():
    archive = SHARED / "amazon-mds" / "sorted_data_acl.tar.gz"
    reviews, rejects = read_reviews(f"{archive}::sorted_data_acl/books/*")
    assert rejects == []
    assert Counter(r.label for r in reviews) == {"positive": 1000, "negative": 1000}
    assert {r.rating for r in reviews if r.label == "positive"} == {4.0, 5.0}
    assert {r.rating for r in reviews if r.label == "negative"} == {1.0, 2.0}
    assert all(r.text and r.id for r in reviews)
    member = f"{archive}::sorted_data_acl/books/positive.review"
    train, test = read_reviews(f"{member}[:800]")[0], read_reviews(f"{member}[-200:]")[0]
    assert (len(train), len(test)) == (800, 200)
    assert [r.row for r in test] == list(range(801, 1001))
    assert {r.id for r in train}.isdisjoint(r.id for r in test)


@needs_shared
def test_real_processed_books():
    archive = SHARED / "amazon-mds" / "processed_acl.tar.gz"
    reviews, rejects = read_reviews(f"{archive}::processed_acl/books/*")
    assert rejects == []
    assert Counter(r.label for r in reviews) == {"positive": 1000, "negative": 1000}
    assert all(r.terms and r.text is None for r in reviews)
    assert detect_format(archive) == "processed"


@needs_shared
def test_real_msda_books_train():
    archive = SHARED / "amazon-mds" / "msda_5000.tar.gz"
    reviews, rejects = read_reviews(f"{archive}::msda/books_train.svmlight")
    assert rejects == []
    assert Counter(r.label for r in reviews) == {"1": 1000, "-1": 1000}
    assert all(0 <= int(t) < 5000 for r in reviews for t in r.terms)


@needs_shared
def test_real_imdb_train():
    archive = SHARED / "imdb" / "aclImdb_v1_nofeat.tar.gz"
    reviews, rejects = read_reviews(f"{archive}::aclImdb/train/*")
    assert rejects == []
    assert Counter(r.label for r in reviews) == {"pos": 12500, "neg": 12500, None: 50000}
    assert all(r.rating >= 7 for r in reviews if r.label == "pos")
    assert all(r.rating <= 4 for r in reviews if r.label == "neg")
    assert all(r.rating is None for r in reviews if r.label is None)
    assert [r.row for r in reviews[:3]] == [1, 2, 3]
