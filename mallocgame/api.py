"""The Python API that mirrors the CLI (a thin face over :mod:`mallocgame.memory.sources`).

>>> import jax.numpy as jnp
>>> from mallocgame import api
>>> wl = api.workload_from_jax(
...     lambda x, w: jnp.tanh(x @ w), jnp.ones((64, 128)), jnp.ones((128, 256))
... )
>>> sol = api.solve(wl, capacity="25%", solver="msa")
>>> sol.summary()["speedup_vs_all_slow"] >= 1.0
True
"""

from mallocgame.memory.problem import Problem, Solution
from mallocgame.memory.sources import (
    capacity_from_name,
    load_workload,
    make_problem,
    solve,
    summary,
    workload_from_jax,
)
from mallocgame.memory.targets import DEFAULT_TARGET, Target, load_target, parse_capacity
from mallocgame.memory.workload import Workload

__all__ = [
    "DEFAULT_TARGET",
    "Problem",
    "Solution",
    "Target",
    "Workload",
    "capacity_from_name",
    "load_target",
    "load_workload",
    "make_problem",
    "parse_capacity",
    "solve",
    "summary",
    "workload_from_jax",
]
