"""numba.cuda, imported when the first CUDA function is compiled, and everything this backend
asks of it: launch sizes, device arrays, compiling generated kernels, and the record of every
kernel generated (which the tests compile to PTX without a GPU).

Only this package touches numba.cuda, and only through the subset numba-cuda-mlir (its announced
successor) keeps: inside kernels ``cuda.grid``, ``cuda.gridsize``, ``cuda.blockIdx``/
``threadIdx``/``blockDim``, ``cuda.shared.array``, ``cuda.syncthreads`` and ``math``;
on the host ``cuda.jit``, ``cuda.to_device``, ``cuda.device_array``, ``cuda.is_available``,
``cuda.is_cuda_array``, and the device arrays' ``copy_to_host``, ``reshape`` (a view of a
C-contiguous array), ``shape``, ``dtype`` and ``is_c_contiguous``.

Importing numba.cuda takes about 0.4 s, so nothing here runs until :func:`load`.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from ...errors import GraphError

HOW_TO = (
    'backend="cuda" runs on an NVIDIA GPU through numba-cuda: install it with pip install "graphc[cuda]" '
    "(numba-cuda with the CUDA 12 NVVM and NVRTC wheels) on a machine with an NVIDIA driver. Without a GPU, "
    "the kernels run on numba-cuda's simulator (slow: for tests and debugging) when NUMBA_ENABLE_CUDASIM=1 is "
    "set in the environment before graphc first compiles a CUDA function."
)


@dataclass
class Config:
    """Launch sizes. Block sizes are written into kernels that use shared memory, so they are
    fixed when the runtime loads: smaller on the simulator, which runs each GPU thread as a
    Python thread."""

    threads: int  # threads per block of 1-D kernels (a power of 2: reductions halve it)
    tile: int  # the side of a matrix-product tile (tile * tile threads per block)
    max_blocks: int  # grid-stride loops launch at most this many blocks
    rows_below: int  # reductions of fewer values than this run one thread per output element
    items: int  # elements each thread of a reduction block sums before more blocks share a row
    max_parts: int  # at most this many blocks share one reduced element


GPU = Config(threads=256, tile=16, max_blocks=4096, rows_below=64, items=16, max_parts=1024)
SIMULATOR = Config(threads=4, tile=4, max_blocks=4, rows_below=16, items=4, max_parts=16)


class _SimulatorMath:
    """``math`` for kernels on the simulator, with the GPU's IEEE results where Python raises:
    ``math.exp(1000.0)`` is inf on a GPU and an OverflowError in Python, ``math.log(0.0)`` is
    -inf and a ValueError. On a GPU, kernels use the real ``math`` (libdevice)."""

    inf, nan, pi, e = math.inf, math.nan, math.pi, math.e

    def __init__(self):
        from scipy import special

        functions = {
            name: getattr(np, name) for name in ("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt")
        }
        functions["erf"] = special.erf
        for name, fn in functions.items():
            setattr(self, name, self._ieee(fn))

    @staticmethod
    def _ieee(fn):
        def call(x):
            with np.errstate(all="ignore"):
                return fn(x if isinstance(x, np.generic) else np.float64(x))

        return call


def _atomic_simulator_shared_arrays() -> None:
    """Make the simulator's ``cuda.shared.array`` allocate atomically.

    The simulator runs a block's threads as Python threads, and each thread's call of
    ``cuda.shared.array`` looks its array up by source line and creates it when missing, with no
    lock: when the interpreter switches threads between the look-up and the store, two threads
    of one block get different arrays and a reduction tree combines garbage. It happened once in
    CI (a min over 40 values with a NaN came back as an ordinary number; numba-cuda 0.30.4). A
    GPU has no such race, so only the simulator's allocator is wrapped, once, in a lock."""
    from numba.core import types
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.np.numpy_support import as_dtype

    allocate = FakeCUDAShared.array
    if getattr(allocate, "graphc_atomic", False):
        return
    lock = threading.Lock()

    @functools.wraps(allocate)
    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory, or the simulator's error
            return allocate(self, shape, dtype, alignment)
        caller = sys._getframe(1)  # the kernel's line: one array per line and block, as numba keys it
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(key)
            if found is None:
                found = np.empty(shape, as_dtype(dtype) if isinstance(dtype, types.Type) else dtype)
                self._allocations[key] = found
        return found

    array.graphc_atomic = True
    FakeCUDAShared.array = array


class Runtime:
    """numba.cuda once loaded: the module, whether it is the simulator, and the launch sizes."""

    def __init__(self, cuda, simulator: bool):
        import numba

        self.cuda = cuda
        self.simulator = simulator
        self.config = SIMULATOR if simulator else GPU
        if simulator:
            _atomic_simulator_shared_arrays()
        self.math = _SimulatorMath() if simulator else math
        self.numba = numba
        self._compiled: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()
        self._is_device = getattr(cuda, "is_cuda_array", None)
        if self._is_device is None:  # the simulator has no is_cuda_array
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

            self._is_device = lambda x: isinstance(x, FakeCUDAArray)

    # ----- device arrays -------------------------------------------------------------------------
    def is_device(self, x) -> bool:
        """Whether ``x`` is a numba device array (another library's CUDA array, such as CuPy's,
        can be passed through ``numba.cuda.as_cuda_array``)."""
        return not isinstance(x, np.ndarray) and hasattr(x, "copy_to_host") and self._is_device(x)

    def to_device(self, x):
        """A device array of ``x`` (host or device); a device array is returned as it is."""
        if self.is_device(x):
            return x
        return self.cuda.to_device(np.ascontiguousarray(x).reshape(np.shape(x)))

    def empty(self, shape, dtype):
        return self.cuda.device_array(tuple(int(d) for d in shape), np.dtype(dtype))

    def to_host(self, x) -> np.ndarray:
        """A host array of ``x`` (device or host)."""
        if self.is_device(x):
            return np.asarray(x.copy_to_host()).reshape(x.shape)
        return np.asarray(x)

    def contiguous(self, x):
        """``x`` as a C-contiguous device array: a strided device array (a user's slice) goes
        through the host once, since only C-contiguous arrays can be viewed at another rank."""
        if self.is_device(x):
            return x if x.is_c_contiguous() else self.to_device(self.to_host(x))
        return self.to_device(x)

    # ----- launching -----------------------------------------------------------------------------
    def blocks(self, work: int, threads: int | None = None) -> int:
        """Blocks of a grid-stride loop over ``work`` items (at least one)."""
        threads = threads or self.config.threads
        return max(1, min(-(-work // threads), self.config.max_blocks))

    # ----- kernels -------------------------------------------------------------------------------
    def namespace(self) -> dict:
        """The globals of every kernel's source."""
        return {"cuda": self.cuda, "math": self.math, "np": np, "nb": self.numba}

    def compile(self, name: str, source: str, signature: str):
        """``source`` (a ``def kernel``) compiled with ``cuda.jit`` for ``signature`` (text over
        ``nb``), once per process."""
        key = (source, signature)
        with self._lock:
            fn = self._compiled.get(key)
            if fn is None:
                env = self.namespace()
                exec(compile(source, f"<graphc cuda kernel {name}>", "exec"), env)
                types = eval(signature, {"nb": self.numba})
                fn = self.cuda.jit(types)(env["kernel"])
                self._compiled[key] = fn
        return fn


#: (source, signature) -> kernel name, of every kernel this process generated (compiled or not yet:
#: kernels compile at their first launch): tests compile each to PTX in a process without the
#: simulator (tests/cuda_ptx.py).
GENERATED: dict[tuple[str, str], str] = {}
_RUNTIME: Runtime | None = None


def load() -> Runtime:
    """The runtime, importing numba.cuda on the first call; a clear GraphError without a GPU."""
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME
    try:
        from numba import cuda
        from numba.cuda import config
    except ImportError as err:
        raise GraphError(f"numba-cuda is not installed ({err}). {HOW_TO}") from None
    simulator = bool(config.ENABLE_CUDASIM)
    try:
        available = cuda.is_available()
    except Exception:  # a broken driver installation
        available = False
    if not available:
        raise GraphError(f"no CUDA GPU is available to numba-cuda. {HOW_TO}")
    if not simulator and "NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS" not in os.environ:
        config.CUDA_LOW_OCCUPANCY_WARNINGS = 0  # small graphs launch small grids, on purpose
    _RUNTIME = Runtime(cuda, simulator)
    return _RUNTIME
