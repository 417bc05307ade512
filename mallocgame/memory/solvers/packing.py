"""The exact packing search (fit-all, minimalloc's problem) and the solvers built on it.

:func:`pack` runs the native search (``mallocgame._native.pack``, C++ in
``native/src/packing.cc``): a depth-first search over canonical packings -- each step puts one
unplaced buffer at the lowest offset the placed buffers it conflicts with allow -- with
minimalloc's inference and pruning (section lower bounds, monotonic floor, dominance, hatless
pruning), its dynamic ordering and round robin over static preorders, and dynamic temporal
decomposition. It answers ``solved`` (with offsets), ``infeasible`` (proven: no packing fits
the capacity), ``timeout`` or ``node_limit``. See ``docs/game.md`` ("The packing search").

The solvers built on it (in :mod:`mallocgame.registry`):

- ``pack`` (:func:`solve_pack`): fit-all at the problem's capacity; stops at the first packing
  found.
- ``pack-peak`` (:func:`solve_pack_peak`): ``pack``, then descending capacities (a binary search
  between the peak live bytes and the best height found) to minimise the peak
  ``max(offset + size)`` with the time left.

At any size: where the exact search cannot take an instance (more section memberships than it
holds in memory; ``too_large``), or stops without a packing, :func:`best_fit_pack` runs
instead -- best fit in several orders (sizes, areas, widths descending; XLA's
``GlobalDecreasingSizeBestFitHeap`` rule, ``mallocgame._native.best_fit``) -- and the summary
says so (``method: best-fit``, ``fallback_reason``) with the packing's gap to the max-load
lower bound (``gap_to_max_load``).

Both refuse the ``time`` objective (a :class:`MallocGameError`): they place every buffer or
say why not. A learned policy can order the branching through ``priority`` (one float per
buffer, higher first among buffers of equal minimum offset; heuristic key ``P``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mallocgame import _native
from mallocgame.errors import MallocGameError
from mallocgame.memory.order import PACKING_ORDERS, packing_order
from mallocgame.memory.problem import Problem
from mallocgame.memory.workload import peak_live

DEFAULT_TIME_LIMIT = 10.0
STATUSES = ("solved", "infeasible", "timeout", "node_limit", "not_found")
# The start of the exact search's message for an instance beyond what it holds in memory.
TOO_LARGE = "instance too large for the exact search"


@dataclasses.dataclass
class PackResult:
    """What one search returned. ``offsets[b]`` is -1 for a buffer left unplaced (every buffer
    is placed when ``status == "solved"``; otherwise the largest partial packing met)."""

    status: str
    offsets: np.ndarray
    placed: int
    nodes: int
    backtracks: int
    rounds: int
    sections: int
    peak_live: int
    height: int
    wall_s: float
    heuristic: str
    capacity: int

    method: str = "exact"
    fallback_reason: str | None = None

    @property
    def solved(self) -> bool:
        return self.status == "solved"

    @property
    def infeasible(self) -> bool:
        return self.status == "infeasible"

    def info(self) -> dict[str, Any]:
        """The scalar fields for reports (``Solution.extra``), named so that they do not
        shadow :meth:`Solution.summary`'s own keys (``wall_s``, ``capacity``)."""
        return {
            "search_status": self.status,
            "nodes": self.nodes,
            "backtracks": self.backtracks,
            "rounds": self.rounds,
            "sections": self.sections,
            "peak_live": self.peak_live,
            "height": self.height,
            "search_wall_s": self.wall_s,
            "heuristic": self.heuristic,
            "search_capacity": self.capacity,
            "method": self.method,
            "fallback_reason": self.fallback_reason,
            "gap_to_max_load": (
                (self.height - self.peak_live) / self.peak_live
                if self.solved and self.peak_live > 0
                else None
            ),
        }


def pack(
    sizes: Sequence[int] | np.ndarray,
    starts: Sequence[int] | np.ndarray,
    ends: Sequence[int] | np.ndarray,
    capacity: int,
    alignment: int = 1,
    *,
    time_limit: float | None = None,
    node_limit: int | None = None,
    priority: Sequence[float] | np.ndarray | None = None,
    heuristics: str | Sequence[str] | None = None,
    fallback: bool = True,
    **rules: bool,
) -> PackResult:
    """Decide whether buffers (``sizes`` bytes, live on ``[starts, ends)``) fit in
    ``[0, capacity)`` at multiples of ``alignment`` with no two live-together buffers
    overlapping, and where.

    ``time_limit`` in seconds and ``node_limit`` in search nodes (None: no limit).
    ``priority``: float[B], consulted by heuristic key ``P``; when given and ``heuristics`` is
    None, the heuristics are ``("P", "WAT", "TAW", "TWA")`` (the learned order first, then
    minimalloc's). ``rules``: switch single rules off for ablations (``canonical_only``,
    ``section_inference``, ``monotonic_floor``, ``check_dominance``, ``hatless_pruning``,
    ``dynamic_ordering``, ``dynamic_decomposition``; all True by default). ``fallback``: where
    the exact search cannot take the instance, or stops without a packing, return
    :func:`best_fit_pack`'s (``method: best-fit``) instead. Bad input raises ``ValueError``.
    The search runs in C++ with the GIL released."""
    if priority is not None and heuristics is None:
        heuristics = ("P", "WAT", "TAW", "TWA")
    try:
        r = _native.pack(
            sizes,
            starts,
            ends,
            capacity,
            alignment,
            time_limit=time_limit,
            node_limit=node_limit,
            priority=priority,
            heuristics=heuristics,
            **rules,
        )
    except ValueError as e:
        if not fallback or not str(e).startswith(TOO_LARGE):
            raise
        return best_fit_pack(
            sizes, starts, ends, capacity, alignment, reason=str(e), time_limit=time_limit
        )
    result = PackResult(
        status=r["status"],
        offsets=np.asarray(r["offsets"], dtype=np.int64),
        placed=int(r["placed"]),
        nodes=int(r["nodes"]),
        backtracks=int(r["backtracks"]),
        rounds=int(r["rounds"]),
        sections=int(r["sections"]),
        peak_live=int(r["peak_live"]),
        height=int(r["height"]),
        wall_s=float(r["wall_s"]),
        heuristic=str(r["heuristic"]),
        capacity=int(capacity),
    )
    if fallback and not result.solved and not result.infeasible:
        bf = best_fit_pack(
            sizes,
            starts,
            ends,
            capacity,
            alignment,
            reason=f"the exact search: {result.status}",
            time_limit=0.0,  # the search had the time: one pass of best fit, the first order
        )
        if bf.solved:
            bf.nodes, bf.backtracks, bf.rounds = result.nodes, result.backtracks, result.rounds
            bf.wall_s += result.wall_s
            return bf
    return result


def best_fit_pack(
    sizes: Sequence[int] | np.ndarray,
    starts: Sequence[int] | np.ndarray,
    ends: Sequence[int] | np.ndarray,
    capacity: int,
    alignment: int = 1,
    *,
    orders: Sequence[str] = PACKING_ORDERS,
    reason: str | None = None,
    time_limit: float | None = None,
) -> PackResult:
    """Best fit at any size (``mallocgame._native.best_fit``), once per order of ``orders``
    (:func:`mallocgame.memory.order.packing_order`'s kinds);
    the packing that places the most buffers, then the lowest, wins. ``status`` is
    ``solved`` when every buffer fits under ``capacity``, else ``not_found`` (which proves
    nothing: a packing may still exist). ``reason``: why it runs instead of the exact search
    (``fallback_reason`` in the summary). ``time_limit`` (seconds): the first order always
    runs; a further one only when the time left holds another pass as long as the last."""
    t0 = time.perf_counter()
    sz = np.ascontiguousarray(sizes, dtype=np.int64)
    st = np.ascontiguousarray(starts, dtype=np.int64)
    en = np.ascontiguousarray(ends, dtype=np.int64)
    if not (sz.ndim == st.ndim == en.ndim == 1 and sz.size == st.size == en.size):
        raise ValueError(
            f"sizes, starts and ends must be 1-D of the same length, got shapes {sz.shape}, "
            f"{st.shape}, {en.shape}"
        )
    peak = peak_live(sz, st, en)[0]
    last_s = 0.0
    passes = 0
    best: dict[str, Any] | None = None
    best_order = ""
    for kind in orders:
        t_pass = time.perf_counter()
        if passes and time_limit is not None and t_pass + last_s > t0 + time_limit:
            break
        r = _native.best_fit(sz, st, en, capacity, packing_order(kind, sz, st, en), alignment)
        last_s = time.perf_counter() - t_pass
        passes += 1
        if best is None or (r["placed"], -r["height"]) > (best["placed"], -best["height"]):
            best, best_order = r, kind
        if r["placed"] == sz.size and r["height"] <= peak:
            break  # at the lower bound: no order can do better
    assert best is not None, "orders is empty"
    return PackResult(
        status="solved" if best["placed"] == sz.size else "not_found",
        offsets=np.asarray(best["offsets"], dtype=np.int64),
        placed=int(best["placed"]),
        nodes=0,
        backtracks=0,
        rounds=passes,
        sections=0,
        peak_live=peak,
        height=int(best["height"]),
        wall_s=time.perf_counter() - t0,
        heuristic=f"best-fit:{best_order}",
        capacity=int(capacity),
        method="best-fit",
        fallback_reason=reason,
    )


def minimize_peak(
    sizes: Sequence[int] | np.ndarray,
    starts: Sequence[int] | np.ndarray,
    ends: Sequence[int] | np.ndarray,
    capacity: int,
    alignment: int = 1,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    priority: Sequence[float] | np.ndarray | None = None,
    heuristics: str | Sequence[str] | None = None,
) -> tuple[PackResult, dict[str, Any]]:
    """Pack within ``capacity``, then lower the peak by descending capacities.

    After the first packing, the lower bound itself (the peak live bytes, or the largest
    buffer) is probed first -- it is often reached, and an exact decision at the bound can be
    quick where the capacities just above it are not -- then a binary search runs between the
    lower end and the best height found so far. Each probe gets half of the time left. A probe
    that proves infeasibility raises the lower end; a probe that times out raises it too, but
    the result is then no longer proven optimal.
    Returns the best :class:`PackResult` (the first one when nothing fits) and a summary:
    ``probes`` (capacity, status, height, wall), ``lower_bound``, ``proved_optimal``."""
    t0 = time.perf_counter()
    budget = float(time_limit)

    def left() -> float:
        return budget - (time.perf_counter() - t0)

    first = pack(
        sizes,
        starts,
        ends,
        capacity,
        alignment,
        time_limit=max(0.0, left()),
        priority=priority,
        heuristics=heuristics,
    )
    probes = [(int(capacity), first.status, first.height, first.wall_s)]
    beyond = first.method == "best-fit" and str(first.fallback_reason).startswith(TOO_LARGE)
    sz = np.asarray(sizes, dtype=np.int64)
    lower = int(first.peak_live)
    if sz.size:
        lower = max(lower, int(sz.max()))
    best = first
    proven = True
    if first.solved and beyond:
        proven = False  # the exact search cannot take it: no probes, the best fit stands
    elif first.solved:
        lo, hi = lower, best.height - 1
        while lo <= hi and left() > 0:
            mid = lo if len(probes) == 1 else (lo + hi) // 2
            r = pack(
                sizes,
                starts,
                ends,
                mid,
                alignment,
                time_limit=max(0.0, left() / 2),
                priority=priority,
                heuristics=heuristics,
            )
            probes.append((mid, r.status, r.height, r.wall_s))
            if r.solved:
                best = r
                hi = r.height - 1
            else:
                proven = proven and r.infeasible
                lo = mid + 1
        proven = proven and lo > hi
    info = {
        "probes": probes,
        "lower_bound": lower,
        "proved_optimal": bool(best.solved and (proven or best.height <= lower)),
        "total_search_wall_s": time.perf_counter() - t0,
    }
    return best, info


def pack_problem(
    problem: Problem,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
    *,
    priority: Sequence[float] | np.ndarray | None = None,
    heuristics: str | Sequence[str] | None = None,
) -> PackResult:
    """:func:`pack` on a problem's buffers, capacity and alignment."""
    w = problem.workload
    return pack(
        w.sizes,
        w.starts,
        w.ends,
        int(problem.capacity),
        int(problem.target.alignment_bytes),
        time_limit=time_limit,
        priority=priority,
        heuristics=heuristics,
    )


def _require_fit_all(problem: Problem, name: str) -> None:
    if problem.objective != "fit-all":
        raise MallocGameError(
            f"the {name} solver plays fit-all only (every buffer placed); "
            f"got objective {problem.objective!r}"
        )


def solve_pack(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``pack`` solver: the first packing found at the problem's capacity."""
    _require_fit_all(problem, "pack")
    r = pack_problem(problem, DEFAULT_TIME_LIMIT if time_limit is None else time_limit)
    return r.offsets, r.info()


def solve_pack_peak(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``pack-peak`` solver: :func:`minimize_peak` at the problem's capacity."""
    _require_fit_all(problem, "pack-peak")
    w = problem.workload
    best, info = minimize_peak(
        w.sizes,
        w.starts,
        w.ends,
        int(problem.capacity),
        int(problem.target.alignment_bytes),
        time_limit=DEFAULT_TIME_LIMIT if time_limit is None else time_limit,
    )
    extra = best.info()
    extra.update(info)
    return best.offsets, extra
