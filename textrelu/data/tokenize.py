"""The tokenizer: how a review's text becomes terms.

The rules, in order:
1. HTML tags (`<br />`, common in IMDB reviews) become spaces.
2. The text is lowercased.
3. A token is a run of letters, digits and combining marks (any script), starting with a letter
   or digit, with inner apostrophes kept ("don't", "90's"),
   or one of the punctuation marks "!" and "?" (they carry sentiment: "great!!", "really?").
   Everything else separates tokens.
4. Unigrams are the tokens; with ngrams=2, bigrams are adjacent pairs joined by one space
   ("not good"); with ngrams=3, trigrams too ("not very good"). Terms of a document are returned
   unigrams first, then bigrams, then trigrams, duplicates included; vectors are binary, so
   callers take the set.

Worked example:
    >>> terms("Not good!<br />Don't buy.", ngrams=2)
    ['not', 'good', '!', "don't", 'buy', 'not good', 'good !', "! don't", "don't buy"]
    >>> terms("not very good", ngrams=3)
    ['not', 'very', 'good', 'not very', 'very good', 'not very good']
"""

import functools
import re
import unicodedata
from itertools import repeat

from textrelu.settings import Terms

TOKENIZER_VERSION = "words-apostrophes-exclaim-v2"

# Character classes of the compiled twin (featurize, _kernels): bits of featurize.char_classes.
WORD, LETTER, APOSTROPHE, PUNCT = 1, 2, 4, 8
EMPTY = -1  # an empty slot, an unknown word, a missing n-gram

# Only tag-like spans ("<br />", "</p>"), so that "price < 20 and > 10" keeps its words.
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,100}>")


@functools.cache
def combining_mark_ranges() -> list[tuple[int, int]]:
    """(first, last) runs of the Unicode combining marks of the BMP (accents, vowel signs)."""
    ranges = []
    for c in range(0x10000):
        if unicodedata.category(chr(c)).startswith("M"):
            if ranges and c == ranges[-1][1] + 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    return [(a, b) for a, b in ranges]  # tuples: the cached value stays unchanged


def _combining_marks() -> str:
    """A regex class body of the combining marks of the BMP."""
    return "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in combining_mark_ranges())


# Underscores separate words; they become spaces first, so that \w below is a letter or digit
# in any script. A word starts with one and goes on with letters, digits and combining marks
# (which \w leaves out: "नमस्ते" is one word); apostrophes only inside. One character class
# per position keeps the regex fast (it is most of the cost of tokenizing).
_LETTER = rf"[\w{_combining_marks()}]"
_TOKEN = re.compile(rf"\w{_LETTER}*(?:['’]{_LETTER}+)*|[!?]")


def normalize(text: str) -> str:
    """Rules 1 and 2: HTML tags become spaces, then the text is lowercased (featurize's compiled
    tokenizer starts from this too)."""
    return _TAG.sub(" ", text).lower()


def tokens(text: str) -> list[str]:
    """Tokens of `text` under the rules in the module docstring."""
    return _TOKEN.findall(normalize(text).replace("_", " "))


MAX_NGRAMS = 3


def terms(text: str, ngrams: int = Terms.ngrams) -> list[str]:
    """Unigrams, then (ngrams=2) bigrams, then (ngrams=3) trigrams of `text`."""
    words = tokens(text)
    if ngrams == 1:
        return words
    return words + list(higher_ngrams(words, ngrams))


def bigrams(words: list[str]):
    """Adjacent pairs joined by a space, lazily (map and zip run in C)."""
    return map(" ".join, zip(words, words[1:]))


def higher_ngrams(words: list[str], ngrams: int):
    """The bigrams (ngrams >= 2), then the trigrams (ngrams = 3) of `words`, lazily."""
    yield from bigrams(words)
    if ngrams >= 3:
        yield from map(" ".join, zip(words, words[1:], words[2:]))


def term_ids(index: dict, ngrams: int, text: str | None, terms: list[str] | None = None) -> list[int]:
    """Sorted ids, under `index` (term -> id), of the terms of a text (or of its given `terms`),
    each once: vectors are binary. Terms not in `index` are dropped."""
    if terms is not None:
        found = set(map(index.get, terms, repeat(-1)))
    else:
        words = tokens(text)
        found = set(map(index.get, words, repeat(-1)))
        if ngrams >= 2:
            found.update(map(index.get, higher_ngrams(words, ngrams), repeat(-1)))
    found.discard(-1)
    return sorted(found)
