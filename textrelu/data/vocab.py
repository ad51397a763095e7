"""The vocabulary: the kept terms (index = feature id) and their document frequencies, counted
from review records (stages/build_vocab.py reads the files).

Counting streams over the records: memory grows with the number of distinct terms, not with the
number of reviews, and that number is bounded (MAX_DISTINCT). The vocabulary file is plain
text: a few `# key: value` header lines that record how it was built, then one
`term<TAB>document frequency` line per term, most frequent first (ties in alphabetical order),
so a person can read it and `head` it.
"""

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from textrelu import __version__
from textrelu.data.featurize import Featurizer
from textrelu.data.readers import Reject
from textrelu.data.tokenize import TOKENIZER_VERSION, term_ids
from textrelu.data.workers import document_frequencies, pairs, plan, pool_map
from textrelu.errors import BadInput
from textrelu.io import atomic_path
from textrelu.progress import bar, say

FORMAT_LINE = "# textrelu vocabulary"
CHUNK = 1000  # reviews per worker task when counting
# Distinct terms held while counting, at most. Past it the rarest are dropped, as word2vec's
# ReduceVocab does, so that n-grams over millions of reviews fit in memory: IMDB's 25,000
# training reviews alone hold 5.2 million distinct uni/bi/trigrams (1.4 GB counted, 0.5 GB for
# uni+bigrams), and the count grows with every review. A term dropped and seen again is counted
# from then on, so its frequency can fall short by the sum of the cut-offs (reported); the
# frequent terms a vocabulary keeps are far above them.
MAX_DISTINCT = 10_000_000
_BUILDING = threading.Lock()  # one featurizer build at a time, however many threads ask


@dataclass
class Vocabulary:
    """The kept terms (index = feature id), their document frequencies and how they were made."""

    terms: list[str]
    document_frequency: list[int]
    ngrams: int = 1
    n_documents: int = 0
    tokenizer: str = TOKENIZER_VERSION
    index: dict[str, int] = field(init=False, repr=False)
    _featurizer: Featurizer | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.terms)}

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def featurizer(self) -> Featurizer:
        """The compiled texts-to-ids of these terms, built on first use (numba loads then) and
        once, also when several vectorizing threads ask for it at the same moment."""
        if self._featurizer is None:
            with _BUILDING:
                if self._featurizer is None:
                    self._featurizer = Featurizer(self.terms, self.ngrams)
        return self._featurizer

    def ids(self, review) -> list[int]:
        """Sorted feature ids of the vocabulary terms in a review (each once: vectors are binary)."""
        return term_ids(self.index, self.ngrams, review.text, review.terms)

    def to_dict(self) -> dict:
        return {
            "terms": self.terms,
            "document_frequency": self.document_frequency,
            "ngrams": self.ngrams,
            "n_documents": self.n_documents,
            "tokenizer": self.tokenizer,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        return cls(
            list(d["terms"]),
            list(d["document_frequency"]),
            int(d["ngrams"]),
            int(d["n_documents"]),
            d["tokenizer"],
        )

    def save(self, path) -> None:
        """Write the vocabulary file atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{FORMAT_LINE} (version {__version__})\n")
            f.write(f"# ngrams: {self.ngrams}\n# documents: {self.n_documents}\n")
            f.write(f"# tokenizer: {self.tokenizer}\n# terms: {len(self)}\n")
            for t, df in zip(self.terms, self.document_frequency):
                f.write(f"{t}\t{df}\n")

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """Read a vocabulary file written by `save`; errors name the file and line."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"vocabulary file {path} not found")
        header, kept, dfs = {}, [], []
        with open(path, encoding="utf-8") as f:
            first = f.readline()
            if not first.startswith(FORMAT_LINE):
                raise BadInput(f"{path} is not a textrelu vocabulary file (line 1: {first[:60]!r})")
            for lineno, line in enumerate(f, start=2):
                line = line.rstrip("\n")
                if line.startswith("# "):
                    key, _, value = line[2:].partition(": ")
                    header[key] = value
                    continue
                term, sep, df = line.rpartition("\t")
                if not sep or not (df.isascii() and df.isdigit()):
                    raise BadInput(f"{path}, line {lineno}: expected 'term<TAB>count', got {line[:60]!r}")
                kept.append(term)
                dfs.append(int(df))
        if not kept:
            raise BadInput(f"{path} holds no terms")
        return cls(
            kept,
            dfs,
            int(header.get("ngrams", 1)),
            int(header.get("documents", 0)),
            header.get("tokenizer", TOKENIZER_VERSION),
        )


def count_terms(records, ngrams: int, quiet: bool = False, workers: int | None = None):
    """Document frequency of every term over `records` (Reviews and Rejects), streaming; the
    tokenizing runs on `workers` processes (None: one per core; 0: here)."""
    df, n_documents, rejects = Counter(), 0, []

    def chunks():
        chunk = []
        for rec in bar(records, desc="counting terms", unit="reviews", quiet=quiet):
            if isinstance(rec, Reject):
                rejects.append(rec)
                continue
            chunk.append(rec)
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def task(chunk):
        return ngrams, pairs(chunk)

    n_workers, chunked = plan(chunks(), workers)
    counted = (
        pool_map(document_frequencies, chunked, task, n_workers)
        if n_workers
        else ((chunk, document_frequencies(task(chunk))) for chunk in chunked)
    )
    short = 0  # how far a count may fall short: the sum of the cut-offs
    for chunk, chunk_df in counted:
        n_documents += len(chunk)
        df.update(chunk_df)
        if len(df) > MAX_DISTINCT:
            short += drop_rarest(df, MAX_DISTINCT // 2)
    if short and not quiet:
        say(
            f"counting terms: over {MAX_DISTINCT:,} distinct terms, so the rarest were dropped as it went; "
            f"a document frequency may be short by up to {short}"
        )
    return df, n_documents, rejects


def drop_rarest(df: Counter, keep: int) -> int:
    """Drop from `df` the terms of the lowest counts, so that at most `keep` are left; return the
    cut-off (the highest count dropped)."""
    histogram = Counter(df.values())
    above, cutoff = len(df), 0
    for count in sorted(histogram):
        if above <= keep:
            break
        above -= histogram[count]
        cutoff = count
    for term in [t for t, n in df.items() if n <= cutoff]:
        del df[term]
    return cutoff


def select_terms(df: Counter, size: int, min_df: int) -> list[tuple[str, int]]:
    """The `size` most document-frequent terms with df >= min_df, ties broken alphabetically."""
    kept = [(t, n) for t, n in df.items() if n >= min_df]
    kept.sort(key=lambda tn: (-tn[1], tn[0]))
    return kept[:size]


def from_counts(df: Counter, n_documents: int, terms, sources: str = "the reviews") -> "Vocabulary":
    """The vocabulary that `terms` (settings.Terms) keep of document frequencies `df` counted
    over `n_documents` reviews; `sources` names the input in the error for an empty one."""
    kept = select_terms(df, terms.cap(n_documents), terms.min_df)
    if not kept:
        raise BadInput(
            f"empty vocabulary: no term occurs in at least {terms.min_df} of the "
            f"{n_documents} reviews read from {sources}; lower min_df or give more reviews"
        )
    return Vocabulary([t for t, _ in kept], [n for _, n in kept], terms.ngrams, n_documents)


def build(
    records, terms, quiet: bool = False, sources: str = "the reviews"
) -> tuple["Vocabulary", list, int]:
    """The vocabulary of `records` under `terms` (settings.Terms): (vocabulary, rejects, number
    of distinct terms counted)."""
    df, n_documents, rejects = count_terms(records, terms.ngrams, quiet, terms.workers)
    return from_counts(df, n_documents, terms, sources), rejects, len(df)
