"""Compile generated CUDA kernels to PTX, without a GPU and without the simulator.

    python tests/cuda_ptx.py KERNELS.json     # a JSON list of kernels
    python tests/cuda_ptx.py --stream         # one JSON kernel per line on stdin, until EOF

A kernel is {"name", "source", "signature"} (the CUDA backend's record,
``graphc.backends.cuda.runtime.GENERATED``). Each source is executed with the globals kernels get
on a GPU (``cuda``, ``math``, ``np``, ``nb``) and compiled by ``numba.cuda.compile_ptx`` for
compute capability 8.0: this type-checks what the simulator runs as plain Python. At the end it
prints a JSON summary {"compiled": n, "cached": n, "failures": [{"name", "signature", "error"}]};
the exit status is 1 if any kernel failed.

``--stream`` lets tests compile kernels while they are still generating more (on the second
core: the simulator keeps one busy); stdin is read by a thread, so the writer never waits. When
the input ends with many kernels still waiting, a second process takes half of them.

A kernel that compiled is remembered by the SHA-256 of its source, signature and the numba-cuda
version, in ``$GRAPHC_CACHE_DIR/cuda-ptx`` (else ``~/.cache/graphc/cuda-ptx``), so a later run
compiles only new kernels. ``GRAPHC_PTX_NO_CACHE=1`` compiles everything.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"  # before numba.cuda is imported

CC = (8, 0)


def _cache_dir() -> Path:
    root = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graphc"
    )
    return Path(root) / "cuda-ptx"


class Checker:
    def __init__(self):
        self.cache = _cache_dir() if os.environ.get("GRAPHC_PTX_NO_CACHE") != "1" else None
        self.tag = "\0".join([version("numba-cuda"), repr(CC)])
        self.compiled, self.cached, self.failures = 0, 0, []

    def _key(self, kernel: dict) -> str:
        return hashlib.sha256("\0".join([kernel["source"], kernel["signature"], self.tag]).encode()).hexdigest()

    def known(self, kernel: dict) -> bool:
        """Whether ``kernel`` compiled in an earlier run (counted as cached)."""
        if self.cache is not None and (self.cache / self._key(kernel)).exists():
            self.cached += 1
            return True
        return False

    def record(self, kernel: dict, error: str | None) -> None:
        if error is not None:
            self.failures.append({"name": kernel["name"], "signature": kernel["signature"], "error": error})
            return
        self.compiled += 1
        if self.cache is not None:
            self.cache.mkdir(parents=True, exist_ok=True)
            (self.cache / self._key(kernel)).touch()

    def check(self, kernel: dict) -> None:
        if not self.known(kernel):
            self.record(kernel, _compile(kernel))

    def check_all(self, kernels: list[dict]) -> None:
        """Every kernel, half of them in a second process when there are many."""
        todo = [k for k in kernels if not self.known(k)]
        if len(todo) < 16:
            for kernel in todo:
                self.record(kernel, _compile(kernel))
            return
        half = len(todo) // 2
        with ProcessPoolExecutor(1) as pool:
            other = pool.submit(_compile_many, todo[half:])
            for kernel in todo[:half]:
                self.record(kernel, _compile(kernel))
            for kernel, error in zip(todo[half:], other.result()):
                self.record(kernel, error)

    def summary(self) -> int:
        print(json.dumps({"compiled": self.compiled, "cached": self.cached, "failures": self.failures}), flush=True)
        return 1 if self.failures else 0


def _compile(kernel: dict) -> str | None:
    """None if ``kernel`` compiles to PTX, else the error."""
    import numba as nb
    import numpy as np
    from numba import cuda

    env = {"cuda": cuda, "math": math, "np": np, "nb": nb}
    try:
        exec(compile(kernel["source"], f"<{kernel['name']}>", "exec"), env)
        cuda.compile_ptx(env["kernel"], eval(kernel["signature"], {"nb": nb}), cc=CC)
    except Exception as err:  # every failure is reported, with the kernel it came from
        return f"{type(err).__name__}: {err}"
    return None


def _compile_many(kernels: list[dict]) -> list[str | None]:
    return [_compile(k) for k in kernels]


def main(argv: list[str]) -> int:
    checker = Checker()
    if argv[:1] == ["--stream"]:
        lines: queue.Queue = queue.Queue()

        def read() -> None:
            for line in sys.stdin:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while (line := lines.get()) is not None:
            if line.strip():
                checker.check(json.loads(line))
                if lines.qsize() > 64 and lines.queue[-1] is None:  # the writer is done: use both cores
                    break
        rest = []
        while line is not None:
            line = lines.get()
            if line is not None and line.strip():
                rest.append(json.loads(line))
        checker.check_all(rest)
    else:
        checker.check_all(json.loads(Path(argv[0]).read_text()))
    return checker.summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
