"""The Python API: `textrelu.load`/`save`, the scikit-learn estimators and ONNX export (rank 6,
beside the CLI). `textrelu/__init__.py` reaches these names lazily, so `import textrelu` stays light."""
