"""Peers: what a practitioner would fit instead, on the same binary vectors (scikit-learn).

- sentiment: LogisticRegressionCV, C chosen among 10 values by 5-fold cross-validation;
- rating: RidgeCV, alpha chosen among 11 values by efficient leave-one-out, or by 5-fold
  cross-validation where leave-one-out is too large (it eigendecomposes a matrix of
  min(reviews, terms) squared: LOO_MAX_SIDE and below), predictions clipped to the training range
  of ratings (as textrelu's rating heads are);
- "nb-linear" (sentiment, two classes): the same LogisticRegressionCV on the vectors weighted by
  their naive Bayes log-count ratios on the training reviews (NBSVM-style, Wang & Manning 2012).
"""

import math
import time

import numpy as np

from textrelu.data.vectorize import nb_log_ratios
from textrelu.errors import BadInput

PEERS = {"sentiment": "LogisticRegressionCV", "rating": "RidgeCV (clipped)"}
NB_PEER = "NB-weighted LogisticRegressionCV"
PEER_KINDS = ("linear", "nb-linear")
# Leave-one-out RidgeCV eigendecomposes a min(reviews, terms)-square matrix: at 10,000 it takes
# minutes; at 22,500 reviews and 100,000 terms it held 21 GB and ran for over 50 minutes.
LOO_MAX_SIDE = 10_000


def fit_peer(task: str, train, test, target, kind: str = "linear") -> dict:
    """Fit the task's peer of `kind` on `train` (ArrayData with encoded targets); its metrics on `test`."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    peer_kinds([kind])  # an unknown kind fails with the list of known ones

    y_train, y_test = train.y.numpy(), test.y.numpy()
    X_train, X_test = train.X, test.X
    started = time.perf_counter()
    if kind == "nb-linear":
        if task != "sentiment" or target.n_outputs != 2:
            raise BadInput("the nb-linear peer needs a sentiment task with two classes")
        r = nb_log_ratios(X_train, y_train)
        X_train, X_test = X_train.multiply(r).tocsr(), X_test.multiply(r).tocsr()
    if task == "sentiment":
        model = LogisticRegressionCV(
            Cs=10, cv=5, max_iter=5000, l1_ratios=(0.0,), scoring="accuracy", use_legacy_attributes=False
        )
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - started
        metrics = {"accuracy": float((model.predict(X_test) == y_test).mean()), "C": float(model.C_)}
    else:
        loo = min(X_train.shape) <= LOO_MAX_SIDE
        model = RidgeCV(
            alphas=np.logspace(-1, 4, 11),
            cv=None if loo else 5,
            scoring=None if loo else "neg_mean_squared_error",
        ).fit(X_train, y_train)
        seconds = time.perf_counter() - started
        pred = np.clip(model.predict(X_test), target.low, target.high)
        err = pred - y_test
        metrics = {
            "rmse": math.sqrt(float((err**2).mean())),
            "mae": float(np.abs(err).mean()),
            "alpha": float(model.alpha_),
            "cv": "leave-one-out" if loo else "5-fold",
        }
    name = NB_PEER if kind == "nb-linear" else PEERS[task]
    return {"name": name, "kind": kind, "seconds": seconds, "test": {**metrics, "n": len(y_test)}}


def peer_kinds(peers) -> list[str]:
    """[compare] peers: true (the tuned linear model), false (none) or a list of PEER_KINDS."""
    if peers is True:
        return ["linear"]
    if peers is False or peers is None:
        return []
    if not isinstance(peers, list) or any(k not in PEER_KINDS for k in peers):
        raise BadInput(
            f"[compare] peers must be true, false or a list of {', '.join(PEER_KINDS)}; got {peers!r}"
        )
    return list(dict.fromkeys(peers))
