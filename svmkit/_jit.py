"""numba when it is there, plain Python when it is not (Pyodide on Binder-less JupyterLite).

Every compiled function in svmkit is decorated with :func:`njit` from here, so the project
runs, slowly, without numba; :data:`HAVE_NUMBA` tells callers which they got.
"""

try:
    import numba as _numba
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _numba = None
    HAVE_NUMBA = False


def njit(fn=None, **options):
    """``numba.njit(cache=True, nogil=True)`` or the function itself without numba."""
    if fn is None:
        return lambda f: njit(f, **options)
    if not HAVE_NUMBA:
        return fn
    options.setdefault("cache", True)
    options.setdefault("nogil", True)
    return _numba.njit(**options)(fn)
