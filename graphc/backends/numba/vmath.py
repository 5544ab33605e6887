"""Vectorized transcendental functions for kernel loops, from glibc's libmvec.

numba turns ``math.exp`` in a loop into LLVM's ``llvm.exp`` intrinsic, and LLVM vectorizes the
loop but then calls the scalar ``exp`` once per lane: exp and sin dominate a fused kernel and
run no faster than NumPy's SIMD ufuncs. numba's SVML route is not available with the pip
llvmlite, and LLVM 22 dropped the ``-vector-library`` command-line option that would map
``exp`` to libmvec (it is now a target option llvmlite does not expose).

What works is the per-call-site form of the same mapping: each call carries the
``vector-function-abi-variant`` attribute naming libmvec's vector versions
(``_ZGVeN8v_exp``: AVX-512, 8 doubles), which the loop vectorizer reads. The functions here are
numba intrinsics emitting such calls; the vector declarations are listed in
``llvm.compiler.used`` so they survive until the vectorizer runs. libmvec is loaded into the
process on import (a kernel using these must never run without it: the JIT could not resolve
the vector symbols). No fast-math flags are involved: NaN, inf and signed zeros come out as
NumPy's (checked in tests/test_numba_backend.py); accuracy is within 4 ulp.

``AVAILABLE`` is False where libmvec cannot be loaded (not glibc, not x86-64); kernels then use
``math.*``.
"""

from __future__ import annotations

import platform

#: libm name -> the LLVM intrinsic numba would use for it (None: a plain libm call).
FUNCTIONS = {
    "exp": "exp",
    "sin": "sin",
    "cos": "cos",
    "log": "log",
    "tanh": None,
    "log1p": None,
    "expm1": None,
    "erf": None,
}

# (ISA letter, lanes) of libmvec's x86-64 variants: SSE4, AVX2, AVX-512.
_VARIANTS = {"f64": (("b", 2), ("d", 4), ("e", 8)), "f32": (("b", 4), ("d", 8), ("e", 16))}

try:
    if platform.machine() not in ("x86_64", "AMD64"):
        raise OSError("libmvec's vector ABI names are x86-64 only")
    import llvmlite.binding as _ll

    _ll.load_library_permanently("libmvec.so.1")
    AVAILABLE = True
except (OSError, RuntimeError):
    AVAILABLE = False


def _definitions():
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    class _AttributeText(set):
        """A call's attribute set that llvmlite prints verbatim (it only knows enum attributes)."""

        def _to_list(self, ret_type):
            return sorted(self)

    def keep_declared(module, functions) -> None:
        """List ``functions`` in ``llvm.compiler.used``, or dead-code elimination removes the
        unused-looking declarations before the vectorizer can pick them."""
        name = "llvm.compiler.used"
        pointer = ir.PointerType(ir.IntType(8))
        old = []
        if name in module.globals:
            old = list(module.globals[name].initializer.constant)
            del module.globals[name]
            module.scope._useset.discard(name)
        values, seen = [], set()
        for v in old + [f.bitcast(pointer) for f in functions]:
            if str(v) not in seen:
                seen.add(str(v))
                values.append(v)
        array = ir.ArrayType(pointer, len(values))
        used = ir.GlobalVariable(module, array, name)
        used.linkage = "appending"
        used.section = "llvm.metadata"
        used.initializer = ir.Constant(array, values)

    def make(libm: str, llvm_intrinsic: str | None):
        def codegen(context, builder, sig, args):
            module = builder.module
            single = sig.return_type == types.float32
            fty = ir.FloatType() if single else ir.DoubleType()
            scalar = libm + ("f" if single else "")
            name = f"llvm.{llvm_intrinsic}.{'f32' if single else 'f64'}" if llvm_intrinsic else scalar
            fn = cgutils.get_or_insert_function(module, ir.FunctionType(fty, [fty]), name)
            if not llvm_intrinsic:
                fn.attributes.add("nounwind")
                fn.attributes.add("readnone")  # pure: the vectorizer may batch it
            variants, vector_fns = [], []
            for isa, lanes in _VARIANTS["f32" if single else "f64"]:
                vname = f"_ZGV{isa}N{lanes}v_{scalar}"
                vty = ir.VectorType(fty, lanes)
                vector_fns.append(cgutils.get_or_insert_function(module, ir.FunctionType(vty, [vty]), vname))
                variants.append(f"_ZGV{isa}N{lanes}v_{name}({vname})")
            keep_declared(module, vector_fns)
            call = builder.call(fn, args)
            call.attributes = _AttributeText([f'"vector-function-abi-variant"="{",".join(variants)}"'])
            return call

        def typer(typingctx, x):
            if x in (types.float32, types.float64):
                return x(x), codegen
            return None

        typer.__name__ = libm
        return intrinsic(typer)

    return {name: make(name, llvm_intrinsic) for name, llvm_intrinsic in FUNCTIONS.items()}


if AVAILABLE:
    globals().update(_definitions())
