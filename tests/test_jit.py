"""textrelu.jit: numba's loops are cached on disk where a folder can be written, and compiled
without the cache, with one warning, where none can (numba itself refuses to import them then)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_compiled_loops_run_where_no_cache_folder_can_be_written(tmp_path):
    """numba refuses to import a cached loop where it can write no cache: textrelu compiles it
    without the cache then, and says so once."""
    shutil.copytree(ROOT / "textrelu", tmp_path / "textrelu", ignore=shutil.ignore_patterns("__pycache__"))
    for package in (tmp_path / "textrelu", tmp_path / "textrelu" / "nn", tmp_path / "textrelu" / "data"):
        (package / "__pycache__").write_text("a file where numba would make its cache folder")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME="/dev/null", XDG_CACHE_HOME="/dev/null", PYTHONDONTWRITEBYTECODE="1")
    code = (
        "import numpy as np\n"
        "from textrelu.data import _kernels\n"
        "from textrelu.nn import _inference_kernels as k\n"
        "w, out = np.arange(6, dtype=np.float32).reshape(3, 2), np.empty((1, 2), np.float32)\n"
        "ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)\n"
        "k.sum_rows_by_term(np.array([0, 1, 1, 2]), np.array([0, 0]), ones, w, zeros, out)\n"
        "print(out.tolist(), _kernels.key_slot(3, 15))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[[4.0, 6.0]] 12"
    assert result.stderr.count("numba cannot write its cache") == 1
    assert not any((tmp_path / "textrelu").rglob("*.nbi"))
