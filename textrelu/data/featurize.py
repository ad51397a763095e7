"""Texts to feature ids in one compiled pass: the tokenizer of `tokenize` and the vocabulary
lookup, for a whole batch at a time.

`tokenize.term_ids` is the definition: a regex finds the tokens, n-grams are joined into strings
and looked up in a dict, all in Python, most of the time in building and hashing n-gram strings.
`Featurizer` gives the same sorted ids per review from one numba loop, several times faster
(benchmarks/vectorize.py; the figures are in docs/performance.md):

1. In Python (C-speed string methods): HTML tags become spaces, the text is lowercased, and the
   batch is joined with NUL separators and viewed as UTF-32 code points.
2. A table of character classes over all of Unicode (`char_classes`: `isalnum` and the
   combining marks of `tokenize`) drives a scanner that finds the regex's tokens: a word
   character, then letters and marks, then any number of (apostrophe, letters); or `!` / `?`.
3. Each token is looked up, by a hash of its code points, among the words of the vocabulary's
   terms; unigram ids come from a table indexed by word id, bigram and trigram ids from hash
   tables keyed by word-id pairs and triples. Unknown words end every n-gram they are in.
4. Each review's ids are sorted and deduplicated (vectors are binary).

tests/test_featurize.py checks that it gives `term_ids`' result on every code point and on real
reviews. Reviews given as ready-made terms (the `processed` format) go through `term_ids`.
"""

import functools

import numpy as np

from textrelu.data.tokenize import APOSTROPHE, EMPTY, LETTER, PUNCT, WORD, combining_mark_ranges, normalize


@functools.cache
def char_classes() -> np.ndarray:
    """uint8 class bits of every code point: WORD (`\\w`, a token may start with it: `isalnum`,
    as `re` uses it, here numpy's vectorized `strings.isalnum`; the underscore left out, as the
    tokenizer does), LETTER (may go on a token: WORD or a combining mark), APOSTROPHE (' and ’)
    and PUNCT (! and ?). tests/test_featurize.py checks every code point against the regex."""
    every_code_point = np.arange(0x110000, dtype=np.uint32).view("<U1")
    table = np.where(np.strings.isalnum(every_code_point), WORD | LETTER, 0).astype(np.uint8)
    for first, last in combining_mark_ranges():
        table[first : last + 1] |= LETTER
    table[[ord("'"), ord("’")]] |= APOSTROPHE
    table[[ord("!"), ord("?")]] |= PUNCT
    return table


def code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code points of the batch, start and end of each text in them): tags removed, lowercased,
    texts separated by a NUL (which no token holds)."""
    lowered = list(map(normalize, texts))
    lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered))
    ends = np.cumsum(lengths + 1) - 1
    chars = np.frombuffer("\0".join(lowered).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return chars, ends - lengths, ends


def _mask(n: int) -> int:
    """Mask of a power-of-two table size with room for 2n entries."""
    return (1 << max(4, (2 * n).bit_length())) - 1


class Featurizer:
    """The feature ids of texts under a vocabulary's terms (index = feature id), as
    `tokenize.term_ids` gives them, a batch at a time."""

    def __init__(self, terms: list[str], ngrams: int):
        self.ngrams, self.n_features = ngrams, len(terms)
        words: dict[str, int] = {}
        grams = ([], [], [])  # per n: (word ids..., feature id) of each term, later ones win
        for i, term in enumerate(terms):
            pieces = term.split(" ")
            if len(pieces) <= ngrams:  # longer terms can never be produced: never found
                grams[len(pieces) - 1].append((*(words.setdefault(w, len(words)) for w in pieces), i))
        self.n_words = max(1, len(words))
        if ngrams >= 3 and self.n_words**3 >= 2**63:
            raise ValueError(f"{len(words)} distinct words are too many for trigram keys")
        from textrelu.data._kernels import batch_ids, build_keys, build_words  # numba: imported on first use

        self._batch_ids = batch_ids
        self.wchars = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        self.woffsets = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=self.woffsets[1:])
        self.wmask = _mask(len(words))
        self.wslots = build_words(self.wchars, self.woffsets, self.wmask)
        self.unigram = np.full(self.n_words, EMPTY, dtype=np.int64)
        for w, i in grams[0]:
            self.unigram[w] = i
        self.tables = []
        for n in (2, 3):
            pairs = {}  # key -> feature id, the last term wins as in a dict index
            for *ws, i in grams[n - 1]:
                key = 0
                for w in ws:
                    key = key * self.n_words + w
                pairs[key] = i
            mask = _mask(len(pairs))
            keys = np.fromiter(pairs.keys(), dtype=np.int64, count=len(pairs))
            values = np.fromiter(pairs.values(), dtype=np.int64, count=len(pairs))
            self.tables += [*build_keys(keys, values, mask), mask]
        self.classes = char_classes()

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(number of ids of each text, all ids concatenated): each text's sorted distinct ids."""
        chars, starts, ends = code_points(texts)
        return self._batch_ids(
            chars,
            starts,
            ends,
            self.classes,
            self.wchars,
            self.woffsets,
            self.wslots,
            self.wmask,
            self.unigram,
            *self.tables,
            self.n_words,
            self.ngrams,
            self.n_features,
        )
