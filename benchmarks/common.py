"""Shared helpers of the workload benchmarks (w1_lecture.py ... w4_compile.py, stream.py).

* ``parser(doc)`` / ``parse_args``: the options every script takes: --quick (small sizes, few repeats, no
  torch.compile rows), --markdown [FILE], --skip NAMES, --threads N (pin to N cores, set every library's thread
  count, restart the process), --budget SECONDS.
* ``measure(fn)``: timeit-style timing. One warm-up call (compilation, caches; ``run_case`` makes it itself), then
  the number of calls per repeat is doubled until a repeat takes at least ``min_time``, and the repeat count is
  chosen so the timed calls take about ``budget`` seconds (at least 3 repeats; ``run_case``: 2 after a first
  call of over 5 seconds). Python's garbage collector is
  off while timing, as in ``timeit``. The result is the median time of one call, with the fastest and slowest.
* ``run_case``: one row: set up, first call (timed as "setup+1st call", result checked), then ``measure``.
* ``Table``: one table per workload: implementation, median time, time relative to the hand-written numpy code
  measured in the same run, extra columns (check, bandwidth, first call), the timed calls, the spread
  ((slowest - fastest) / median) and a note ("not installed", why an implementation failed). ``Report`` prints
  the header and the tables as text and, with ``--markdown``, as Markdown for docs/performance.md.
* ``header()``: machine (CPU model, cores, memory), date, Python and library versions, graphc's backend, the
  thread settings, the load average.
* ``graphc_backend()``: "numba" once graphc.function.BACKENDS has it, else "numpy"; ``graphc_backends()`` the
  rows to run (numba, and numpy for scale), ``graphc_label()`` their names.
* ``attempt(name, setup)``: runs a peer's set-up; a missing package gives a "not installed" row, any other
  error a "failed: ..." row, so one broken peer never stops a benchmark.
* ``configure_pytensor()``: links PyTensor's C backend to the system's OpenBLAS when it would find none.
* ``steady_malloc()``: the same glibc allocator thresholds for every row (a compiler that runs first
  would otherwise change them for the rows after it, numpy's baseline included).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import placement

#: Packages whose versions the header prints (distribution names), in this order.
VERSIONED = ["numpy", "scipy", "numba", "llvmlite", "numexpr", "jax", "jaxlib", "pytensor", "torch"]


# ----------------------------------------------------------------------------------------------------------------
# Command line


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every workload script takes (see the module docstring); parse them with ``parse_args``."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke run of seconds")
    p.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="FILE",
        help="also write the tables as Markdown (to FILE, or to standard output after the text tables)",
    )
    p.add_argument(
        "--skip",
        default="",
        metavar="NAMES",
        help="comma-separated implementations to leave out (a row is skipped if its name contains one), "
        "e.g. --skip torch.compile,pytensor",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="run every library on N threads, pinned to N cores (thread variables set, process restarted); "
        "default: the libraries' own defaults (all cores). --threads 1 is steadier on a busy machine",
    )
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)  # run_cases: the one row a child process times
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="scripts that time each row in a fresh process: how many processes per row, the median kept "
        "(default 3, --quick 1)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed calls per implementation (default 1.5, --quick 0.1)",
    )
    return p


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
THREAD_VARIABLES += ("NUMEXPR_MAX_THREADS", "NUMBA_NUM_THREADS")


def parse_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse; with --threads N, pin the process to N cores and restart it with every library's thread count
    set, since BLAS, OpenMP, numba and XLA read theirs when they are first imported."""
    args = p.parse_args(argv)
    if args.threads and os.environ.get("GRAPHC_BENCH_THREADS") != str(args.threads):
        n = args.threads
        if hasattr(os, "sched_setaffinity"):
            usable = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, usable[:n])
        for var in THREAD_VARIABLES:
            os.environ[var] = str(n)
        if n == 1:  # XLA's CPU client: no intra-op thread pool for Eigen (matrix products)
            xla = os.environ.get("XLA_FLAGS", "")
            os.environ["XLA_FLAGS"] = (xla + " --xla_cpu_multi_thread_eigen=false").strip()
        os.environ["GRAPHC_BENCH_THREADS"] = str(n)
        sys.stdout.flush()
        rest = sys.argv[1:] if argv is None else list(argv)
        os.execv(sys.executable, [sys.executable, sys.argv[0], *rest])
    return args


def set_torch_threads(torch) -> None:
    """torch.set_num_threads(N) under --threads N (PyTorch sizes its pool from the cores, not only the variables)."""
    n = os.environ.get("GRAPHC_BENCH_THREADS")
    if n:
        torch.set_num_threads(int(n))


# ----------------------------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    median: float  # seconds per call
    low: float  # fastest repeat, seconds per call
    high: float  # slowest repeat, seconds per call
    repeat: int
    number: int  # calls per repeat

    @property
    def runs(self) -> str:
        return f"{self.repeat}x{self.number}"


def _time_calls(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def measure(
    fn: Callable[[], object],
    *,
    quick: bool = False,
    budget: float | None = None,
    min_repeat: int = 3,
    max_repeat: int | None = None,
    warm_up: bool = True,
) -> Timing:
    """Median seconds per call of ``fn()`` after one warm-up call (unless the caller made it, ``warm_up=False``);
    the repeat count adapts to the runtime."""
    budget = budget if budget is not None else (0.1 if quick else 1.5)
    max_repeat = max_repeat or (5 if quick else 25)
    min_time = 0.005 if quick else 0.05  # one repeat lasts at least this long (timeit's autorange)
    if warm_up:
        fn()  # compilation, caches, first touch of memory
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        number = 1
        while True:
            elapsed = _time_calls(fn, number)
            if elapsed >= min_time:
                break
            number *= 2
        repeat = max(min_repeat, min(max_repeat, math.ceil(budget / elapsed)))
        times = [elapsed / number] + [_time_calls(fn, number) / number for _ in range(repeat - 1)]
    finally:
        if was_enabled:
            gc.enable()
    return Timing(statistics.median(times), min(times), max(times), repeat, number)


# ----------------------------------------------------------------------------------------------------------------
# graphc's backend


def graphc_backend() -> str:
    """The backend the graphc rows use: "numba" once graphc.function.BACKENDS has it, else "numpy"."""
    from graphc.function import BACKENDS

    return "numba" if "numba" in BACKENDS else "numpy"


def graphc_label(backend: str | None = None) -> str:
    return "graphc (numba)" if (backend or graphc_backend()) == "numba" else "graphc (numpy backend)"


def graphc_backends() -> list[str]:
    """The graphc rows: numba (when it exists) and the numpy reference backend, for scale."""
    return ["numba", "numpy"] if graphc_backend() == "numba" else ["numpy"]


# ----------------------------------------------------------------------------------------------------------------
# Peers


class Skip(Exception):
    """A row that is not measured, with the reason (e.g. PyTensor's C mode without a C++ compiler)."""


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def short_error(err: BaseException, limit: int = 90) -> str:
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def attempt(name: str, setup: Callable[[], object], verbose: bool = False):
    """Run ``setup()``; return (result, None) or (None, note) with "not installed" or "failed: ...".

    A ModuleNotFoundError for a peer package reads "not installed"; a Skip its message; anything else "failed:"
    and the first line of the error (the whole traceback goes to standard error).
    """
    try:
        return setup(), None
    except ModuleNotFoundError as err:
        return None, f"not installed ({err.name})"
    except Skip as err:
        return None, str(err)
    except Exception as err:  # a peer's failure is a result to report, not a crash
        print(f"# {name} failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return None, f"failed: {short_error(err)}"


# ----------------------------------------------------------------------------------------------------------------
# PyTensor's BLAS


def steady_malloc() -> str:
    """Put glibc's allocator in the state every row will see, and say so in the header.

    glibc serves blocks above its mmap threshold (128 KiB at start) with fresh pages, faulted in
    on every use, and raises the threshold (to at most 32 MiB) the first time such a block is
    freed. Compiling with numba or XLA frees large blocks, so rows measured after a compiler ran
    reused memory while a numpy baseline measured first did not: W2's numpy step took 4.6 ms in
    a fresh process and 2.1-2.4 ms with the raised thresholds. Setting them up front makes the
    ratios compare like with like.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 64 << 20)
    except (OSError, AttributeError):
        ok = False
    if ok:
        return "allocator: glibc mmap threshold 32 MiB, trim threshold 64 MiB for every row (see common.steady_malloc)"
    return "allocator: left as it is (not glibc)"


def configure_pytensor() -> None:
    """Link PyTensor's C backend to OpenBLAS where the system has it and the user set no BLAS flags.

    A pip-installed PyTensor finds no BLAS on its own unless libgfortran's development link is there too, and then
    its C backend computes matrix products with a slow fallback (it warns "could not link to a BLAS
    installation"). Call this before PyTensor is first imported; ``pytensor_c_note()`` says what it uses.
    """
    import ctypes.util

    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "blas__ldflags" not in flags and ctypes.util.find_library("openblas"):
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "blas__ldflags=-lopenblas") if f)


def pytensor_c_note() -> str:
    """The note for PyTensor C rows: the linker, and the BLAS flags it links or that it has none."""
    if not available("pytensor"):
        return ""
    import pytensor

    ldflags = pytensor.config.blas__ldflags
    return "cvm linker, " + (f"BLAS {ldflags}" if ldflags else "no BLAS linked: slow dot fallback")


# ----------------------------------------------------------------------------------------------------------------
# Header: machine, date, versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cores() -> str:
    logical = os.cpu_count() or 0
    usable = usable_cores()
    return f"{usable} cores" if usable == logical else f"{usable} of {logical} cores usable"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header_lines(title: str, quick: bool = False) -> list[str]:
    mem = memory_gib()
    mem_text = f", {mem:.0f} GiB memory" if mem else ""
    now = datetime.datetime.now().astimezone()
    versions = ", ".join(f"{d} {version(d)}" for d in VERSIONED)
    env = ("GRAPHC_BENCH_THREADS", *THREAD_VARIABLES, "PYTENSOR_FLAGS", "XLA_FLAGS", "GRAPHC_CACHE_DIR")
    threads = [f"{k}={os.environ[k]}" for k in env if k in os.environ]
    try:
        import graphc

        gc_text = f"graphc {getattr(graphc, '__version__', '?')} (backend: {graphc_backend()})"
    except ImportError:
        gc_text = "graphc not importable (set PYTHONPATH to the repository)"
    lines = [
        f"{title}{' [--quick]' if quick else ''}",
        f"machine: {cpu_model()}, {cores()}{mem_text}, {platform.system()} {platform.machine()}",
        f"date: {now:%Y-%m-%d %H:%M %Z}; python {platform.python_version()}; {gc_text}",
        f"versions: {versions}",
    ]
    if threads:
        lines.append("environment: " + ", ".join(threads))
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        lines.append(f"load average at start (1, 5, 15 min): {load}; other processes on these cores skew timings")
        busy = os.getloadavg()[0]
        if busy > 0.5 * usable_cores() and not os.environ.get("GRAPHC_BENCH_THREADS"):
            lines.append(
                f"WARNING: load {busy:.1f} on {usable_cores()} cores: multi-threaded rows (BLAS, OpenMP, prange) "
                "can be many times slower when a core is taken; --threads 1 is steadier"
            )
    return lines


def header(title: str, quick: bool = False) -> list[str]:
    """Print the header (each line starting with '# ') and return its lines."""
    lines = header_lines(title, quick)
    for line in lines:
        print(f"# {line}")
    sys.stdout.flush()
    return lines


# ----------------------------------------------------------------------------------------------------------------
# Tables


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} us"


@dataclass
class Row:
    name: str
    timing: Timing | None = None
    extra: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class Table:
    """One workload's rows. ``baseline`` names the row the ratio column divides by (numpy hand-written)."""

    title: str
    extra_columns: list[str] = field(default_factory=list)
    baseline: str = "numpy"
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timed: bool = True  # False: no median, ratio and runs columns, only the extra ones (w4_compile.py)

    def add(self, name: str, timing: Timing | None = None, note: str = "", **extra: str) -> Row:
        row = Row(name, timing, dict(extra), note)
        self.rows.append(row)
        return row

    def baseline_time(self) -> float | None:
        for row in self.rows:
            if row.name == self.baseline and row.timing:
                return row.timing.median
        return None

    def cells(self) -> tuple[list[str], list[list[str]]]:
        base = self.baseline_time()
        if not self.timed:
            heads = ["implementation", *self.extra_columns, "note"]
            return heads, [[r.name, *[r.extra.get(c, "-") for c in self.extra_columns], r.note] for r in self.rows]
        heads = ["implementation", "median", "vs numpy", *self.extra_columns, "runs", "spread", "note"]
        body = []
        for r in self.rows:
            t = r.timing
            ratio = f"{t.median / base:.2f}x" if t and base else "-"
            body.append(
                [
                    r.name,
                    format_seconds(t.median if t else None),
                    ratio,
                    *[r.extra.get(c, "-") for c in self.extra_columns],
                    t.runs if t else "-",
                    f"{(t.high - t.low) / t.median:.0%}" if t else "-",
                    r.note,
                ]
            )
        return heads, body

    def text(self) -> str:
        heads, body = self.cells()
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(heads)]
        left = {0, len(heads) - 1}  # names and notes left-aligned, numbers right-aligned

        def line(cells):
            parts = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))]
            return "  ".join(parts).rstrip()

        out = [f"## {self.title}", line(heads), line(["-" * w for w in widths])]
        out += [line(b) for b in body]
        out += [f"   {n}" for n in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        heads, body = self.cells()
        esc = [[c.replace("|", "\\|") for c in row] for row in body]
        align = ["---" if i in (0, len(heads) - 1) else "---:" for i in range(len(heads))]
        out = [f"#### {self.title}", "", "| " + " | ".join(heads) + " |", "|" + "|".join(align) + "|"]
        out += ["| " + " | ".join(row) + " |" for row in esc]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


def prepare_process() -> str:
    """What every process that times rows sets up first; returns the allocator's line for the header."""
    configure_pytensor()  # before anything imports PyTensor
    return steady_malloc()


class Report:
    """The tables of one script run: printed as text as they complete, and as Markdown at the end if asked."""

    def __init__(self, title: str, args: argparse.Namespace):
        self.args = args
        allocator = prepare_process()
        self.header = header(title, args.quick) + [allocator]
        self.tables: list[Table] = []
        self.started = time.perf_counter()

    def show(self, table: Table) -> None:
        self.tables.append(table)
        print()
        print(table.text(), flush=True)

    def finish(self, footnotes: list[str] = ()) -> None:
        print()
        for note in footnotes:
            print(f"# {note}")
        print(f"# wall time of this run: {time.perf_counter() - self.started:.0f} s", flush=True)
        if not self.args.markdown:
            return
        md = [f"<!-- {line} -->" for line in self.header]
        md += ["", "\n\n".join(t.markdown() for t in self.tables)]
        if footnotes:
            md += ["", *[f"- {n}" for n in footnotes]]
        text = "\n".join(md) + "\n"
        if self.args.markdown == "-":
            print("\n# Markdown\n")
            print(text, end="")
        else:
            with open(self.args.markdown, "w") as f:
                f.write(text)
            print(f"# Markdown written to {self.args.markdown}")


#: The column run_case fills with the seconds of set-up (building, compiling) plus the first call.
FIRST_CALL = "setup+1st call"


#: Rows --quick leaves out: their compilation alone takes tens of seconds.
SLOW_TO_COMPILE = ("torch.compile",)


def skip_reason(args: argparse.Namespace, name: str) -> str | None:
    """Why the row ``name`` is not run (--skip, or --quick for SLOW_TO_COMPILE), or None."""
    words = [w.strip().lower() for w in (args.skip or "").split(",") if w.strip()]
    if any(w in name.lower() for w in words):
        return "skipped (--skip)"
    if args.quick and name in SLOW_TO_COMPILE:
        return "left out by --quick (compiles for tens of seconds)"
    return None


def run_case(
    table: Table,
    name: str,
    make: Callable[[], Callable[[], object]] | None,
    *,
    args: argparse.Namespace,
    check: Callable[[object, Callable[[], object]], str] | None = None,
    extra: Callable[[Timing], dict[str, str]] | None = None,
    note: str = "",
    skip_note: str | None = None,
) -> Row:
    """Set up, call once (compilation; its result goes to ``check``), time, and add one row to ``table``.

    ``make()`` returns the zero-argument callable to time; ``make`` None means ``skip_note`` says why not.
    ``check(first_result, fn)`` returns the check column's text (it may call ``fn`` again). The FIRST_CALL
    column gets the seconds of ``make()`` plus the first call: compilation, for the compiling implementations.
    Set-up and first-call failures become the row's note, as in ``attempt``.
    """
    reason = skip_reason(args, name)
    if reason:
        return table.add(name, note=reason)
    if make is None:
        return table.add(name, note=skip_note or "not available")
    start = time.perf_counter()
    fn, why = attempt(name, make)
    if fn is None:
        return table.add(name, note=why)
    first, why = attempt(name, fn)
    if why:
        return table.add(name, note=why.replace("failed:", "failed at first call:", 1))
    cells = {FIRST_CALL: format_seconds(time.perf_counter() - start)}
    if check is not None:
        checked, why = attempt(name, functools.partial(check, first, fn))
        if why:
            return table.add(name, note=why.replace("failed:", "failed in check:", 1))
        cells["check"] = checked
    del first  # the result may be large; free it before timing
    first_seconds = time.perf_counter() - start
    # The first call warmed it up. Calls of many seconds (W3's slow rows) get 2 timed repeats instead of 3.
    timing = measure(fn, quick=args.quick, budget=args.budget, warm_up=False, min_repeat=2 if first_seconds > 5 else 3)
    if extra is not None:
        cells.update(extra(timing))
    return table.add(name, timing, note=note, **cells)


ROW_MARK = "BENCHROW "


def run_cases(
    table: Table,
    cases: list[tuple[str, Callable | None, str]],
    *,
    args: argparse.Namespace,
    check: Callable[[object, Callable[[], object]], str] | None = None,
    extra: Callable[[Timing], dict[str, str]] | None = None,
) -> Table:
    """``run_case`` for each ``(name, make, note)``, each in a fresh process of this script (``--row NAME``).

    In one process a row pays for what the rows before it left behind: thread pools of XLA, PyTorch, OpenBLAS
    or numba's OpenMP still spinning or sized for another library, the allocator's state. numpy, timed first,
    met a quiet process and every later row did not: in one W2 run graphc's step took 2.65 ms after the peers'
    rows and 1.30 ms in a process without them; timing the rows in rounds in one process made several of them
    10 to 30 times slower. A user runs one framework per process, so each row gets its own. The machine has
    noisy minutes (a numpy process at 3.6 ms and the next graphc one at 2.5 ms, between runs at 1.7-2.3 and
    1.2-1.3 ms), so rows run in ``--processes`` rounds (default 3), one process of every row per round, and
    each row keeps the process with its median time.
    """
    if args.row is not None:  # the child: time one row, print it for the parent
        prepare_process()
        for name, make, note in cases:
            if name == args.row:
                before = placement.cross_core_ns()
                row = run_case(table, name, make, args=args, check=check, extra=extra, note=note)
                record = dataclasses.asdict(row) | {"placement": placement.label(before, placement.cross_core_ns())}
                print(ROW_MARK + json.dumps(record), flush=True)
        return table
    runs = args.processes or (1 if args.quick else 3)
    skipped = {name: skip_reason(args, name) or ("not available" if make is None else None) for name, make, _ in cases}
    active = [(name, make) for name, make, _ in cases if not skipped[name]]
    results: dict[str, list[dict]] = {name: [] for name, _ in active}
    failures: dict[str, str] = {}
    for _ in range(runs):  # rounds: one process of each row, so a noisy minute hits every row alike
        for name, _ in active:
            if name in failures:
                continue
            proc = subprocess.run(
                [sys.executable, sys.argv[0], *sys.argv[1:], "--row", name], capture_output=True, text=True
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith(ROW_MARK)), None)
            if line is None:
                sys.stderr.write(proc.stderr[-4000:])
                failures[name] = f"failed: its process exited with status {proc.returncode}"
            else:
                results[name].append(json.loads(line[len(ROW_MARK) :]))
    for name, _, _ in cases:
        if skipped[name]:
            table.add(name, note=skipped[name])
            continue
        timed = sorted((r for r in results[name] if r["timing"]), key=lambda r: r["timing"]["median"])
        if name in failures or not timed:
            table.add(name, note=failures.get(name) or results[name][0]["note"])
            continue
        row = timed[len(timed) // 2]  # the process with the median time
        note = row["note"]
        if len(timed) > 1:
            medians = ", ".join(f"{format_seconds(r['timing']['median'])} {r['placement']}".rstrip() for r in timed)
            note = (note + "; " if note else "") + f"median of {len(timed)} processes ({medians})"
        table.add(name, Timing(**row["timing"]), note=note, **row["extra"])
    near = placement_note(table.baseline, results)
    if near:
        table.notes.append(near)
    return table


def placement_note(baseline: str, results: dict[str, list[dict]]) -> str:
    """Each row's median over the processes the host ran with its two CPUs near each other (``placement.py``).

    The medians over all processes follow how many of a row's processes the host ran far; this line compares
    the rows on the processes it ran near, where the two-thread products run at full speed.
    """
    near = {}
    for name, records in results.items():
        times = [r["timing"]["median"] for r in records if r["timing"] and r["placement"] == "near"]
        if times:
            near[name] = (statistics.median(times), len(times), len(records))
    if not near:
        return ""
    base = near.get(baseline, (None,))[0]
    parts = [
        f"{name} {format_seconds(t)}" + (f" ({t / base:.2f}x)" if base else "") + f" in {k} of {n}"
        for name, (t, k, n) in near.items()
    ]
    return (
        f"median over the processes run with both CPUs near each other (cross-core transfer <= "
        f"{placement.NEAR_NS:.0f} ns before and after): " + "; ".join(parts)
    )


# ----------------------------------------------------------------------------------------------------------------
# Checks


def to_numpy(value):
    """Arrays of numpy, JAX or PyTorch (tensors requiring grad included), or lists of them, as numpy arrays."""
    import numpy as np

    if isinstance(value, (list, tuple)):
        return [to_numpy(v) for v in value]
    if hasattr(value, "detach"):  # torch.Tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def rel_err(got, want) -> float:
    """max |got - want| / max |want| over all arrays of two equally long sequences (or two arrays)."""
    import numpy as np

    if not isinstance(want, (list, tuple)):
        got, want = [got], [want]
    err = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        scale = max(float(np.max(np.abs(w))) if w.size else 0.0, 1e-300)
        err = max(err, float(np.max(np.abs(g - w))) / scale if w.size else 0.0)
    return err


def check_text(err: float, tol: float) -> str:
    return f"{'ok' if err <= tol else 'FAIL'} {err:.1e}"
