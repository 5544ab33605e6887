"""W4: compile time of W2's training step (w2_mlp_step.py), cold (empty caches) and warm (from the disk cache).

Run: PYTHONPATH=. python benchmarks/w4_compile.py [--quick] [--threads N] [--markdown [FILE]]
     [--skip NAMES] [--repeat N]

For each system, a fresh temporary cache directory, then two fresh Python processes one after the other, both
pointed at it: the first compiles with empty caches (cold) and fills them, the second finds them (warm). Each
process imports, builds the step's graph from W2's code (same parameters, same batch), then times compiling plus
the first call:

* graphc: gc.function([x, t], loss, updates=...) and its first call, GRAPHC_CACHE_DIR set to the directory
  (the numpy backend has no compiled code to cache: its row is for scale);
* JAX: jax.jit(step) and its first call (trace, XLA compilation, run), with the persistent compilation cache
  (jax_compilation_cache_dir set to the directory, jax_persistent_cache_min_compile_time_secs 0);
* PyTensor NUMBA: pytensor.function(..., mode="NUMBA") and its first call, with
  PYTENSOR_FLAGS=base_compiledir=<dir> (PyTensor keeps its compiledir and its Numba cache under it);
* torch.compile: the first training step (Dynamo, AOTAutograd, Inductor's C++ compilation of forward, backward
  and optimizer step), TORCHINDUCTOR_CACHE_DIR set to the directory (--quick leaves it out: a cold compile takes
  tens of seconds).

Every process also gets NUMBA_CACHE_DIR in its directory, so no system finds numba code cached by an earlier run.
Each system's libraries are imported before the clock starts: jax, torch, pytensor, and numba for graphc's and
PyTensor's numba backends (numba's import, about 0.2 s, is then in the import column, as jax's import is for
JAX). The table gives the seconds of compile plus first call, cold and warm (the median over --repeat pairs of
processes, default 1), and for context the import time and the graph-building time of the warm process (they are
not part of the compile times).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import Report, Table, available, graphc_backends, graphc_label, parse_args, parser, short_error, skip_reason

MARK = "W4RESULT "


# ---------------------------------------------------------------------------------------------------------------
# The child process: one system, one compile, timings as one JSON line.


def _time_numba_import() -> float:
    """Import numba (the numba backends' library, imported before the clock starts as jax is) and
    return the seconds it took, reported beside the compile times."""
    t = time.perf_counter()
    import numba  # noqa: F401

    return time.perf_counter() - t


def _until_compiled_driver(fn, x, targets) -> float:
    """Seconds after the first call until graphc's compiled driver runs the calls: the further calls
    that make the function hot, then its compile in a thread (docs/numba.md, "The compiled driver"),
    waited for here with no calls beside it. 0 when the first call loaded it from the cache."""
    from graphc.backends.numba import compiled

    t = time.perf_counter()
    for _ in range(compiled.HOT_CALLS):
        if "# compiled driver" in fn.source():
            break
        fn(x, targets)
    for thread in list(compiled._compiling):
        thread.join()
    return time.perf_counter() - t if "# compiled driver" in fn.source() else float("nan")


def child(system: str) -> dict:
    start = time.perf_counter()
    import numpy as np
    from w2_mlp_step import init_params, make_batch

    params, (x, labels, targets) = init_params(), make_batch()
    out = {}
    if system.startswith("graphc-"):
        from w2_mlp_step import graphc_step_graph

        import graphc as gc

        backend = system.removeprefix("graphc-")
        if backend == "numba":
            out["numba import"] = _time_numba_import()
        out["import"] = time.perf_counter() - start
        t = time.perf_counter()
        inputs, loss, updates = graphc_step_graph(params)
        out["build"] = time.perf_counter() - t
        t = time.perf_counter()
        fn = gc.function(inputs, loss, updates=updates, backend=backend)
        value = float(fn(x, targets))
        out["compile"] = time.perf_counter() - t
        if backend == "numba":
            out["driver"] = _until_compiled_driver(fn, x, targets)
    elif system == "jax":
        import jax
        from w2_mlp_step import jax_initial_state, jax_step_function

        jax.config.update("jax_compilation_cache_dir", os.environ["W4_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        out["import"] = time.perf_counter() - start
        t = time.perf_counter()
        state = jax_initial_state(params)
        xj, tj = jax.device_put(x), jax.device_put(targets)
        jax.block_until_ready((state, xj, tj))
        out["build"] = time.perf_counter() - t
        t = time.perf_counter()
        step = jax_step_function()
        value = float(step(*state, xj, tj)[-1])
        out["compile"] = time.perf_counter() - t
    elif system == "pytensor-numba":
        out["numba import"] = _time_numba_import()
        import pytensor
        from w2_mlp_step import pytensor_mode, pytensor_step_graph

        out["import"] = time.perf_counter() - start
        t = time.perf_counter()
        inputs, loss, updates = pytensor_step_graph(params)
        out["build"] = time.perf_counter() - t
        t = time.perf_counter()
        fn = pytensor.function(inputs, loss, updates=updates, mode=pytensor_mode("NUMBA"))
        value = float(fn(x, targets))
        out["compile"] = time.perf_counter() - t
    elif system == "torch-compile":
        import torch  # noqa: F401  (imported here so that its import counts as import time)
        from w2_mlp_step import torch_impl

        out["import"] = time.perf_counter() - start
        t = time.perf_counter()
        step = torch_impl(params, x, labels, compiled=True)
        out["build"] = time.perf_counter() - t
        t = time.perf_counter()
        value = step()
        out["compile"] = time.perf_counter() - t
    else:
        raise SystemExit(f"unknown system {system!r}")
    out["loss"] = value
    assert np.isfinite(value)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The parent: fresh directories, pairs of processes, the table.


def systems() -> list[tuple[str, str, str, str]]:
    """(row name, child system, the module it needs, note)."""
    notes = {"numba": "GRAPHC_CACHE_DIR", "numpy": "nothing to cache"}
    rows = [(graphc_label(b), f"graphc-{b}", "graphc", notes[b]) for b in graphc_backends()]
    return rows + [
        ("JAX jit", "jax", "jax", "persistent compilation cache"),
        ("PyTensor NUMBA", "pytensor-numba", "pytensor", "PYTENSOR_FLAGS=base_compiledir"),
        ("torch.compile", "torch-compile", "torch", "TORCHINDUCTOR_CACHE_DIR"),
    ]


def environment(system: str, directory: str) -> dict[str, str]:
    env = dict(os.environ)
    env["W4_CACHE_DIR"] = directory
    env["GRAPHC_CACHE_DIR"] = os.path.join(directory, "graphc")
    env["NUMBA_CACHE_DIR"] = os.path.join(directory, "numba")
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(directory, "inductor")
    flags = env.get("PYTENSOR_FLAGS", "")
    base = f"base_compiledir={os.path.join(directory, 'pytensor')}"
    env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, base) if f)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return env


def run_child(system: str, directory: str, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", system]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=environment(system, directory), capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            result = json.loads(line[len(MARK) :])
            result["process"] = wall
            return result
    print(f"# {system} process failed (exit {proc.returncode}):\n{proc.stderr}", file=sys.stderr)
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    raise RuntimeError(f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}")


def measure_system(system: str, repeat: int, timeout: float) -> tuple[dict, str]:
    """Cold and warm seconds (medians over ``repeat`` pairs of processes) and a note on what failed, if anything.

    A failed cold process raises; a failed warm process leaves "warm" out and says why in the note."""
    colds, warms, drivers, last, note = [], [], [], {}, ""
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="w4-cache-") as directory:
            try:
                cold = run_child(system, directory, timeout)
            except Exception as err:
                raise RuntimeError(f"cold process: {short_error(err, 100)}") from err
            try:
                last = run_child(system, directory, timeout)
            except Exception as err:
                note = f"warm process failed: {short_error(err, 100)}"
                last = cold
        colds.append(cold["compile"])
        if "driver" in cold:
            drivers.append((cold["driver"], last.get("driver")))
        if note:
            break
        warms.append(last["compile"])
        if abs(cold["loss"] - last["loss"]) > 1e-4 * abs(cold["loss"]):
            note = f"cold and warm processes disagree: loss {cold['loss']} vs {last['loss']}"
    result = {
        "cold": statistics.median(colds),
        "import": last["import"],
        "build": last["build"],
        "process": last["process"],
        "numba import": last.get("numba import"),
        "loss": last["loss"],
    }
    if drivers:
        result["driver"] = (statistics.median(d[0] for d in drivers), statistics.median(d[1] or 0.0 for d in drivers))
    if warms and not note:
        result["warm"] = statistics.median(warms)
    return result, note


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--repeat", type=int, default=1, help="pairs of cold and warm processes per system (median)")
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed to one child process")
    p.add_argument("--child", help=argparse.SUPPRESS)  # runs one system in this process
    args = parse_args(p, argv)
    if args.child:
        result = child(args.child)
        print(MARK + json.dumps(result), flush=True)
        return
    report = Report("W4: compile time of the W2 training step (MLP 784-256-256-10, Adam), cold and warm", args)
    columns = ["cold s", "warm s", "warm/cold", "compiled driver s", "numba import s", "import s", "graph s"]
    columns += ["warm process s", "loss"]
    table = Table("W4 compile + first call, seconds", extra_columns=columns, timed=False)
    for name, system, module, note in systems():
        reason = skip_reason(args, name)
        if reason or not available(module):
            table.add(name, note=reason or f"not installed ({module})")
            continue
        try:
            r, failure = measure_system(system, args.repeat, args.timeout)
        except Exception as err:  # a peer that fails is a row, not a crash
            table.add(name, note=f"failed in the {short_error(err, 140).removeprefix('RuntimeError: ')}")
            continue
        warm = r.get("warm")
        cells = {
            "cold s": f"{r['cold']:.2f}",
            "warm s": f"{warm:.2f}" if warm else "-",
            "warm/cold": f"{warm / r['cold']:.2f}" if warm else "-",
            "compiled driver s": "{:.2f} / {:.2f}".format(*r["driver"]) if "driver" in r else "-",
            "numba import s": "-" if r["numba import"] is None else f"{r['numba import']:.2f}",
            "import s": f"{r['import']:.2f}",
            "graph s": f"{r['build']:.2f}",
            "warm process s": f"{r['process']:.1f}" if warm else "-",
            "loss": f"{r['loss']:.5f}",
        }
        note = f"{note}; {failure}" if failure else note
        print(f"# {name}: cold {r['cold']:.2f} s, warm {f'{warm:.2f} s' if warm else '-'}", flush=True)
        table.add(name, note=note, **cells)
    report.show(table)
    report.finish(
        [
            "cold s / warm s: compile plus first call in a fresh process with empty / filled cache directory"
            + (f" (median of {args.repeat} pairs)" if args.repeat > 1 else "")
            + ".",
            "compiled driver s (graphc, cold / warm process): seconds after the first call until graphc's compiled "
            "driver makes the calls: 15 more calls, then its compile in a thread, waited for with no calls beside it "
            "(warm: it came from the cache with the first call, whose time includes loading it).",
            "numba import s: importing numba, for the numba backends (warm process; part of import s); "
            "import s: importing the libraries and W2's module (warm process); graph s: building the step's graph "
            "(graphc, PyTensor), or the initial device state (JAX), or parameters and optimizer (torch).",
            "warm process s: the whole warm process, interpreter start-up included; loss: the first step's loss "
            "(the same in both processes).",
        ]
    )


if __name__ == "__main__":
    main()
