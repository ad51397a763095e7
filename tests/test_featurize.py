"""The compiled featurizer gives exactly `tokenize.term_ids`' ids: its character classes against
the tokenizer's regex on every code point, then whole texts, random and real."""

from itertools import chain
from pathlib import Path

import numpy as np
import pytest

from textrelu.data.featurize import APOSTROPHE, LETTER, PUNCT, WORD, Featurizer, char_classes
from textrelu.data.tokenize import _TOKEN, term_ids, terms
from textrelu.data.vocab import Vocabulary

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def reference(texts, vocab_terms, ngrams):
    """(lengths, ids) as `term_ids` gives them, the definition the featurizer must meet."""
    index = {t: i for i, t in enumerate(vocab_terms)}
    found = [term_ids(index, ngrams, text) for text in texts]
    return np.array([len(f) for f in found], dtype=np.int64), np.fromiter(
        chain.from_iterable(found), dtype=np.int64
    )


def assert_same_ids(texts, vocab_terms, ngrams):
    lengths, ids = Featurizer(vocab_terms, ngrams)(texts)
    want_lengths, want_ids = reference(texts, vocab_terms, ngrams)
    np.testing.assert_array_equal(lengths, want_lengths)
    np.testing.assert_array_equal(ids, want_ids)
    return lengths, ids


def test_character_classes_match_the_regex_on_every_code_point():
    classes = char_classes()
    assert classes.shape == (0x110000,)
    for c in range(0x110000):
        ch = chr(c)
        if ch == "_":  # the tokenizer makes it a space first
            assert classes[c] == 0
            continue
        starts = ch not in "!?" and _TOKEN.fullmatch(ch) is not None
        goes_on = _TOKEN.fullmatch("a" + ch) is not None
        joins = not goes_on and _TOKEN.fullmatch("a" + ch + "a") is not None
        assert bool(classes[c] & WORD) == starts, hex(c)
        assert bool(classes[c] & LETTER) == goes_on, hex(c)
        assert bool(classes[c] & APOSTROPHE) == joins, hex(c)
        assert bool(classes[c] & PUNCT) == (ch in "!?"), hex(c)


# Pieces that exercise every rule: tags, case (and lowercasing that changes length: "İ"),
# apostrophes inside and at the ends of words, combining marks, other scripts, numbers that
# are not digits, underscores, NUL (the featurizer's own separator) and a lone surrogate.
PIECES = [
    "good",
    "Bad",
    "NOT",
    "movie",
    "don't",
    "'quoted'",
    "it’s",
    "''",
    "'",
    "!",
    "?",
    "!!",
    "<br />",
    "</p>",
    "<b>x</b>",
    "< 20 >",
    "_",
    "a_b",
    "café",
    "cafe\u0301",
    "\u0301x",
    "नमस्ते",
    "日本語",
    "İstanbul",
    "ΣΟΦΟΣ",
    "Straße",
    "½",
    "x²",
    "Ⅻ",
    "42",
    "4'2",
    "\u00a0",
    "\t",
    "\n",
    "\0",
    "\ud800",
    "ǅ",
    ",",
    ".",
    "-",
    "  ",
]


def random_texts(n, seed):
    rng = np.random.default_rng(seed)
    return [
        "".join(
            rng.choice(PIECES, size=rng.integers(0, 30))
            if rng.random() < 0.1
            else " ".join(rng.choice(PIECES, size=rng.integers(0, 30)))
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("ngrams", [1, 2, 3])
def test_random_texts_give_the_ids_of_term_ids(ngrams):
    texts = random_texts(400, seed=ngrams)
    counts = {}
    for text in texts:
        for t in set(terms(text, ngrams)):
            counts[t] = counts.get(t, 0) + 1
    vocab_terms = sorted(counts, key=lambda t: (-counts[t], t))[:300]
    lengths, ids = assert_same_ids(texts, vocab_terms, ngrams)
    assert ids.size > 1000 and (lengths == 0).any()  # the test has something to compare


def test_odd_vocabularies_give_the_ids_of_term_ids():
    """Duplicate terms (the later id wins, as in a dict), terms that no text can produce (empty,
    a double space, a four-gram, a term with a space in a unigram vocabulary)."""
    texts = ["not good at all", "good good", "", "Not  good!", "at all", "all"]
    vocab_terms = [
        "good",
        "not good",
        "good",
        "",
        "not  good",
        "not good at all",
        "all",
        "good at all",
        "at all",
        "at",
    ]
    for ngrams in (1, 2, 3):
        assert_same_ids(texts, vocab_terms, ngrams)


def test_empty_batch_and_empty_vocabulary_terms():
    lengths, ids = Featurizer(["good"], 2)([])
    assert lengths.shape == (0,) and ids.shape == (0,)
    lengths, ids = Featurizer(["good"], 1)(["", "   ", "bad"])
    np.testing.assert_array_equal(lengths, [0, 0, 0])


def test_vectorize_uses_the_featurizer_for_texts(monkeypatch):
    from textrelu.data import featurize
    from textrelu.data.readers import Review
    from textrelu.data.vectorize import vectorize

    calls = []
    real = featurize.Featurizer.__call__
    monkeypatch.setattr(
        featurize.Featurizer, "__call__", lambda self, texts: calls.append(len(texts)) or real(self, texts)
    )
    vocab = Vocabulary(["good", "not good"], [2, 1], ngrams=2)
    x = vectorize([Review("Not good", None, None, None, "s", i, str(i)) for i in range(3)], vocab)
    assert calls == [3] and x.toarray().tolist() == [[1, 1]] * 3


def test_ready_made_terms_never_build_the_featurizer():
    from textrelu.data.readers import Review
    from textrelu.data.vectorize import vectorize_batches

    vocab = Vocabulary(["good", "not good"], [2, 1], ngrams=2)
    batches = [[Review(None, ["not", "good", "not good"], None, None, "s", i, str(i))] for i in range(4)]
    out = [x.toarray().tolist() for _, x in vectorize_batches(batches, vocab, workers=2)]
    assert out == [[[1, 1]]] * 4
    assert vocab._featurizer is None


def test_threads_asking_at_once_build_one_featurizer(monkeypatch):
    import threading
    import time

    import textrelu.data.vocab as vocab_module

    builds = []

    class SlowFeaturizer:
        def __init__(self, terms, ngrams):
            builds.append(terms)
            time.sleep(0.05)  # long enough for every thread to arrive while the first builds

    monkeypatch.setattr(vocab_module, "Featurizer", SlowFeaturizer)
    vocab = Vocabulary(["good"], [1])
    got = []
    threads = [threading.Thread(target=lambda: got.append(vocab.featurizer)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(got) == 4 and all(f is got[0] for f in got)


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_real_amazon_reviews_give_the_ids_of_term_ids():
    from textrelu.data.readers import read_reviews
    from textrelu.data.vocab import count_terms, select_terms

    archive = SHARED / "amazon-mds" / "sorted_data_acl.tar.gz"
    reviews = read_reviews(f"{archive}::sorted_data_acl/*/*.review")[0]
    assert len(reviews) == 8000
    texts = [r.text for r in reviews]
    df, _, _ = count_terms(iter(reviews), 2, quiet=True, workers=0)
    vocab_terms = [t for t, _ in select_terms(df, 20000, 2)]
    lengths, ids = assert_same_ids(texts, vocab_terms, 2)
    assert ids.size > 8000 * 100
