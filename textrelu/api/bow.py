"""BagOfWords: raw texts -> the binary CSR matrix the network reads, as a scikit-learn transformer.

    bow = BagOfWords(size=5000, ngrams=2).fit(texts)
    X = bow.transform(texts)          # scipy CSR, float32 ones, (n_texts, len(bow.vocabulary_))

The same tokenizer, counting and selection as `textrelu build-vocab` (data/vocab.count_terms,
select_terms): the constructor keywords are the fields of settings.Terms (but `workers`: texts in
memory are counted here, in this process), with their defaults.
"""

import inspect

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from textrelu.data.readers import Review
from textrelu.data.vectorize import ids_to_csr
from textrelu.data.vocab import Vocabulary, count_terms, select_terms
from textrelu.errors import BadInput
from textrelu.settings import Group, Settings, Terms

SETTINGS = Settings(Group("terms", Terms(), exclude=("workers",)))


def keyword_init(settings: Settings, extra: tuple = ()):
    """An __init__ that only stores its keywords (a settings namespace's flat keys, with their
    defaults), with a real signature so that scikit-learn's get_params, clone and repr read it."""

    defaults = {**settings.defaults(), **{p.name: p.default for p in extra}}

    def __init__(self, **params):
        unknown = [k for k in params if k not in defaults]
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        for key, default in defaults.items():
            setattr(self, key, params.get(key, default))

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=default)
        for key, default in defaults.items()
    ]
    __init__.__signature__ = inspect.Signature(parameters)
    return __init__


def as_texts(texts) -> list[str]:
    """Any iterable of str as a list; a lone string or a non-string item is a clear error."""
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of str, got a single string; wrap it in a list")
    out = list(texts.tolist() if isinstance(texts, np.ndarray) else texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts must be str, got {type(t).__name__} at position {i}")
    return out


def vectorize_texts(texts, vocabulary: Vocabulary):
    """Texts -> binary float32 CSR (n_texts, len(vocabulary)) by the compiled featurizer, as
    `textrelu score` vectorizes the texts it reads; never dense."""
    return ids_to_csr(*vocabulary.featurizer(as_texts(texts)), len(vocabulary))


class BagOfWords(TransformerMixin, BaseEstimator):
    """Raw texts -> binary bag-of-words CSR matrix, with build-vocab's tokenizer and selection.

    Keywords: settings.Terms (size, ngrams, min_df). Learned: `vocabulary_` (a
    textrelu Vocabulary: `terms`, `index`, document frequencies) and `n_documents_`."""

    __init__ = keyword_init(SETTINGS)

    def fit(self, X, y=None):
        try:
            terms = SETTINGS.resolve(self.get_params()).terms
        except BadInput as e:
            raise ValueError(f"BagOfWords: {e}") from None
        texts = as_texts(X)
        records = (Review(t, None, None, None, "texts", i + 1, str(i + 1)) for i, t in enumerate(texts))
        df, n_documents, _ = count_terms(records, terms.ngrams, quiet=True, workers=0)
        kept = select_terms(df, terms.cap(n_documents), terms.min_df)
        if not kept:
            raise ValueError(
                f"empty vocabulary: no term occurs in at least min_df={terms.min_df} of the "
                f"{n_documents} texts; lower min_df or give more texts"
            )
        self.vocabulary_ = Vocabulary([t for t, _ in kept], [n for _, n in kept], terms.ngrams, n_documents)
        self.n_documents_ = n_documents
        return self

    def transform(self, X):
        check_is_fitted(self, "vocabulary_")
        return vectorize_texts(X, self.vocabulary_)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "vocabulary_")
        return np.asarray(self.vocabulary_.terms, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def __getstate__(self):
        """The vocabulary without its compiled featurizer (rebuilt on first use after unpickling)."""
        state = super().__getstate__()
        if "vocabulary_" in state:
            state = {**state, "vocabulary_": Vocabulary.from_dict(state["vocabulary_"].to_dict())}
        return state
