"""The memory game's solvers behind one call: ``solve(problem, solver="msa")``.

The solvers are the memory game's entries of :mod:`mallocgame.registry`, each imported the
first time it is asked for:

- :mod:`~mallocgame.memory.solvers.heuristics`: ``msa`` (XLA's memory-space assignment order,
  best fit), ``greedy-size``, ``random``, ``all-slow``, ``msa-skip``, ``restarts``;
- :mod:`~mallocgame.memory.solvers.packing`: the exact packing search, ``pack`` and
  ``pack-peak`` (fit-all only);
- :mod:`~mallocgame.memory.solvers.local_search`: ``local-search``, the agent's local search
  without the agent;
- :mod:`~mallocgame.memory.solvers.cpsat`: ``cpsat``, OR-Tools CP-SAT on the exact model (the
  ``bench`` extra);
- :mod:`~mallocgame.memory.solvers.agent`: ``agent``, the trained MuZero agent and the local
  search (its policy: :mod:`~mallocgame.memory.solvers.policy`).

Every solver is a :data:`SolverFn`: ``(problem, rng, time_limit) -> (offsets, extra)``, with
offsets -1 for slow buffers and ``extra`` the solver's own summary (``Solution.extra``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mallocgame import registry
from mallocgame.errors import InputError
from mallocgame.memory.problem import Problem, Solution

SolverFn = Callable[
    [Problem, np.random.Generator, "float | None"], tuple[np.ndarray, dict[str, Any]]
]


def list_solvers() -> list[str]:
    """The memory game's solver names, sorted."""
    return registry.names("memory")


def solve(
    problem: Problem, solver: str = "msa", seed: int = 0, time_limit: float | None = None
) -> Solution:
    """Solve ``problem`` with the named solver; the result is not validated here (see
    :meth:`Solution.check`). An unknown name is an :class:`InputError` that lists the known
    ones; a solver whose module cannot be imported raises that ``ImportError``, naming the
    module."""
    if solver not in list_solvers():
        raise InputError(
            f"unknown solver {solver!r}; choose one of {', '.join(list_solvers())}",
            field="solver",
        )
    if problem.objective == "fit-all" and solver == "all-slow":
        raise InputError(
            "the all-slow solver places nothing, so it cannot play fit-all", field="solver"
        )
    if problem.objective == "fit-all":
        require_fits(problem)
    fn: SolverFn = registry.load("memory", solver)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    offsets, extra = fn(problem, rng, time_limit)
    wall = time.perf_counter() - t0
    return Solution(problem, solver, np.asarray(offsets, dtype=np.int64), wall, extra)


def require_fits(problem: Problem) -> None:
    """For fit-all: an :class:`InputError` (one line, field ``capacity``) when no packing can
    fit because more bytes are live at once than the capacity holds; it names the max load,
    the capacity and the shortfall (a buffer larger than the capacity is refused earlier, by
    :func:`mallocgame.memory.sources.make_problem`)."""
    w = problem.workload
    cap = int(problem.capacity)
    load, at = w.peak_live()
    if load > cap:
        raise InputError(
            f"no packing fits: the max load is {load} bytes (live at once at position {at}), "
            f"above the capacity {cap} bytes; short by {load - cap} bytes "
            f"({100.0 * (load - cap) / load:.1f}% of the max load)",
            field="capacity",
        )
