"""The benchmark harness: ``mallocgame bench {malloc,pack}`` (see ``docs/bench.md``).

The exact solver ``cpsat`` is a memory-game solver like any baseline
(:mod:`mallocgame.memory.solvers.cpsat`, in :mod:`mallocgame.registry`);
``solve(problem, "cpsat", time_limit=...)`` needs no import of this package.

Modules: :mod:`~mallocgame.bench.runner` (runs, isolation, resume), :mod:`~.suites`
(instances, capacities), :mod:`~.exact` (lower bounds), :mod:`~.peers` (omnimalloc),
:mod:`~.stats` (IQM, bootstrap CIs, P(improvement), performance profiles), :mod:`~.report`
(markdown and pictures), :mod:`~.rank` (the rank game's suite).
"""
