"""STREAM triad bandwidth (a = b + s*c, float64): the memory-bandwidth ceiling for elementwise workloads.

Run: PYTHONPATH=. python benchmarks/stream.py [--quick] [--threads N] [--markdown [FILE]] [--n N]

Bytes are counted as STREAM counts them: 3 arrays of 8-byte elements per triad (read b and c, write a), no
write-allocate traffic. Three implementations:

* numpy: ``np.multiply(c, s, out=a); np.add(a, b, out=a)``, no temporaries, but two passes (it really moves
  5 arrays, so its STREAM-counted bandwidth is below the machine's);
* numba serial: one ``@njit`` loop;
* numba prange: ``@njit(parallel=True)`` with ``prange`` over all cores.

``triad()`` returns the table and the best bandwidth; w1_lecture.py calls it to put its own bandwidths in
proportion to the machine's.
"""

from __future__ import annotations

import numpy as np
from common import Report, Table, attempt, measure, parse_args, parser

SCALAR = 3.0


def _numba_triads():
    import numba

    @numba.njit(cache=False)
    def serial(a, b, c, s):
        for i in range(a.shape[0]):
            a[i] = b[i] + s * c[i]

    @numba.njit(parallel=True, cache=False)
    def parallel(a, b, c, s):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    return serial, parallel, numba.get_num_threads()


def triad(n: int, quick: bool = False, budget: float | None = None) -> tuple[Table, float]:
    """Measure the triad on arrays of n float64; return the table and the best GB/s (STREAM byte count)."""
    rng = np.random.default_rng(0)
    a, b, c = np.empty(n), rng.random(n), rng.random(n)
    a[:] = 0.0  # first touch outside the timing
    nbytes = 3 * 8 * n
    table = Table(f"STREAM triad a = b + s*c, float64, n = {n:.0e} ({nbytes / 1e6:.0f} MB counted per call)")
    table.extra_columns = ["GB/s"]
    best = 0.0
    want = b + SCALAR * c

    def numpy_triad():
        np.multiply(c, SCALAR, out=a)
        np.add(a, b, out=a)

    rows = [("numpy", lambda: numpy_triad, "out=, two passes")]
    kernels, note = attempt("numba", _numba_triads)
    if kernels is None:
        table.add("numba serial", note=note)
        table.add("numba prange", note=note)
    else:
        serial, parallel, threads = kernels
        rows.append(("numba serial", lambda: lambda: serial(a, b, c, SCALAR), ""))
        rows.append(("numba prange", lambda: lambda: parallel(a, b, c, SCALAR), f"{threads} thread(s)"))
    for name, make, note in rows:
        fn = make()
        timing = measure(fn, quick=quick, budget=budget)
        if not np.allclose(a, want):
            table.add(name, note="wrong result")
            continue
        gbs = nbytes / timing.median / 1e9
        best = max(best, gbs)
        table.add(name, timing, note=note, **{"GB/s": f"{gbs:.1f}"})
    return table, best


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=None, help="array length (default 2e7, --quick 1e6)")
    args = parse_args(p, argv)
    n = args.n or (10**6 if args.quick else 2 * 10**7)
    report = Report("STREAM triad (numpy, numba)", args)
    table, best = triad(n, args.quick, args.budget)
    table.notes.append(f"best: {best:.1f} GB/s")
    report.show(table)
    report.finish()


if __name__ == "__main__":
    main()
