"""Where the host runs this machine's first two CPUs: close together ("near") or apart ("far").

The benchmark VM's two vCPUs are threads on a shared host, and the host moves them. A cache line travels
between them in 30-75 ns at some times and 170-330 ns at others, for seconds at a stretch. Single-threaded
work does not notice; every two-thread matrix product does (W2's step: numpy 2.0 ms near, 3.5 ms far), and it
costs numpy and graphc the same absolute time, so a row's median follows how many of its processes the host
ran far. ``run_cases`` records the latency before and after each row's process so that the tables can say so.

``cross_core_ns()`` builds ``pingpong.c`` with the system C compiler on first use (into the temporary
directory, keyed by the source's hash) and returns None where there is no compiler or fewer than two CPUs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("pingpong.c")
#: One-way transfers up to this many nanoseconds count as "near" (the two states measured: 30-75, 170-330).
NEAR_NS = 120.0


def _binary() -> Path | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not SOURCE.exists():
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"graphc-bench-pingpong-{digest}"
    if target.exists():
        return target
    scratch = target.with_name(f"{target.name}.{os.getpid()}")
    built = subprocess.run([compiler, "-O2", "-pthread", "-o", str(scratch), str(SOURCE)], capture_output=True)
    if built.returncode != 0:
        return None
    os.replace(scratch, target)  # atomic: concurrent builders leave one complete binary
    return target


def cross_core_ns(round_trips: int = 100_000) -> float | None:
    """Mean one-way cache-line transfer between the first two usable CPUs, in ns; None if it cannot be measured."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    binary = _binary() if len(cpus) >= 2 else None
    if binary is None:
        return None
    try:
        out = subprocess.run(
            [str(binary), str(cpus[0]), str(cpus[1]), str(round_trips)], capture_output=True, text=True, timeout=10
        )
        return float(out.stdout.strip()) if out.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        return None


def label(before: float | None, after: float | None) -> str:
    """ "near" or "far" when both readings agree, "mixed" when they do not, "" when there are none."""
    if before is None or after is None:
        return ""
    near = (before <= NEAR_NS, after <= NEAR_NS)
    return "near" if all(near) else "far" if not any(near) else "mixed"
