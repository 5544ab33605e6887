"""Kernel results that reuse the array of the previous call once nobody holds it any more.

A fresh result above glibc's mmap threshold (an 80 MB vector, W1 at 10^7) comes from new pages:
each call faults in and zeroes 20,000 of them, and that cost more than the kernel itself (44-47
ms a call against 17 ms with the pages reused, docs/performance.md). NumPy pays it too; PyTorch
and XLA keep their own allocators for this reason.

The driver keeps the last array a kernel returned for a result (``last``) and, at the next
call, hands it back to the kernel (``take()``) if its reference count shows that only the
driver holds it: the caller dropped the result and every view of it (a NumPy view holds its
base, and so does anything exported through the buffer protocol). Otherwise it hands over an
empty array and the kernel allocates a new one. Under the GIL the check cannot race: a second
thread taking the same array holds a reference of its own while it checks. Where the
interpreter runs without a GIL, nothing is reused.
"""

from __future__ import annotations

import sys

import numpy as np

#: Reference counts are exact only with the GIL (free-threaded builds defer some increments).
ENABLED = getattr(sys, "_is_gil_enabled", lambda: True)()


class Recycled:
    """The array a kernel returned for one result at the last call, to be written again."""

    __slots__ = ("last", "empty", "dtype", "ndim")

    def __init__(self, dtype: str, ndim: int):
        self.last = None
        self.empty = np.empty((0,) * ndim, dtype)  # the kernel allocates when handed this
        self.dtype, self.ndim = self.empty.dtype, ndim

    def take(self) -> np.ndarray:
        """The last array, if nothing but this slot held it and a kernel may still write it
        as it is (C-contiguous, aligned, writable, of the result's dtype and rank), else an
        empty array."""
        last, self.last = self.last, None
        if (
            last is not None
            and sys.getrefcount(last) == 2  # ``last`` here and getrefcount's argument
            and last.flags.carray
            and last.ndim == self.ndim
            and last.dtype == self.dtype
            and ENABLED
        ):
            return last
        return self.empty
