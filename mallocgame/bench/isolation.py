"""One run in a forked child process: a time limit, its peak RSS, a crash recorded.

Each run happens in a forked child (``isolate=True``), so that a crash, a runaway solver
(killed after ``hard_timeout``) or a leak cannot take the bench down, and so that the child's
peak RSS belongs to that run.

Memory: ``peak_rss_mib`` is the run process's ``ru_maxrss`` (Linux: KiB, high-water mark of
the resident set) from ``resource.getrusage(RUSAGE_SELF)`` in the child; a forked child starts
with the parent's resident pages (interpreter, libraries, the loaded workload), so
``rss_start_mib`` (the resident size when the run began) lets the runner tell what the solver
itself added. Not ``tracemalloc``: it would slow the Python solvers and miss native allocations.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
import time
import traceback
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from mallocgame.errors import MallocGameError

Job = Callable[..., dict[str, Any]]  # returns a picklable payload (a dict)


def rss_kib() -> int:
    """This process's resident set size now (KiB; 0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child_entry(conn: Connection, fn: Job, args: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us if needed
    try:
        rss0 = rss_kib()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = fn(*args)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        payload["_proc"] = {
            "process_wall_s": time.perf_counter() - t0,
            "cpu_s": (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime),
            "peak_rss_mib": ru.ru_maxrss / 1024.0,
            "rss_start_mib": rss0 / 1024.0,
        }
        conn.send(("ok", payload))
    except MallocGameError as e:  # the solver refused on purpose (bad input, no policy, ...)
        conn.send(("refused", f"{type(e).__name__}: {e}"))
    except BaseException as e:  # report everything, including SystemExit from a library
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"))
    finally:
        conn.close()


def execute(
    fn: Job,
    args: tuple[Any, ...],
    isolate: bool,
    hard_timeout: float,
    tick: Callable[[], None] = lambda: None,
) -> tuple[str, Any]:
    """Run ``fn(*args)`` in a forked child; ``("ok", payload)``, ``("error", message)``,
    ``("refused", message)`` (it raised a :class:`MallocGameError`: declined on purpose) or
    ``("timeout", message)``. ``isolate=False`` runs it here (for debugging). ``tick`` is
    called about every 0.1 s while the child runs (the progress display's refresh)."""
    if not isolate:
        rss0 = rss_kib()
        t0 = time.perf_counter()
        try:
            payload = fn(*args)
        except MallocGameError as e:
            return "refused", f"{type(e).__name__}: {e}"
        ru = resource.getrusage(resource.RUSAGE_SELF)
        payload["_proc"] = {
            "process_wall_s": time.perf_counter() - t0,
            "cpu_s": None,
            "peak_rss_mib": ru.ru_maxrss / 1024.0,
            "rss_start_mib": rss0 / 1024.0,
        }
        return "ok", payload
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_entry, args=(send, fn, args), daemon=True)
    with warnings.catch_warnings():
        # JAX warns on every fork once imported (pytest sessions that ran JAX tests). The bench
        # command keeps JAX out of its own process (zoo programs compile in a subprocess), and
        # a child that needs JAX (the agent) imports it afresh.
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        proc.start()
    send.close()
    deadline = time.monotonic() + hard_timeout
    try:
        while True:
            if recv.poll(0.1):
                try:
                    status, payload = recv.recv()
                except EOFError:
                    proc.join(5)
                    return "error", f"the run process died (exit code {proc.exitcode})"
                proc.join(10)
                return status, payload
            if not proc.is_alive():
                if recv.poll(0):
                    continue
                code = proc.exitcode
                sig = -code if code and code < 0 else 0
                return "error", f"the run process died (exit code {code}, signal {sig})"
            if time.monotonic() > deadline:
                proc.kill()
                proc.join(5)
                return "timeout", f"killed after the hard timeout of {hard_timeout:.0f} s"
            tick()
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        recv.close()
