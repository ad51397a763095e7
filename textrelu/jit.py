"""numba's njit with its disk cache where a cache folder can be written, and without it elsewhere.

`njit(cache=True)` keeps compiled loops beside their source (`__pycache__`), else in the user's
cache folder (~/.cache/numba, or NUMBA_CACHE_DIR), so that a process loads them instead of
compiling them (seconds). Where none of those folders can be written, as with a read-only
install run by a user without a home folder, numba refuses at import ("no locator available"):
`compiled` then compiles without the cache, and says once how to get it back.
"""

import warnings

from numba import njit

NO_CACHE = (
    "numba cannot write its cache of compiled loops here, so they are compiled in every process "
    "(seconds); set NUMBA_CACHE_DIR to a writable folder to keep them"
)
_warned = []


def compiled(fn=None, **options):
    """`fn` compiled by numba without the GIL, cached on disk where a cache folder can be written.
    Without `options` there is no fastmath (NaN and inf keep their IEEE meaning); `options` are
    njit's own (fastmath, error_model), for `@compiled(...)`."""
    if fn is None:
        return lambda f: compiled(f, **options)
    try:
        return njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError as e:
        if "no locator available" not in str(e):
            raise
        if not _warned:
            _warned.append(True)
            warnings.warn(NO_CACHE, RuntimeWarning, stacklevel=2)
        return njit(nogil=True, **options)(fn)
