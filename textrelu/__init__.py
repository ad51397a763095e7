"""textrelu: deep sparse rectifier networks for review sentiment and ratings.

Glorot, Bordes & Bengio (2011), "Deep Sparse Rectifier Neural Networks", as a practical tool:
binary bag-of-words vectors, stacked denoising autoencoders with rectifier units, fine-tuning
for polarity or star ratings, and streaming batch scoring.

From Python (docs/python.md): `textrelu.load`, `textrelu.save`, `textrelu.BagOfWords`,
`textrelu.RectifierClassifier`, `textrelu.RectifierRegressor`. They are imported on first use,
so `import textrelu` imports neither torch nor scikit-learn.
"""

import os

# torch's CPU threads (OpenMP, libgomp) spin while they wait for work. Two textrelu processes on
# this project's 2 cores then took 623 s each for a 25 s finetune; with waiting threads asleep
# they took 24 s each, and alone 24 s against 25 s (docs/performance.md). Read by libgomp when
# torch loads: set before any import of torch, unless the user set it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ("load", "save", "Model", "BagOfWords", "RectifierClassifier", "RectifierRegressor")


def __getattr__(name: str):
    """The public names of textrelu/api (__all__), imported when first asked for."""
    if name in ("load", "save", "Model"):
        from textrelu.api import model as module
    elif name == "BagOfWords":
        from textrelu.api import bow as module
    elif name in ("RectifierClassifier", "RectifierRegressor"):
        from textrelu.api import estimators as module
    else:
        raise AttributeError(f"module 'textrelu' has no attribute {name!r}")
    return getattr(module, name)
