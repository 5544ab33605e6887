"""The compiled driver: a whole call as one numba function, calling the kernels already compiled.

The Python driver pays for every step in the interpreter: a dispatch into numba, boxing the
arrays a kernel returns, a frame for each view. On W2's training step the same calls made from
one numba function took 143-269 us less a step (docs/performance.md, session 9). Two pieces
make such a driver cheap to compile and safe:

* **Kernels are called by symbol, not linked.** When a numba function calls another, numba
  links the callee's code into the caller's module and optimizes and generates it again: 2.2-3.8
  s for W2's 17 kernels. :func:`unlinked` declares the kernel's compiled function and calls it
  with numba's calling convention (its errors propagate), so the JIT resolves the symbol to the
  code already loaded; the driver compiles in a fraction of that. It accepts only the argument
  types of the kernel's one signature (a transposed view passed to a C-contiguous kernel would
  read the wrong elements); anything else fails typing and the Python driver stays.
* **Products call NumPy's own BLAS**, by the address of its ``cblas_?gemm`` passed as an
  argument (an address frozen into machine code would not survive numba's disk cache). numba's
  ``np.dot`` calls SciPy's OpenBLAS, a second thread pool that fights NumPy's when a program
  uses both (20-40 times slower products, docs/performance.md). Where NumPy's library is not
  found (not a pip wheel of NumPy), functions with products keep the Python driver.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import glob
import os
import threading

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _fits(actual, wanted) -> bool:
    if isinstance(wanted, types.Array):
        return (
            isinstance(actual, types.Array)
            and actual.dtype == wanted.dtype
            and actual.ndim == wanted.ndim
            and (wanted.layout == "A" or actual.layout == wanted.layout)
            and (actual.mutable or not wanted.mutable)
        )
    return actual == wanted


def unlinked(dispatcher, symbol: str | None = None):
    """An intrinsic calling ``dispatcher``'s one compiled version by its symbol.

    numba numbers the symbols of a process's functions, so a kernel compiled again (its cache
    entry was damaged) may get another name than the one a cached driver calls: the driver's
    module names the symbol it was written for (so its cache entry changes with it), and a
    kernel with another symbol is refused here rather than called through a missing one."""
    (sig,) = dispatcher.signatures
    cres = dispatcher.overloads[sig]
    fndesc, csig = cres.fndesc, cres.signature
    if symbol is not None and fndesc.mangled_name != symbol:
        raise LookupError(f"kernel compiled as {fndesc.mangled_name}, not {symbol}")

    def codegen(context, builder, signature, args):
        fn = context.declare_function(builder.module, fndesc)
        status, result = context.call_conv.call_function(builder, fn, csig.return_type, csig.args, args)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    def typer(typingctx, *actual):
        if len(actual) != len(csig.args) or not all(map(_fits, actual, csig.args)):
            return None
        return csig.return_type(*actual), codegen

    names = ", ".join(f"a{i}" for i in range(len(csig.args)))
    scope = {"typer": typer}
    exec(f"def call(typingctx, {names}):\n    return typer(typingctx, {names})\n", scope)
    return intrinsic(scope["call"])


@functools.cache
def blas() -> tuple[int, int, int] | None:
    """``(sgemm address, dgemm address, bits of BLAS integers)`` of the BLAS NumPy itself calls, or
    None. pip's NumPy wheels bundle OpenBLAS in ``numpy.libs`` with prefixed symbols."""
    here = os.path.dirname(np.__file__)
    for path in sorted(glob.glob(os.path.join(here, os.pardir, "numpy.libs", "lib*openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, bits in (("scipy_", "64_", 64), ("", "64_", 64), ("scipy_", "", 32), ("", "", 32)):
            try:
                s = getattr(lib, f"{prefix}cblas_sgemm{suffix}")
                d = getattr(lib, f"{prefix}cblas_dgemm{suffix}")
            except AttributeError:
                continue
            return ctypes.cast(s, ctypes.c_void_p).value, ctypes.cast(d, ctypes.c_void_p).value, bits
    return None


def _gemm_intrinsic(bits: int):
    """``gemm(address, transa, transb, m, n, k, a, lda, b, ldb, c)``: c = a @ b (row-major) through
    the cblas function at ``address``; arrays as data pointers, integers of ``bits`` bits."""

    @intrinsic
    def gemm(typingctx, address, transa, transb, m, n, k, a, lda, b, ldb, c):
        def codegen(context, builder, signature, args):
            address, transa, transb, m, n, k, a, lda, b, ldb, c = args
            dtype = signature.args[6].dtype
            real = ir.FloatType() if dtype == types.float32 else ir.DoubleType()
            integer, enum, ptr = ir.IntType(bits), ir.IntType(32), ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(
                ir.VoidType(),
                [enum, enum, enum, integer, integer, integer, real, ptr, integer, ptr, integer, real, ptr, integer],
            )
            fn = builder.inttoptr(address, fnty.as_pointer())

            def data(array_value, array_type):
                return builder.bitcast(context.make_array(array_type)(context, builder, array_value).data, ptr)

            def to_int(v):
                return builder.trunc(v, integer) if bits < 64 else v

            def to_enum(v):
                return builder.trunc(v, enum)

            ldc = n
            builder.call(
                fn,
                [
                    ir.Constant(enum, ROW_MAJOR),
                    to_enum(transa),
                    to_enum(transb),
                    to_int(m),
                    to_int(n),
                    to_int(k),
                    ir.Constant(real, 1.0),
                    data(a, signature.args[6]),
                    to_int(lda),
                    data(b, signature.args[8]),
                    to_int(ldb),
                    ir.Constant(real, 0.0),
                    data(c, signature.args[10]),
                    to_int(ldc),
                ],
            )
            return context.get_dummy_value()

        return types.none(*[types.int64] * 6, a, types.int64, b, types.int64, c), codegen

    return gemm


@functools.cache
def matmul_for(bits: int):
    """The product the compiled driver calls, for BLAS integers of ``bits`` bits. Made on first use:
    applying ``numba.njit`` loads numba's extensions, numba-cuda's among them, which read their
    configuration then (a test sets the CUDA simulator's before that)."""
    gemm = _gemm_intrinsic(bits)

    @nb.njit(nogil=True)
    def matmul(a, b, address):
        """``a @ b`` for 2-d float arrays of one dtype, as NumPy computes it with BLAS."""
        m, k = a.shape
        if b.shape[0] != k:
            raise ValueError("matmul: operand lengths differ")
        n = b.shape[1]
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            a = np.ascontiguousarray(a)
        if not (b.flags.c_contiguous or b.flags.f_contiguous):
            b = np.ascontiguousarray(b)
        c = np.empty((m, n), a.dtype)
        if m == 0 or n == 0:
            return c
        if k == 0:
            c[:] = 0
            return c
        if a.flags.c_contiguous:
            ta, lda = NO_TRANS, k
        else:
            ta, lda = TRANS, m
        if b.flags.c_contiguous:
            tb, ldb = NO_TRANS, n
        else:
            tb, ldb = TRANS, k
        gemm(address, ta, tb, m, n, k, a, lda, b, ldb, c)
        return c

    return matmul


def kernel_by_key(key: str):
    """A kernel the program loaded (``cache.load``), by its cache key: the compiled driver's
    module names its kernels this way, so its text, and so its cache entry, changes with them."""
    from . import cache

    return cache._loaded[key]


class Plan:
    """The compiled driver's lines, written beside the Python driver's, step by step."""

    def __init__(self):
        self.ok = True  # every step so far has a compiled form
        self.lines: list[str] = []
        self.kernels: dict[str, tuple[str, str]] = {}  # cache key -> (the intrinsic's name, the kernel's symbol)
        self.blas = False

    def _kernel(self, kernel) -> str:
        from . import cache

        key = cache._key(kernel.text)
        if key not in self.kernels:
            (sig,) = kernel.fn.signatures
            self.kernels[key] = (f"k{len(self.kernels)}", kernel.fn.overloads[sig].fndesc.mangled_name)
        return self.kernels[key][0]

    def add(self, step, target: str, args: list[str], comment: str, parallel: bool) -> None:
        from .lowering import Kernel

        if not self.ok:
            return
        args = [a.replace("_ascontiguous(", "np.ascontiguousarray(") for a in args]
        if parallel:  # a parallel version is compiled on first use: keep the Python driver
            self.ok = False
        elif isinstance(step.call, Kernel):
            call = f"{self._kernel(step.call)}({', '.join(args)})"
        elif step.inline is not None:
            call = step.inline.format(*args, kernel=self._kernel(step.kernel) if step.kernel else None)
            self.blas |= "_gemm_" in call
        else:
            self.ok = False
        if self.ok:
            self.lines.append(f"    {target + ' = ' if target else ''}{call}{comment}")

    def constants(self, env: dict) -> list[str]:
        """The graph's constants the lines read: the Python driver's globals, passed as arguments."""
        import re

        used = dict.fromkeys(re.findall(r"\bv\d+\b", "\n".join(line.split("#")[0] for line in self.lines)))
        return [name for name in used if name in env]

    @property
    def extra_args(self) -> list[str]:
        return ["_gemm_float32", "_gemm_float64"] if self.blas else []

    def extra_values(self) -> dict:
        found = blas()
        return {"_gemm_float32": found[0], "_gemm_float64": found[1]} if self.blas else {}

    def module_text(self, params: list[str], constants: list[str], results: list[str]) -> str | None:
        if self.blas and blas() is None:
            return None
        head = [
            "import numba as nb",
            "import numpy as np",
            "from graphc.backends.numba.compiled import kernel_by_key, unlinked",
        ]
        if self.blas:
            head.append("from graphc.backends.numba.compiled import matmul_for")
            head.append(f"_matmul = matmul_for({blas()[2]})")
        head += [
            f'{name} = unlinked(kernel_by_key("{key}"), "{symbol}")' for key, (name, symbol) in self.kernels.items()
        ]
        return (
            "\n".join(head)
            + "\n\n\n"
            + "\n".join(
                [
                    "@nb.njit(nogil=True, cache=True)",
                    f"def driver({', '.join(params + constants + self.extra_args)}):",
                    *self.lines,
                    f"    return ({', '.join(results)}{',' if len(results) == 1 else ''})",
                    "",
                ]
            )
        )


#: Calls of a function before its compiled driver is compiled, in a thread beside the calls.
HOT_CALLS = 16
_compiling: set = set()  # the threads compiling drivers, joined before the interpreter exits


@atexit.register
def _join() -> None:
    for thread in list(_compiling):
        thread.join()


class Upgrade:
    """The driver a program starts with: the Python driver, until the compiled one is ready.

    Compiling the compiled driver takes seconds (W2's step: about 2.5 s, most of it the product
    wrappers), as long again as the kernels, so a function does not wait for it: after
    ``HOT_CALLS`` calls it is compiled in a thread while the calls go on with the Python driver
    (llvmlite releases the GIL while LLVM works), then swapped in. A function whose compiled
    driver is already in the disk cache loads it on its first call. A driver numba cannot type
    or lower leaves the Python driver in place for good."""

    def __init__(self, program, text: str, arguments):
        self.program, self.text, self.arguments = program, text, arguments
        self.python = program.driver
        self.calls = 0
        self.ready = None  # the compiled driver's wrapper, once compiled

    def __call__(self, values):
        if self.ready is not None:
            self.program.driver = self.ready
            return self.ready(values)
        self.calls += 1
        if self.calls == 1:
            from . import cache

            if cache.compiled_before(self.text) and self._compile(self.arguments(values)):
                return self.__call__(values)
        elif self.calls == HOT_CALLS:
            thread = threading.Thread(target=self._compile, args=(self.arguments(values),), daemon=True)
            _compiling.add(thread)
            thread.start()
        return self.python(values)

    def _compile(self, example: tuple) -> bool:
        """Load or compile the compiled driver for ``example``'s types; True once it is ready."""
        from . import cache

        try:
            fn = cache.load(self.text, name="driver")
            with cache._quick_loads():  # a load from numba's cache needs only numba's runtime
                fn.compile(tuple(nb.typeof(a) for a in example))
            fn.disable_compile()  # arguments of other types go to the Python driver (below)
        except Exception:  # noqa: BLE001  (cannot type, lower or load it: the Python driver stays)
            self.python_for_good()
            return False
        finally:
            _compiling.discard(threading.current_thread())
        cache.record(self.text)
        arguments, python = self.arguments, self.python

        def driver(values):
            args = arguments(values)
            try:
                return list(fn(*args))
            except TypeError as err:  # numba found no compiled version for these types
                if not str(err).startswith("No matching definition"):
                    raise
                return python(values)

        self.program.compiled_source = self.text
        self.ready = driver
        if self.program.driver is self:
            self.program.driver = driver
        self.program.forget_recycled()
        return True

    def python_for_good(self) -> None:
        if self.program.driver is self:
            self.program.driver = self.python
