"""Kernels for 2-D convolution and pooling on NCHW images.

Convolution is im2col and one BLAS product, as in Caffe: a kernel copies each window into a row
of a matrix (N*Ho*Wo, C*kh*kw) in one pass (NumPy's reference builds a strided view and lets
``tensordot`` copy it, which is several times slower), then ``matmul`` with the filters as a
(C*kh*kw, O) matrix. Pooling is one loop nest. ``Patches`` and ``PatchesAdjoint`` (im2col and
col2im in the op's own layout, which the gradients of convolution and pooling use) are kernels
too. Window sizes, strides and padding are op parameters, so they are written into the code.
"""

from __future__ import annotations

import numpy as np

from ...graph import Node
from ...ops.nn import Conv2d, Patches, PatchesAdjoint, Pool2d
from . import loops
from .lowering import Step, lower, make_kernel

_WINDOWS = """    n_, c_, h_, w_ = a0.shape
    ho = (h_ + 2 * {ph} - {kh}) // {sh} + 1
    wo = (w_ + 2 * {pw} - {kw}) // {sw} + 1"""

# Every (window, element) pair of an image inside its padding; {move} copies one element.
_WINDOW_NEST = """    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    for p in range({kh}):
                        y = i * {sh} + p - {ph}
                        if 0 <= y < h_:
                            for q in range({kw}):
                                x = j * {sw} + q - {pw}
                                if 0 <= x < w_:
                                    {move}"""

_IM2COL = """def kernel(a0):
{windows}
    out = np.zeros({shape}, {T})
{nest}
    return out"""

_COL2IM = """def kernel(a0, h_, w_):
    n_, c_, ho, wo = a0.shape[:4]
    out = np.zeros((n_, c_, h_, w_), {T})
{nest}
    return out"""

_POOL = """def kernel(a0):
{windows}
    out = np.empty((n_, c_, ho, wo), {T})
    for n in range(n_):
        for c in range(c_):
            for i in range(ho):
                for j in range(wo):
                    {start}
                    for p in range({kh}):
                        for q in range({kw}):
                            v = a0[n, c, i * {sh} + p, j * {sw} + q]
                            {step}
                    out[n, c, i, j] = {T}({result})
    return out"""

_POOL_KINDS = {
    # NaN propagates as in np.max: once m is NaN no comparison replaces it.
    "max": ("m = a0[n, c, i * {sh}, j * {sw}]", "if v > m or v != v:\n                                m = v", "m"),
    "avg": ("s = 0.0", "s += v", "s / {count}"),
}


def _params(kernel, stride, padding, dtype: str) -> dict:
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    params = dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, T=loops.CTOR[dtype], count=kh * kw)
    params["windows"] = _WINDOWS.format(**params)
    return params


def _nest(params: dict, move: str) -> str:
    return _WINDOW_NEST.format(move=move, **params)


def _im2col(node: Node, kernel, stride, padding, rows: bool):
    """im2col of the node's first input: (N, Ho, Wo, C, kh, kw) when ``rows`` (a matrix for
    BLAS), else the op's (N, C, Ho, Wo, kh, kw)."""
    x = node.inputs[0]
    params = _params(kernel, stride, padding, x.dtype)
    if rows:
        params.update(
            shape=f"(n_, ho, wo, c_, {kernel[0]}, {kernel[1]})",
            nest=_nest(params, "out[n, i, j, c, p, q] = a0[n, c, y, x]"),
        )
    else:
        params.update(
            shape=f"(n_, c_, ho, wo, {kernel[0]}, {kernel[1]})",
            nest=_nest(params, "out[n, c, i, j, p, q] = a0[n, c, y, x]"),
        )
    return make_kernel("im2col", _IM2COL.format(**params), [x.type], [node], False)


@lower.register
def _(op: Conv2d, node: Node) -> Step:
    w_kh, w_kw = node.inputs[1].type.shape[2:]
    if w_kh is None or w_kw is None:  # window size known only at run time: the reference
        return lower.dispatch(object)(op, node)
    kernel = _im2col(node, (w_kh, w_kw), op.stride, op.padding, rows=True)
    dtype = np.dtype(node.outputs[0].dtype)

    def conv2d(x, w):
        cols = kernel.fn(x)
        n, ho, wo = cols.shape[:3]
        filters = np.ascontiguousarray(w).reshape(w.shape[0], -1)
        out = cols.reshape(n * ho * wo, -1) @ filters.T
        return np.ascontiguousarray(out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2), dtype=dtype)

    return Step(conv2d, list(node.inputs), False, kernel, contiguous_out=True, contiguous_in=True, blas=True)


@lower.register
def _(op: Patches, node: Node) -> Step:
    kernel = _im2col(node, op.kernel, op.stride, op.padding, rows=False)
    return Step(kernel, list(node.inputs), False, kernel, contiguous_out=True, contiguous_in=True)


@lower.register
def _(op: PatchesAdjoint, node: Node) -> Step:
    g = node.inputs[0]
    params = _params(op.kernel, op.stride, op.padding, g.dtype)
    body = _COL2IM.format(nest=_nest(params, "out[n, c, y, x] += a0[n, c, i, j, p, q]"), **params)
    flags = "cache=True, error_model='numpy', nogil=True"
    signature = f"(_A({loops.NUMBA_DTYPE[g.dtype]}, 6), nb.int64, nb.int64)"
    kernel = make_kernel("col2im", body, [g.type], [node], False, signature=signature, flags=flags)
    size = op.size

    def col2im(g, *dims):
        dims = iter(dims)
        h, w = (int(next(dims)) if d is None else d for d in size)
        return kernel.fn(g, h, w)

    return Step(col2im, list(node.inputs), False, kernel, contiguous_out=True, contiguous_in=True)


@lower.register
def _(op: Pool2d, node: Node) -> Step:
    x = node.inputs[0]
    params = _params(op.kernel, op.stride, (0, 0), x.dtype)
    start, step, result = (part.format(**params) for part in _POOL_KINDS[op.kind])
    params.update(start=start, step=step, result=result)
    kernel = make_kernel(op.name, _POOL.format(**params), [x.type], [node], False)
    return Step(kernel, list(node.inputs), False, kernel, contiguous_out=True, contiguous_in=True)
