"""The optimum as the ceiling: the bench's lower bounds on the memory game's objective.

The exact CP-SAT models (and the ``cpsat`` solver, whose proven bound the bench reports too)
are :mod:`mallocgame.memory.solvers.cpsat`. The cheaper bounds here are for large instances:
:func:`knapsack_bound` (LP relaxation, or a time-limited MILP's dual bound, of the model without
geometry: at every maximal clique only ``capacity`` fast bytes), the unlimited-fast-memory bound
``problem.lower_bound_time`` (:func:`unlimited_fast_bound`) and, for fit-all, the most bytes
live at once (:func:`peak_bound`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers.cpsat import (
    DEFAULT_TIME_LIMIT,
    cost_terms,
    maximal_cliques,
    peak_live_bound,
)

# Relative safety margin taken off LP/MILP bounds computed in floating point by HiGHS.
LP_SAFETY = 1e-6


@dataclasses.dataclass
class Bound:
    """A proven lower bound on the objective (seconds or bytes) and how it was obtained."""

    kind: str
    value: float | None
    proven: bool
    wall_s: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- cheaper bounds
def knapsack_bound(
    problem: Problem, integral: bool = False, time_limit: float = DEFAULT_TIME_LIMIT
) -> Bound:
    """A lower bound on program time that keeps capacity but drops geometry: at every maximal
    clique of live buffers at most ``capacity`` bytes are fast. ``integral=False``: the LP
    relaxation (``x`` in [0, 1]); ``integral=True``: the MILP with binary ``x``, whose dual
    bound is proven even when the time limit stops it. Solved with HiGHS (scipy), in units of
    the all-slow time, minus a relative safety margin ``LP_SAFETY`` for its tolerances."""
    # scipy: the bench extra, needed only for this bound
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    t0 = time.perf_counter()
    kind_name = "knapsack-milp" if integral else "knapsack-lp"
    if problem.objective != "time":
        return Bound(kind_name, None, False, 0.0, {"reason": "time objective only"})
    w, tg = problem.workload, problem.target
    scale = problem.all_slow_time
    if scale <= 0:
        return Bound(kind_name, 0.0, True, time.perf_counter() - t0)
    terms = cost_terms(problem)
    cand = terms.cand
    nc = cand.size
    if nc == 0:
        return Bound(kind_name, problem.all_slow_time, True, time.perf_counter() - t0)
    pos = np.full(w.num_buffers, -1, dtype=np.int64)
    pos[cand] = np.arange(nc)
    kind = terms.kind
    d = (
        terms.pairs_bytes
        * (1.0 / tg.slow_bandwidth_bytes_per_s - 1.0 / tg.fast_bandwidth_bytes_per_s)
        / scale
    )
    compute = terms.compute / scale
    slow = terms.slow_total / scale
    const = float(compute[kind == 0].sum() + slow[kind == 1].sum())
    mixed = np.flatnonzero(kind == 2)
    mpos = np.full(w.num_instructions, -1, dtype=np.int64)
    mpos[mixed] = np.arange(mixed.size)
    nv = nc + mixed.size
    c = np.zeros(nv)
    lin = kind[terms.pairs_i] == 1
    np.add.at(c, pos[terms.pairs_b[lin]], -d[lin])
    c[nc:] = 1.0
    rows, cols, vals, lo_, hi_ = [], [], [], [], []
    r = 0
    mx = kind[terms.pairs_i] == 2
    if mixed.size:
        rows.append(mpos[terms.pairs_i[mx]])
        cols.append(pos[terms.pairs_b[mx]])
        vals.append(d[mx])
        rows.append(np.arange(mixed.size))
        cols.append(nc + np.arange(mixed.size))
        vals.append(np.ones(mixed.size))
        lo_.append(slow[mixed])
        hi_.append(np.full(mixed.size, np.inf))
        r = mixed.size
    cliques = [
        q for q in maximal_cliques(w.starts, w.ends, cand) if w.sizes[q].sum() > problem.capacity
    ]
    for q in cliques:
        rows.append(np.full(q.size, r))
        cols.append(pos[q])
        vals.append(w.sizes[q] / problem.capacity)
        r += 1
    if cliques:
        lo_.append(np.full(len(cliques), -np.inf))
        hi_.append(np.ones(len(cliques)))
    lb = np.concatenate([np.zeros(nc), compute[mixed]])
    ub = np.concatenate([np.ones(nc), np.full(mixed.size, np.inf)])
    integrality = np.concatenate([np.full(nc, 1 if integral else 0), np.zeros(mixed.size)])
    cons = []
    if r:
        a = coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, nv)
        ).tocsr()
        cons = [LinearConstraint(a, np.concatenate(lo_), np.concatenate(hi_))]
    res = milp(
        c,
        constraints=cons,
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"time_limit": float(time_limit), "disp": False},
    )
    wall = time.perf_counter() - t0
    info: dict[str, Any] = {
        "cliques": len(cliques),
        "variables": nv,
        "status": int(res.status),
        "message": str(res.message),
    }
    value = None
    if integral:
        dual = getattr(res, "mip_dual_bound", None)
        if dual is not None and np.isfinite(dual):
            value = dual
    elif res.status == 0:
        value = res.fun
    if value is None:
        return Bound(kind_name, None, False, wall, info)
    bound = (const + float(value)) * scale
    bound = max(bound * (1.0 - LP_SAFETY), problem.lower_bound_time)
    info["optimal"] = res.status == 0
    return Bound(kind_name, bound, True, wall, info)


def unlimited_fast_bound(problem: Problem) -> Bound:
    """Every buffer fast, capacity unlimited: ``problem.lower_bound_time``."""
    t0 = time.perf_counter()
    return Bound("unlimited-fast", problem.lower_bound_time, True, time.perf_counter() - t0)


def peak_bound(problem: Problem) -> Bound:
    t0 = time.perf_counter()
    return Bound("peak-live", float(peak_live_bound(problem)), True, time.perf_counter() - t0)
