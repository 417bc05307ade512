"""The benchmark harness: ``mallocgame bench {malloc,pack}`` (see ``docs/bench.md``).

The exact solver ``cpsat`` is a memory-game solver like any baseline
(:mod:`mallocgame.memory.solvers.cpsat`, in :mod:`mallocgame.registry`);
``solve(problem, "cpsat", time_limit=...)`` needs no import of this package.

Modules: :mod:`~mallocgame.bench.plan` (config, which runs), :mod:`~.runner` (orchestration,
resume), :mod:`~.distributed` (the same on a Ray cluster), :mod:`~.isolation` (forked child,
time limit, peak RSS), :mod:`~.evaluation` (cost model and validator of a run), :mod:`~.records`
(run log, bounds, gaps, host), :mod:`~.progress`, :mod:`~.suites` (instances, capacities),
:mod:`~.exact` (lower bounds), :mod:`~.peers` (omnimalloc), :mod:`~.stats` (IQM, bootstrap CIs,
P(improvement), performance profiles), :mod:`~.scores`, :mod:`~.report`, :mod:`~.pictures`,
:mod:`~.render` (reports), :mod:`~.rank` (the rank game's suite).
"""
