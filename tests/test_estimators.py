"""The scikit-learn estimators (textrelu/api/estimators.py, api/bow.py): scikit-learn's own
estimator checks, keywords derived from the settings, validation in fit, pre-training, pickle."""

import inspect
import pickle
from dataclasses import fields

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import make_classification
from sklearn.utils.estimator_checks import parametrize_with_checks

from textrelu.api.bow import BagOfWords
from textrelu.api.estimators import Estimator, RectifierClassifier, RectifierRegressor
from textrelu.settings import Finetuning, Net, Pretraining, Terms

# Tiny and quick, but able to learn scikit-learn's small test problems.
TINY = dict(
    hidden=8, epochs=20, learning_rate=0.01, dropout=0.0, input_dropout=0.0, random_state=0, device="cpu"
)

# Checks that cannot hold for these estimators, by name, with the reason.
# A float32 matrix product rounds by the shape of the batch it is in (BLAS blocking), so a row
# predicted within a subset can differ from the same row within the whole by ~2e-7, beyond the
# check's 1e-7; rows are otherwise independent (eval mode: no dropout, no batch statistics).
FLOAT32_ROUNDING = (
    "float32 matrix products round by batch shape: a row's output moves by ~2e-7 between "
    "batches of different sizes, beyond the check's tolerance of 1e-7"
)
EXPECTED_FAILED = {
    name: {
        "check_methods_subset_invariance": FLOAT32_ROUNDING,
    }
    for name in ("RectifierClassifier", "RectifierRegressor")
}


def expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [RectifierClassifier(**TINY), RectifierRegressor(**TINY)], expected_failed_checks=expected_failed
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def field_names(cls, exclude=()):
    return [f.name for f in fields(cls) if f.name not in exclude]


def test_keywords_derive_from_the_settings_dataclasses():
    """Every keyword is a settings field, with the field's default (pre-training's loop
    settings prefixed pretrain_, unset: as fine-tuning's; its early stopping and learning rate
    prefixed too, with defaults of their own); nothing is declared twice."""
    loop = {"epochs", "batch_size", "learning_rate", "optimizer", "l1", "patience", "valid_fraction"}
    for cls, exclude in ((RectifierClassifier, ("head",)), (RectifierRegressor, ("nb_weights",))):
        params = inspect.signature(cls).parameters
        expected = (
            field_names(Net)
            + field_names(Finetuning, exclude)
            + [f"pretrain_{n}" if n in loop else n for n in field_names(Pretraining, ("epochs",))]
            + field_names(Estimator)
        )
        assert list(params) == expected
        assert BaseEstimator._get_param_names.__func__(cls) == sorted(expected)
        for name in field_names(Net):
            assert params[name].default == getattr(Net(), name)
        for name in field_names(Finetuning, exclude):
            assert params[name].default == getattr(Finetuning(), name)
        assert params["noise"].default == Pretraining().noise
        assert params["pretrain_batch_size"].default is None  # as fine-tuning's
        assert params["pretrain_learning_rate"].default == Pretraining().learning_rate
        assert params["pretrain_epochs"].default == 0
        assert params["pretrain_patience"].default == Pretraining().patience
        assert params["pretrain_valid_fraction"].default == Pretraining().valid_fraction
    assert list(inspect.signature(BagOfWords).parameters) == field_names(Terms, ("workers",))
    assert BagOfWords().get_params() == {
        n: getattr(Terms(), n) for n in ("size", "ngrams", "min_df", "size_per_review")
    }


def test_the_constructor_stores_and_fit_checks():
    est = RectifierClassifier(dropout=1.5, hidden="wide")  # stored as given, not checked
    assert est.dropout == 1.5 and est.get_params()["hidden"] == "wide"
    est.set_params(hidden=8)
    X, y = make_classification(40, random_state=0)
    with pytest.raises(ValueError, match="RectifierClassifier: dropout must be in"):
        est.fit(X, y)
    with pytest.raises(ValueError, match="hidden"):
        RectifierClassifier(hidden="wide").fit(X, y)
    with pytest.raises(ValueError, match="pretrain_epochs must be at least 0"):
        RectifierRegressor(pretrain_epochs=-1).fit(X, y)
    with pytest.raises(ValueError, match="min_df must be at least 1"):
        BagOfWords(min_df=0).fit(["a b", "b c"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'hiden'"):
        RectifierClassifier(hiden=3)


def test_pretraining_reads_the_unlabeled_rows_and_changes_the_start():
    X, y = make_classification(200, n_features=30, random_state=0)
    X = sp.csr_matrix((X > 0.5).astype(np.float32))  # binary and sparse, as text is
    unlabeled = sp.csr_matrix((np.random.default_rng(0).random((300, 30)) > 0.7).astype(np.float32))
    small = dict(hidden=8, epochs=3, random_state=0, device="cpu")
    plain = RectifierClassifier(**small).fit(X, y)
    pre = RectifierClassifier(**small, pretrain_epochs=2).fit(X, y, X_unlabeled=unlabeled)
    assert "pretrain" not in plain.metrics_
    assert pre.metrics_["pretrain"]["n_reviews"] == 500  # the labeled rows and the unlabeled ones
    assert not np.allclose(pre.transform(X), plain.transform(X))
    with pytest.raises(ValueError, match="30 features"):
        RectifierClassifier(**small, pretrain_epochs=1).fit(X, y, X_unlabeled=unlabeled[:, :20])


def test_self_training_reads_the_unlabeled_rows():
    X, y = make_classification(500, n_features=30, random_state=0)
    X = (X > 0.5).astype(np.float32)
    small = dict(hidden=8, epochs=3, random_state=0, device="cpu", self_training_threshold=0.6)
    clf = RectifierClassifier(**small).fit(X[:200], y[:200], X_unlabeled=sp.csr_matrix(X[200:]))
    record = clf.metrics_["self_training"]
    assert record["unlabeled"] == 300 and 0 < record["pseudo_labeled"][0] <= 300
    assert record["kept"] == (record["score_after"] > record["score_before"])
    assert clf.predict_proba(X[:5]).shape == (5, 2)
    assert (
        "self_training" not in RectifierClassifier(**small).fit(X[:200], y[:200]).metrics_
    )  # nothing to read
    with pytest.raises(ValueError, match="self-training needs classes"):
        RectifierRegressor(**small).fit(X[:200], y[:200].astype(float), X_unlabeled=X[200:])


def test_sparse_and_dense_inputs_give_the_same_model():
    X, y = make_classification(120, n_features=12, random_state=1)
    X = (X > 0).astype(np.float32)
    small = dict(hidden=8, epochs=3, dropout=0.0, input_dropout=0.0, random_state=0, device="cpu")
    dense = RectifierClassifier(**small).fit(X, y)
    sparse = RectifierClassifier(**small).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(dense.predict_proba(X), sparse.predict_proba(sp.csr_matrix(X)), atol=1e-5)


def test_a_fitted_estimator_pickles_with_its_predictions():
    X, y = make_classification(60, random_state=0)
    est = RectifierRegressor(hidden=8, epochs=3, random_state=0, device="cpu").fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    assert clone(est).get_params() == est.get_params()
