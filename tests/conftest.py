"""Suite-wide settings.

Tests that compile a function without naming a backend run on the numpy reference backend: they
test the front end, the optimizer and autodiff, which do not depend on the backend, and it
compiles nothing. The Numba backend is tested against it op by op and on generated graphs
(tests/test_ops.py compiles every case on both; tests/test_numba_backend.py). To run the whole
suite on Numba, set ``GRAPHC_TEST_BACKEND=numba`` (``make test-numba``).
"""

from __future__ import annotations

import os
import sys

import pytest

import graphc  # noqa: F401  (loads graphc.function)

BACKEND = os.environ.get("GRAPHC_TEST_BACKEND", "numpy")


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    monkeypatch.setattr(sys.modules["graphc.function"], "DEFAULT_BACKEND", BACKEND)
