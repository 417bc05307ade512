"""The benchmark harness: ``mallocgame bench {malloc,pack}`` (see ``docs/bench.md``).

Importing this package registers the exact solver ``cpsat`` (OR-Tools CP-SAT, see
:mod:`mallocgame.bench.exact`) into :data:`mallocgame.memory.solvers.SOLVERS`, so that
``solve(problem, "cpsat", time_limit=...)`` works like any baseline.

Modules: :mod:`~mallocgame.bench.runner` (runs, isolation, resume), :mod:`~.suites`
(instances, capacities), :mod:`~.exact` (CP-SAT models and bounds), :mod:`~.peers`
(omnimalloc), :mod:`~.stats` (IQM, bootstrap CIs, P(improvement), performance profiles),
:mod:`~.report` (markdown and pictures), :mod:`~.cli` (the ``bench`` subcommand).
"""

from __future__ import annotations

from mallocgame.bench.exact import cpsat_solver
from mallocgame.memory.solvers import SOLVERS, register_solver

if "cpsat" not in SOLVERS:
    register_solver("cpsat", cpsat_solver)

__all__ = ["cpsat_solver"]
