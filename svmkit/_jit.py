"""numba when it is there, plain Python when it is not (Pyodide on Binder-less JupyterLite).

Every compiled function in svmkit is decorated with :func:`njit` from here, so the project
runs, slowly, without numba; :data:`HAVE_NUMBA` tells callers which they got.

numba's cache keys a compiled function on its own source file only, not on the files of the
functions it inlined (memory access, format constants): change :mod:`svmkit._memjit` and a
cached walker would still read memory the old way, and may crash. So, unless the user chose
a cache directory (NUMBA_CACHE_DIR), svmkit's compiled code is cached in a directory named
after a hash of all of svmkit's sources.
"""

import hashlib
import os
from pathlib import Path

try:
    import numba as _numba
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _numba = None
    HAVE_NUMBA = False


def _cache_dir():
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    name = f"numba-{digest.hexdigest()[:16]}"
    for base in (package / "__pycache__",
                 Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "svmkit"):
        try:
            (base / name).mkdir(parents=True, exist_ok=True)
            (base / name / ".writable").touch()
        except OSError:
            continue
        for old in base.glob("numba-*"):          # caches of sources that are gone
            if old.name != name:
                _remove(old)
        return str(base / name)
    return None


def _remove(folder):
    for f in folder.iterdir():
        try:
            f.unlink()
        except OSError:
            return
    try:
        folder.rmdir()
    except OSError:
        pass


if HAVE_NUMBA and not os.environ.get("NUMBA_CACHE_DIR"):
    _where = _cache_dir()
    if _where:
        _numba.config.CACHE_DIR = _where


def njit(fn=None, **options):
    """``numba.njit(cache=True, nogil=True)`` or the function itself without numba."""
    if fn is None:
        return lambda f: njit(f, **options)
    if not HAVE_NUMBA:
        return fn
    options.setdefault("cache", True)
    options.setdefault("nogil", True)
    return _numba.njit(**options)(fn)
