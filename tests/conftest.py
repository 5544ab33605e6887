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

# numba-cuda reads this once, when numba loads its extensions (importing numba.core.errors or
# numba.extending, or a first compile, does), so it is set before any test module imports numba:
# the CUDA tests run on the simulator unless the environment says otherwise (tests/test_cuda_backend.py).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import graphc  # noqa: E402, F401  (loads graphc.function)

BACKEND = os.environ.get("GRAPHC_TEST_BACKEND", "numpy")


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    monkeypatch.setattr(sys.modules["graphc.function"], "DEFAULT_BACKEND", BACKEND)
