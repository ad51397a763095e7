"""Peers: what a practitioner would fit instead, on the same binary vectors (scikit-learn).

- sentiment: LogisticRegressionCV, C chosen among 10 values by 5-fold cross-validation;
- rating: RidgeCV, alpha chosen by efficient leave-one-out, predictions clipped to the training
  range of ratings (as textrelu's rating heads are).
"""

import math
import time

import numpy as np

PEERS = {"sentiment": "LogisticRegressionCV", "rating": "RidgeCV (clipped)"}


def fit_peer(task: str, train, test, target) -> dict:
    """Fit the task's peer on `train` (ArrayData with encoded targets); its metrics on `test`."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    y_train, y_test = train.y.numpy(), test.y.numpy()
    started = time.perf_counter()
    if task == "sentiment":
        model = LogisticRegressionCV(Cs=10, cv=5, max_iter=5000, l1_ratios=(0.0,),
                                     scoring="accuracy", use_legacy_attributes=False)
        model.fit(train.X, y_train)
        seconds = time.perf_counter() - started
        metrics = {"accuracy": float((model.predict(test.X) == y_test).mean()), "C": float(model.C_)}
    else:
        model = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(train.X, y_train)
        seconds = time.perf_counter() - started
        pred = np.clip(model.predict(test.X), target.low, target.high)
        err = pred - y_test
        metrics = {"rmse": math.sqrt(float((err ** 2).mean())), "mae": float(np.abs(err).mean()),
                   "alpha": float(model.alpha_)}
    return {"name": PEERS[task], "seconds": seconds, "test": {**metrics, "n": len(y_test)}}
