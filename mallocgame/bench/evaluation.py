"""What a run computes, and how its answer is judged.

:func:`solver_job` and :func:`bounds_job` run in the forked child
(:func:`mallocgame.bench.isolation.execute`); the parent judges the returned mapping with
:func:`evaluate`: the cost model and the independent validator, never the solver's own word.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from mallocgame import registry
from mallocgame.bench import exact, peers
from mallocgame.bench.records import jsonable
from mallocgame.errors import MallocGameError
from mallocgame.memory import cost
from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers import cpsat, solve
from mallocgame.memory.validate import validate


def solver_job(
    problem: Problem, solver: str, seed: int, time_limit: float, threads: int
) -> dict[str, Any]:
    """One solver's mapping of ``problem``: ``{"offsets", "extra", "wall_s"}``."""
    cpsat.NUM_WORKERS = threads
    if peers.is_peer(solver):
        offsets, extra, wall = peers.solve_peer(
            problem, solver, seed=seed, time_limit=time_limit, threads=threads
        )
    else:
        try:
            sol = solve(problem, solver, seed=seed, time_limit=time_limit)
        except ImportError as e:
            if registry.spec("memory", solver).needs_policy:
                # Known, but it cannot load here (the agent and its checkpoint): a refusal, so
                # the bench reports it unavailable rather than as a failed run.
                raise MallocGameError(str(e)) from e
            raise
        offsets, extra, wall = sol.offsets, sol.extra, sol.wall_s
    return {
        "offsets": np.asarray(offsets, dtype=np.int64),
        "extra": jsonable(extra),
        "wall_s": float(wall),
    }


def bounds_job(problem: Problem, mode: str, time_limit: float) -> dict[str, Any]:
    """The lower bounds of ``problem`` (``pack``: the peak live bytes; ``malloc``: unlimited
    fast memory and the knapsack LP and MILP): ``{"bounds": [Bound as a dict, ...]}``."""
    if mode == "pack":
        bounds = [exact.peak_bound(problem)]
    else:
        bounds = [
            exact.unlimited_fast_bound(problem),
            exact.knapsack_bound(problem, integral=False, time_limit=time_limit),
        ]
        bounds.append(exact.knapsack_bound(problem, integral=True, time_limit=time_limit))
    return {"bounds": [dataclasses.asdict(b) for b in bounds]}


def evaluate(problem: Problem, mode: str, solver: str, offsets: np.ndarray) -> dict[str, Any]:
    """Judge a mapping with the cost model and the independent validator."""
    w, t = problem.workload, problem.target
    offsets = np.asarray(offsets, dtype=np.int64)
    fast = offsets >= 0
    placed = int(fast.sum())
    peak = int(np.max(offsets[fast] + w.sizes[fast])) if placed else 0
    capacity = problem.capacity
    check_cap = max(capacity, peak) if peers.is_peer(solver) else capacity
    if offsets.shape != (w.num_buffers,):
        report_valid, problems = (
            False,
            [f"mapping has {offsets.shape} entries, expected {w.num_buffers}"],
        )
    else:
        rep = validate(w.ids, w.sizes, w.starts, w.ends, offsets, check_cap, t.alignment_bytes)
        report_valid, problems = rep.valid, rep.problems
    rec: dict[str, Any] = {
        "valid": bool(report_valid),
        "problems": problems[:5],
        "placed_buffers": placed,
        "placed_bytes": int(w.sizes[fast].sum()),
        "peak_bytes": peak,
    }
    if mode == "malloc":
        time_s = cost.program_time(w, t, fast) if offsets.shape == (w.num_buffers,) else math.nan
        rec.update(
            {
                "objective": time_s if report_valid else None,
                "time_s": time_s,
                "all_slow_time_s": problem.all_slow_time,
                "speedup": problem.all_slow_time / time_s if time_s > 0 else 1.0,
            }
        )
    else:
        solved = bool(report_valid and placed == w.num_buffers and peak <= capacity)
        rec.update(
            {
                "solved": solved,
                "objective": float(peak) if (report_valid and placed == w.num_buffers) else None,
            }
        )
    return rec
