"""The tokenizer: how a review's text becomes terms.

The rules, in order:
1. HTML line breaks and tags (`<br />`, common in IMDB reviews) become spaces.
2. The text is lowercased.
3. A token is a run of letters or digits, with inner apostrophes kept ("don't", "90's"),
   or one of the punctuation marks "!" and "?" (they carry sentiment: "great!!", "really?").
   Everything else separates tokens.
4. Unigrams are the tokens; with ngrams=2, bigrams are adjacent pairs joined by one space
   ("not good"). Terms of a document are returned in order, duplicates included; vectors are
   binary, so callers take the set.

Worked example:
    >>> terms("Not good!<br />Don't buy.", ngrams=2)
    ['not', 'good', '!', "don't", 'buy', 'not good', 'good !', "! don't", "don't buy"]
"""

import re

TOKENIZER_VERSION = "words-apostrophes-exclaim-v1"

_TAG = re.compile(r"<[^>]{0,100}>")
# [^\W_] is a letter or digit in any script; apostrophes only inside a word.
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[!?]")


def tokens(text: str) -> list[str]:
    """Tokens of `text` under the rules in the module docstring."""
    return _TOKEN.findall(_TAG.sub(" ", text).lower())


def terms(text: str, ngrams: int = 1) -> list[str]:
    """Unigrams, then (ngrams=2) bigrams of `text`."""
    words = tokens(text)
    if ngrams == 1:
        return words
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]
