"""The persistent kernel cache: generated modules on disk, compiled once per machine.

numba's ``cache=True`` needs a function defined in a real file, so each kernel's source is
written to a content-addressed module ``k<hash>.py`` (the hash covers the source and the identity
of graphc, numba, Python and the CPU) and imported; numba then keeps the machine code next to it
in ``__pycache__`` and a second process loads it instead of compiling.

Files are written to a temporary name and linked into place, so a reader never sees half a file
and an entry is never rewritten while another process may be reading it. Corruption is detected,
not trusted: a module whose text does not match its hash is written again, and a checksum file
records numba's cache files after a successful load; files that do not match it (or that a
crashed process left without one) are removed before import, so numba compiles afresh instead
of loading damaged machine code. A load that fails anyway is retried once after removing them.
Checking, compiling and recording an entry hold a lock on it (``fcntl.flock``), so processes
compiling one kernel at once leave one consistent entry.

Loading is made cheap: numba refreshes its whole target context before every cache load, which
imports all of its NumPy implementations (0.2 s of a 0.5 s warm start), though rebuilding
compiled code needs only its runtime. While a thread of graphc imports its kernel modules, its
cache loads start just the runtime (numba's method is wrapped once; other loads, the user's own
cached functions among them, go to numba's method unchanged); a load that misses compiles as
usual, and compiling refreshes the context itself.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_loaded: dict[str, object] = {}


@functools.cache
def identity() -> str:
    """What a compiled kernel depends on besides its source."""
    import llvmlite
    import llvmlite.binding as ll
    import numba
    import numpy

    from ... import __version__
    from . import division, rowdot, vmath

    features = ll.get_host_cpu_features().flatten()
    # Kernels import these modules' functions and compile them in: a change to them is a change
    # to every kernel using them, whatever graphc's version says.
    imported = _digest(b"".join(Path(m.__file__).read_bytes() for m in (division, rowdot, vmath)))[:16]
    return (
        f"graphc {__version__}; numba {numba.__version__}; llvmlite {llvmlite.__version__}; numpy {numpy.__version__}; "
        f"python {sys.version_info[:3]}; cpu {ll.get_host_cpu_name()} {features}; opt {numba.config.OPT}; "
        f"kernel imports {imported}"
    )


def cache_dir() -> Path:
    """``$GRAPHC_CACHE_DIR``, else the user's cache directory (``$XDG_CACHE_HOME/graphc``)."""
    if os.environ.get("GRAPHC_CACHE_DIR"):
        return Path(os.environ["GRAPHC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "graphc"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_new(path: Path, data: bytes, replace: bool = False) -> None:
    """Write ``path`` atomically: readers see the old file, or none, or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process got there first: keep theirs
                os.link(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _numba_files(path: Path) -> list[Path]:
    """numba's cache files of a kernel module: beside it, or under ``$NUMBA_CACHE_DIR`` when set
    (numba then keeps them in a directory named after the module's directory)."""
    import numba
    from numba.core.caching import _CacheLocator

    if numba.config.CACHE_DIR:
        where = Path(numba.config.CACHE_DIR) / _CacheLocator.get_suitable_cache_subpath(str(path))
    else:
        where = path.parent / "__pycache__"
    return sorted(where.glob(f"{path.stem}.*.nb[ic]"))


def _sums(path: Path) -> dict[str, str]:
    return {f.name: _digest(f.read_bytes()) for f in _numba_files(path)}


def _purge(path: Path) -> None:
    for f in _numba_files(path):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _key(module_text: str) -> str:
    return _digest((identity() + "\n" + module_text).encode())[:40]


def _path(key: str) -> Path:
    return cache_dir() / key[:2] / f"k{key}.py"


def _recorded(path: Path) -> dict | None:
    """The checksums recorded for an entry's numba files after its last good load, if any."""
    try:
        return json.loads(path.with_suffix(".sums").read_text())
    except (OSError, ValueError):
        return None


def _record(path: Path, recorded: dict | None) -> None:
    found = _sums(path)
    if found and found != recorded:
        _write_new(path.with_suffix(".sums"), json.dumps(found).encode(), replace=True)


def _entry(module_text: str, key: str) -> Path:
    """The file of a module, written (again, if damaged) to the cache."""
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = module_text.encode()
    if not path.exists():
        _write_new(path, data)
    if path.read_bytes() != data:  # damaged: write it again (numba's stamps then go stale)
        _write_new(path, data, replace=True)
        _purge(path)
    return path


def load(module_text: str, name: str = "kernel"):
    """The function ``name`` of the module ``module_text``, compiled or loaded from the cache."""
    key = _key(module_text)
    if key in _loaded:
        return _loaded[key]
    return _load_file(key, _entry(module_text, key), name)


@contextlib.contextmanager
def _entry_lock(path: Path):
    """One process (or thread) at a time checks, compiles and records an entry.

    numba's machine code differs in its bytes from one process to the next. Unlocked, two
    processes compiling one kernel at once could each save their code and record their own
    checksums, the last checksums written then disagreeing with the last code saved: the next
    process took that for damage and compiled again (seen once in CI, under load). With the
    lock the second process waits and loads what the first saved. Without ``fcntl`` (not
    POSIX) there is no lock, and such a race costs a compile, never a wrong result."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_suffix(".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_file(key: str, path: Path, name: str = "kernel"):
    with _entry_lock(path):
        recorded = _recorded(path)
        if _sums(path) != recorded:
            _purge(path)
        try:
            module = _import(path, key)
        except Exception:
            _purge(path)
            module = _import(path, key)
        _record(path, recorded)
    fn = getattr(module, name)
    _loaded[key] = fn
    return fn


def compiled_before(module_text: str) -> bool:
    """Whether numba's cache holds recorded machine code for this module (a quick look, no load)."""
    path = _path(_key(module_text))
    recorded = _recorded(path)
    return bool(recorded) and path.exists() and _sums(path) == recorded


def record(module_text: str) -> None:
    """Record numba's cache files of a module whose function compiled after its import (the
    compiled driver is typed on its first call): unrecorded files are taken for damage."""
    path = _entry(module_text, _key(module_text))
    with _entry_lock(path):
        _record(path, _recorded(path))


#: Fewest uncached kernels for which a second process compiles half of them.
PARALLEL_COMPILE = 4


def load_all(module_texts: list[str]) -> None:
    """Load several kernels, compiling the uncached ones on two cores: a worker process compiles
    every other one into the cache while this process compiles the rest (numba compiles one
    function at a time per process). A worker that fails costs nothing but its time: whatever
    it did not leave in the cache is compiled here."""
    todo = []
    for text in dict.fromkeys(module_texts):
        key = _key(text)
        if key in _loaded:
            continue
        path = _entry(text, key)
        if not _numba_files(path):
            todo.append((key, path))
    if len(todo) < PARALLEL_COMPILE or (os.cpu_count() or 1) < 2:
        return
    theirs, ours = todo[::2], todo[1::2]
    worker = subprocess.Popen(
        [sys.executable, "-m", "graphc.backends.numba.cache", *(str(path) for _, path in theirs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for key, path in ours:
            _load_file(key, path)
    finally:
        worker.wait()


_quick = threading.local()  # .on: this thread is importing kernel modules
_install_lock = threading.Lock()


def _install_quick_loads() -> None:
    """Wrap numba's ``Cache.load_overload`` once: inside :func:`_quick_loads`, in that thread
    only, a load starts numba's runtime (NRT) instead of refreshing the whole target context
    (see the module docstring); every other load goes to numba's own method. Where numba's
    cache class has not the expected shape (another numba version), nothing is wrapped."""
    from numba.core.caching import Cache
    from numba.core.runtime import rtsys

    with _install_lock:
        original = Cache.__dict__.get("load_overload")
        if original is None or getattr(original, "_graphc_quick", False) or not hasattr(Cache, "_load_overload"):
            return  # wrapped already, or not the numba this was written for
        Cache.load_overload = _quick_load_overload(original, rtsys)


def _quick_load_overload(original, rtsys):
    """numba's ``load_overload``, minus the context refresh while this thread is in
    :func:`_quick_loads`."""

    @functools.wraps(original)
    def load_overload(self, sig, target_context):
        if not getattr(_quick, "on", False):
            return original(self, sig, target_context)
        rtsys.initialize(target_context)  # the symbols compiled code links against
        return self._load_overload(sig, target_context)

    load_overload._graphc_quick = True
    return load_overload


@contextlib.contextmanager
def _quick_loads():
    """numba's cache loads made by this thread, for the duration, skip the context refresh."""
    _install_quick_loads()
    before = getattr(_quick, "on", False)
    _quick.on = True
    try:
        yield
    finally:
        _quick.on = before


def _import(path: Path, key: str):
    name = f"graphc_kernel_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba finds a cached kernel's globals through it
    try:
        with _quick_loads():
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


if __name__ == "__main__":  # the worker of load_all: compile the given modules into the cache
    for file in sys.argv[1:]:
        _load_file(Path(file).stem[1:], Path(file))
