"""Tests of the tokenizer, vocabulary building and vectorizing: worked examples on tiny corpora."""

from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from textrelu import __version__
from textrelu.data.readers import Reject, Review
from textrelu.data.tokenize import TOKENIZER_VERSION, terms, tokens
from textrelu.data.vectorize import vectorize, vectorize_batches
from textrelu.data.vocab import FORMAT_LINE, Vocabulary, count_terms, select_terms
from textrelu.errors import BadInput
from textrelu.nn.batches import csr_to_torch
from textrelu.stages.build_vocab import build_vocab


def review(text=None, terms=None, label=None, row=1):
    return Review(text, terms, label, None, "mem.csv", row, f"mem.csv:{row}")


# ---------------------------------------------------------------------------------------------
# tokenize


def test_docstring_worked_example():
    assert terms("Not good!<br />Don't buy.", ngrams=2) == [
        "not",
        "good",
        "!",
        "don't",
        "buy",
        "not good",
        "good !",
        "! don't",
        "don't buy",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Great<br />movie<br/>really", ["great", "movie", "really"]),  # <br /> and <br/> split words
        ("<p>Fine</p><i>film</i>", ["fine", "film"]),  # other tags too
        ("LOUD Quiet MiXeD", ["loud", "quiet", "mixed"]),  # lowercased
        ("Don't say it's the 90's", ["don't", "say", "it's", "the", "90's"]),  # inner apostrophes kept
        ("rock\u2019n\u2019roll", ["rock\u2019n\u2019roll"]),  # typographic apostrophe
        ("'quoted' dogs' 'tis", ["quoted", "dogs", "tis"]),  # outer apostrophes dropped
        ("great!!! really??", ["great", "!", "!", "!", "really", "?", "?"]),  # each ! and ? a token
        ("snake_case a-b x.y (c), d;e/f", ["snake", "case", "a", "b", "x", "y", "c", "d", "e", "f"]),
        ("Café NAÏVE Straße 日本語 ÜBER", ["café", "naïve", "straße", "日本語", "über"]),
        ("10/10, 4.5 stars", ["10", "10", "4", "5", "stars"]),
        ("", []),
        ("... --- ***", []),
    ],
)
def test_tokens_worked_examples(text, expected):
    assert tokens(text) == expected


def test_unigrams_then_bigrams_in_order():
    assert terms("A b a", ngrams=1) == ["a", "b", "a"]
    assert terms("A b a", ngrams=2) == ["a", "b", "a", "a b", "b a"]
    assert terms("one", ngrams=2) == ["one"]  # no bigram from a single token
    assert terms("x! y", ngrams=2)[-2:] == ["x !", "! y"]


def test_trigrams_after_bigrams():
    assert terms("A b a c", ngrams=3) == ["a", "b", "a", "c", "a b", "b a", "a c", "a b a", "b a c"]
    assert terms("two words", ngrams=3) == ["two", "words", "two words"]  # too short for a trigram


@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_vocabulary_ids_are_the_kept_terms_of_the_text(ngrams):
    """Vocabulary.ids (the fast path: tokens once, n-grams lazily) finds exactly the kept terms
    among terms(text, ngrams), for every n."""
    text = "Not very good, not very bad! Not good at all."
    all_terms = terms(text, ngrams)
    kept = sorted(set(all_terms))[::2] + ["absent term"]
    vocab = Vocabulary(kept, [1] * len(kept), ngrams=ngrams)
    assert vocab.ids(review(text=text)) == sorted({vocab.index[t] for t in all_terms if t in vocab.index})
    assert vocab.ids(review(text=text))


def test_less_than_and_greater_than_in_text_are_not_tags():
    assert tokens("price < 20 and quality > expected") == ["price", "20", "and", "quality", "expected"]


def test_combining_marks_stay_inside_words():
    assert tokens("cafe\u0301") == ["cafe\u0301"] or tokens("cafe\u0301") == ["caf\u00e9"]
    assert tokens("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]


# ---------------------------------------------------------------------------------------------
# vocabulary: counting, selecting, building

# Five rows; row 4 has empty text and is rejected. "bad" appears 4 times in row 2 (df counts 1),
# "awful" twice in row 5. Unigram document frequencies over the 4 read reviews:
#   movie 3; ! 2, bad 2, good 2; acting 1, awful 1, ending 1, just 1, plot 1.
CORPUS = (
    "text,label\n"
    '"Good movie, good acting!",pos\n'
    "Bad movie. Bad bad bad,neg\n"
    '"good plot<br />bad ending",pos\n'
    "   ,neg\n"
    '"Awful movie! Just awful",neg\n'
)
EXPECTED_DF = {
    "movie": 3,
    "!": 2,
    "bad": 2,
    "good": 2,
    "acting": 1,
    "awful": 1,
    "ending": 1,
    "just": 1,
    "plot": 1,
}
ORDER = ["movie", "!", "bad", "good", "acting", "awful", "ending", "just", "plot"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def test_count_terms_exact_document_frequencies(corpus):
    from textrelu.data.readers import iter_records

    df, n_documents, rejects = count_terms(iter_records(corpus), ngrams=1, quiet=True)
    assert dict(df) == EXPECTED_DF
    assert n_documents == 4  # the empty-text row is not a document
    assert [(r.row, r.reason) for r in rejects] == [(4, "empty text")]


def test_count_terms_bigrams(corpus):
    from textrelu.data.readers import iter_records

    df, n_documents, _ = count_terms(iter_records(corpus), ngrams=2, quiet=True)
    assert n_documents == 4
    assert df["movie"] == 3 and df["bad"] == 2  # unigrams still counted
    assert df["bad bad"] == 1  # twice in row 2, one document
    assert df["good movie"] == 1 and df["movie !"] == 1 and df["acting !"] == 1
    assert df["bad ending"] == 1 and "ending bad" not in df


@pytest.mark.parametrize("ngrams", [1, 2])
def test_count_terms_on_workers_equals_counting_here(monkeypatch, ngrams):
    """Chunks counted on 2 worker processes add up to the same document frequencies, documents
    and rejects as counting here; given terms count as they are."""
    import textrelu.data.vocab as module

    monkeypatch.setattr(module, "CHUNK", 7)  # many chunks from a few reviews
    words = ["good", "bad", "not", "movie", "!", "plot"]
    rng = np.random.default_rng(1)
    records = [review(" ".join(rng.choice(words, size=rng.integers(0, 10))), row=i) for i in range(50)]
    records[5] = Reject("x.csv", 6, "empty text")
    records[9] = review(text=None, terms=["given", "given", "terms"])
    here = count_terms(iter(records), ngrams, quiet=True, workers=0)
    there = count_terms(iter(records), ngrams, quiet=True, workers=2)
    assert here == there
    assert here[1] == 49 and [r.row for r in here[2]] == [6] and here[0]["given"] == 1
    assert here[0] == Counter(
        t
        for r in records
        if isinstance(r, Review)
        for t in set(r.terms if r.terms is not None else terms(r.text, ngrams))
    )


def test_count_terms_uses_given_terms_and_skips_rejects():
    records = [
        review(terms=["x", "y", "x"]),
        Reject("f", 2, "broken"),
        review(text="ignored when terms are given", terms=["y"]),
        review(text="x z"),
    ]
    df, n_documents, rejects = count_terms(records, ngrams=1, quiet=True)
    assert dict(df) == {"x": 2, "y": 2, "z": 1}
    assert n_documents == 3 and len(rejects) == 1


def test_drop_rarest_keeps_the_most_frequent():
    from textrelu.data.vocab import drop_rarest

    df = Counter({"a": 5, "b": 3, "c": 1, "d": 1, "e": 2})
    assert drop_rarest(df, 2) == 2  # the 1s leave three, the 2 goes too
    assert df == Counter({"a": 5, "b": 3})
    assert drop_rarest(df, 2) == 0 and len(df) == 2  # already small enough: nothing dropped


def test_count_terms_bounds_the_distinct_terms(monkeypatch, capsys):
    """Past MAX_DISTINCT the rarest terms are dropped as counting goes, with a line saying how far
    a count may fall short; the frequent terms keep their exact counts."""
    import textrelu.data.vocab as module

    monkeypatch.setattr(module, "CHUNK", 10)
    monkeypatch.setattr(module, "MAX_DISTINCT", 40)
    records = [review(f"good movie w{i} v{i}", row=i) for i in range(100)]  # 2 new terms a review
    df, n_documents, _ = count_terms(iter(records), ngrams=1, workers=0)
    assert n_documents == 100 and len(df) <= 40
    assert df["good"] == 100 and df["movie"] == 100
    assert "over 40 distinct terms" in capsys.readouterr().err
    exact = count_terms(iter(records[:10]), ngrams=1, quiet=True, workers=0)[0]
    assert len(exact) == 22  # under the bound nothing is dropped


def test_select_terms_orders_by_frequency_then_alphabet_and_cuts():
    df = Counter(EXPECTED_DF)
    assert [t for t, _ in select_terms(df, 100, 1)] == ORDER
    assert select_terms(df, 2, 1) == [("movie", 3), ("!", 2)]
    assert select_terms(df, 100, 2) == [("movie", 3), ("!", 2), ("bad", 2), ("good", 2)]
    assert select_terms(df, 100, 3) == [("movie", 3)]
    assert select_terms(df, 100, 4) == []


def test_build_vocab_writes_and_returns_the_cut_vocabulary(corpus, tmp_path):
    out = tmp_path / "vocab.txt"
    vocab = build_vocab([corpus], out, size=3, min_df=2, quiet=True)
    assert vocab.terms == ["movie", "!", "bad"]
    assert vocab.document_frequency == [3, 2, 2]
    assert vocab.n_documents == 4 and vocab.ngrams == 1 and len(vocab) == 3
    assert vocab.index == {"movie": 0, "!": 1, "bad": 2}
    assert out.read_text(encoding="utf-8").splitlines() == [
        f"{FORMAT_LINE} (version {__version__})",
        "# ngrams: 1",
        "# documents: 4",
        f"# tokenizer: {TOKENIZER_VERSION}",
        "# terms: 3",
        "movie\t3",
        "!\t2",
        "bad\t2",
    ]


def test_build_vocab_min_df_cut(corpus, tmp_path):
    vocab = build_vocab([corpus], tmp_path / "v.txt", size=100, min_df=1, quiet=True)
    assert vocab.terms == ORDER
    vocab = build_vocab([corpus], tmp_path / "v.txt", size=100, min_df=3, quiet=True)
    assert vocab.terms == ["movie"]


def test_build_vocab_counts_over_several_files(corpus, tmp_path):
    vocab = build_vocab([corpus, corpus], tmp_path / "v.txt", size=2, min_df=1, quiet=True)
    assert vocab.n_documents == 8
    assert list(zip(vocab.terms, vocab.document_frequency)) == [("movie", 6), ("!", 4)]


def test_empty_vocabulary_is_a_helpful_error(corpus, tmp_path):
    out = tmp_path / "v.txt"
    with pytest.raises(BadInput) as err:
        build_vocab([corpus], out, size=10, min_df=5, quiet=True)
    message = str(err.value)
    assert "empty vocabulary" in message and "5" in message and "4 reviews" in message
    assert str(corpus) in message and "min_df" in message
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"size": 0}, "size must"),
        ({"size": -3}, "size must"),
        ({"ngrams": 4}, "ngrams must"),
        ({"ngrams": 0}, "ngrams must"),
        ({"min_df": 0}, "min_df must"),
    ],
)
def test_build_vocab_rejects_bad_options(corpus, tmp_path, kwargs, flag):
    with pytest.raises(BadInput, match=flag):
        build_vocab([corpus], tmp_path / "v.txt", quiet=True, **kwargs)


def test_build_vocab_needs_files(tmp_path):
    with pytest.raises(BadInput, match="at least one"):
        build_vocab([], tmp_path / "v.txt", quiet=True)


# ---------------------------------------------------------------------------------------------
# vocabulary files


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = Vocabulary(["not good", "good", "!"], [7, 5, 5], ngrams=2, n_documents=12)
    path = tmp_path / "sub" / "v.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8").splitlines()[-3:] == ["not good\t7", "good\t5", "!\t5"]
    loaded = Vocabulary.load(path)
    assert loaded.terms == vocab.terms
    assert loaded.document_frequency == [7, 5, 5]
    assert (loaded.ngrams, loaded.n_documents, loaded.tokenizer) == (2, 12, TOKENIZER_VERSION)
    assert loaded.index == {"not good": 0, "good": 1, "!": 2}
    assert Vocabulary.from_dict(vocab.to_dict()).to_dict() == vocab.to_dict()
    assert [p.name for p in path.parent.iterdir()] == ["v.txt"]  # no temp file left


def test_load_rejects_a_file_that_is_not_a_vocabulary(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\ngood,pos\n", encoding="utf-8")
    with pytest.raises(BadInput, match="not a textrelu vocabulary") as err:
        Vocabulary.load(path)
    assert str(path) in str(err.value) and "text,label" in str(err.value)


def test_load_names_the_malformed_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(f"{FORMAT_LINE} (version 0)\n# ngrams: 1\ngood\t3\nbad three\n", encoding="utf-8")
    with pytest.raises(BadInput) as err:
        Vocabulary.load(path)
    assert f"{path}, line 4" in str(err.value) and "bad three" in str(err.value)
    path.write_text(f"{FORMAT_LINE}\ngood\tmany\n", encoding="utf-8")
    with pytest.raises(BadInput, match="line 2"):
        Vocabulary.load(path)


def test_load_missing_and_empty_vocabularies(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        Vocabulary.load(tmp_path / "nope.txt")
    path = tmp_path / "v.txt"
    path.write_text(f"{FORMAT_LINE}\n# ngrams: 1\n", encoding="utf-8")
    with pytest.raises(BadInput, match="no terms"):
        Vocabulary.load(path)


# ---------------------------------------------------------------------------------------------
# vectorize


def test_vectorize_binary_shape_and_unknown_terms():
    vocab = Vocabulary(["good", "bad", "movie", "!"], [4, 3, 2, 1])
    x = vectorize(
        [review("Good good GOOD movie"), review("nothing known here"), review("bad! bad movie good")], vocab
    )
    assert sp.isspmatrix_csr(x) and x.shape == (3, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x.toarray(), [[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert set(x.data.tolist()) == {1.0}  # repeated terms give 1, never 2
    assert x.nnz == 6


def test_vectorize_uses_given_terms_instead_of_text():
    vocab = Vocabulary(["good", "bad"], [1, 1])
    x = vectorize(
        [review(text="good good", terms=["bad", "zzz", "bad"]), review(text=None, terms=["good"])], vocab
    )
    np.testing.assert_array_equal(x.toarray(), [[0, 1], [1, 0]])


def test_vectorize_bigram_vocabulary():
    vocab = Vocabulary(["not good", "good", "good !"], [1, 1, 1], ngrams=2)
    x = vectorize([review("Not good!"), review("good, not")], vocab)
    np.testing.assert_array_equal(x.toarray(), [[1, 1, 1], [0, 1, 0]])


def test_vectorize_empty_list():
    x = vectorize([], Vocabulary(["a"], [1]))
    assert x.shape == (0, 1) and x.nnz == 0


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_vectorize_batches_on_workers_equals_vectorize_in_order(workers, monkeypatch):
    """Worker threads give the same matrices as this thread, batch for batch, in order,
    for raw texts and for given terms alike."""
    import textrelu.data.workers

    pools = []
    real_pool_map = textrelu.data.workers.pool_map
    monkeypatch.setattr(
        textrelu.data.workers, "pool_map", lambda *a, **k: pools.append(a[3]) or real_pool_map(*a, **k)
    )
    words = ["good", "bad", "not", "movie", "!", "plot", "zzz"]
    rng = np.random.default_rng(0)
    reviews = [review(" ".join(rng.choice(words, size=rng.integers(0, 12))), row=i) for i in range(40)]
    reviews[3] = review(text=None, terms=["good", "zzz", "movie"])
    vocab = Vocabulary(["good", "bad", "movie", "not good", "!"], [5, 4, 3, 2, 1], ngrams=2)
    batches = [reviews[i : i + 7] for i in range(0, len(reviews), 7)]
    got = list(vectorize_batches(iter(batches), vocab, workers=workers))
    assert [b for b, _ in got] == batches
    for batch, x in got:
        expected = vectorize(batch, vocab)
        assert x.dtype == np.float32 and x.shape == expected.shape
        np.testing.assert_array_equal(x.toarray(), expected.toarray())
    assert sum(x.nnz for _, x in got) > 0
    assert pools == ([workers] if workers else [])  # the workers really ran


def test_to_arrays_stacks_chunks_vectorized_on_workers(monkeypatch):
    import textrelu.data.dataset as dataset

    monkeypatch.setattr(dataset, "CHUNK", 5)
    reviews = [review(f"good movie {'bad' * (i % 2)} plot {i}", row=i) for i in range(23)]
    vocab = Vocabulary(["good", "bad", "plot", "3"], [4, 3, 2, 1])
    data = dataset.to_arrays(reviews, vocab, workers=2)
    np.testing.assert_array_equal(data.X.toarray(), vectorize(reviews, vocab).toarray())
    assert data.X.dtype == np.float32 and data.y is None


def test_counting_on_workers_from_a_script_without_main_guard(tmp_path):
    """Worker processes must not re-run the caller's script (as spawned workers would)."""
    import subprocess
    import sys

    script = tmp_path / "plain_script.py"
    script.write_text(
        "from textrelu.data.readers import Review\n"
        "from textrelu.data.vocab import CHUNK, count_terms\n"
        "reviews = [Review(f'good movie {i}', None, None, None, 'x', i, str(i)) for i in range(2 * CHUNK + 1)]\n"
        "df, n, _ = count_terms(iter(reviews), 1, quiet=True, workers=2)\n"
        "print('good', df['good'], 'documents', n)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["good", "2001", "documents", "2001"]


def test_vectorize_batches_rejects_negative_workers():
    with pytest.raises(BadInput, match="workers must be at least 0"):
        list(vectorize_batches([[review("good")]], Vocabulary(["good"], [1]), workers=-1))


def test_csr_to_torch_same_dense_matrix():
    rng = np.random.default_rng(0)
    dense = (rng.random((6, 9)) < 0.3) * rng.random((6, 9)) * 5
    dense[2] = 0  # an empty row
    x = sp.csr_matrix(dense)  # float64 in, float32 out
    t = csr_to_torch(x)
    assert t.layout == torch.sparse_csr and t.dtype == torch.float32 and tuple(t.shape) == (6, 9)
    np.testing.assert_allclose(t.to_dense().numpy(), dense.astype(np.float32), rtol=0, atol=0)
    sub = x[[4, 0, 2]]  # a shuffled batch, as ArrayData makes
    np.testing.assert_array_equal(csr_to_torch(sub).to_dense().numpy(), dense[[4, 0, 2]].astype(np.float32))


def test_size_per_review_lets_the_vocabulary_grow_with_the_reviews():
    from textrelu.data.vocab import from_counts
    from textrelu.settings import Terms

    df = Counter({f"t{i}": 100 - i for i in range(50)})
    assert Terms(size=30).cap(1) == 30  # no per-review bound: --size alone
    grows = Terms(size=30, min_df=1, size_per_review=4)
    assert [grows.cap(n) for n in (1, 5, 100)] == [4, 20, 30]
    assert from_counts(df, 5, grows).terms == [f"t{i}" for i in range(20)]
