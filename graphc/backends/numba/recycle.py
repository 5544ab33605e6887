"""Kernel results that reuse an array of an earlier call once nobody holds it any more.

A fresh result above glibc's mmap threshold (an 80 MB vector, W1 at 10^7) comes from new pages:
each call faults in and zeroes 20,000 of them, and that cost more than the kernel itself (44-47
ms a call against 17 ms with the pages reused, docs/performance.md). NumPy pays it too; PyTorch
and XLA keep their own allocators for this reason.

The driver keeps the arrays a kernel returned for a result at the last two calls and, at the
next call, hands one back to the kernel (``take()``) if its reference count shows that only the
driver holds it: the caller dropped the result and every view of it (a NumPy view holds its
base, and so does anything exported through the buffer protocol). Two, because the usual loop
``y = f(x)`` still holds the last result while the next call runs. Otherwise the kernel gets an
empty array and allocates a new one. Under the GIL the check cannot race: a second thread
taking the same array holds a reference of its own while it checks.

What a reference count cannot see: a raw pointer (``a.ctypes.data``), a weak reference, or a
buffer exported by numba's memory object (``a.base``) rather than by the array. Such a holder
sees the array change at a later call.

The count of an array held only by ``take``'s local variable differs between Python versions
(3.14 no longer counts the reference a call's argument borrows), so it is found by running
``take`` itself at import (``_sole_count``); where no count passes, or the interpreter runs
without a GIL, nothing is reused (``ENABLED``).
"""

from __future__ import annotations

import sys

import numpy as np


def _fits(a: np.ndarray, like: np.ndarray) -> bool:
    """Whether a kernel may still write ``a`` as it is: C-contiguous, aligned, writable, of the
    result's dtype and rank, those of ``like`` (a caller may have frozen or reshaped it before
    dropping it)."""
    return a.flags.carray and a.ndim == like.ndim and a.dtype == like.dtype


class Recycled:
    """The arrays a kernel returned for one result at the last two calls, to be written again."""

    __slots__ = ("last", "older", "empty")

    def __init__(self, dtype: str, ndim: int):
        self.last = self.older = None
        self.empty = np.empty((0,) * ndim, dtype)  # the kernel allocates when handed this

    def take(self) -> np.ndarray:
        """An array of the last two calls that nothing but this slot holds, else an empty one.
        The driver stores the call's result in ``last`` afterwards."""
        newest, older = self.last, self.older
        self.last = self.older = None
        if ENABLED and newest is not None and sys.getrefcount(newest) == SOLE and _fits(newest, self.empty):
            self.older = older
            return newest
        if ENABLED and older is not None and sys.getrefcount(older) == SOLE and _fits(older, self.empty):
            self.older = newest
            return older
        self.older = newest  # held, most likely by the caller's name for the last result
        return self.empty

    def forget(self) -> None:
        self.last = self.older = None


def _sole_count() -> int | None:
    """The reference count ``take`` sees for an array only it holds: the one count for which
    ``take`` hands back exactly the arrays nobody else holds, in each of its branches."""
    global SOLE
    for count in (1, 2, 3):
        SOLE = count
        slot, held = Recycled("float64", 1), np.empty(1)
        slot.last = np.empty(1)
        sole_last = slot.take().size == 1
        slot.last, slot.older = held, None
        held_last = slot.take().size == 0
        slot.last, slot.older = held, np.empty(1)
        sole_older = slot.take().size == 1 and slot.older is held
        slot.last, slot.older = held, held
        both_held = slot.take().size == 0
        if sole_last and held_last and sole_older and both_held:
            return count
    return None


ENABLED = True
SOLE = 0
SOLE = _sole_count()
#: Reference counts are exact only with the GIL (free-threaded builds defer some increments).
ENABLED = SOLE is not None and getattr(sys, "_is_gil_enabled", lambda: True)()
