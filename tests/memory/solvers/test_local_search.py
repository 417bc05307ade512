"""The local search (``improve``) without an agent, and the ``local-search`` solver."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mallocgame import _native, api
from mallocgame.memory.order import msa_order
from mallocgame.memory.solvers import solve
from mallocgame.memory.solvers.local_search import Line, beats, best_fit_line, improve, skip_line
from mallocgame.memory.targets import Target
from tests.conftest import random_workload

T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=16,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)


def problem(seed: int = 1, n: int = 30, capacity: str = "25%", objective: str = "time"):
    return api.make_problem(
        random_workload(np.random.default_rng(seed), n=n), capacity, T, objective=objective
    )


def test_local_search_solver_is_the_ablation_without_the_agent():
    """``local-search``: the agent's local search alone from msa's (and msa-skip's) line (no
    policy needed), for the time limit; valid, never worse than msa."""
    p = problem(5, n=40, capacity="20%")
    sol = solve(p, "local-search", seed=0, time_limit=0.3)
    assert sol.check().valid
    assert sol.time_s <= solve(p, "msa").time_s * (1 + 1e-9)
    assert sol.extra["improve_evaluations"] > 0 and 0.25 < sol.wall_s < 1.0
    assert set(sol.extra["improve_steps"]) == {"descend", "reorder"}


def test_improve_without_an_agent_never_loses_its_start():
    """``improve(None, ...)``: no prior orders the moves; from msa's line it ends at least as
    good, and its best line replays to its return."""
    p = problem(4, n=40, capacity="20%")
    order = msa_order(p)
    msa = best_fit_line(p.instance(order), "msa")
    for reorder in (True, False):
        stats: dict = {}
        best, evals = improve(
            None,
            p,
            order,
            [msa],
            time.perf_counter() + 0.3,
            seed=2,
            use_prior=False,
            reorder=reorder,
            stats=stats,
        )
        assert isinstance(best, Line) and best.ret >= msa.ret - 1e-12 and evals > 0
        assert set(stats) == ({"descend", "reorder"} if reorder else {"descend"})
        if not reorder:
            assert list(best.instance.order()) == list(order)
        check = _native.Game(best.instance)
        check.replay(best.actions)
        assert check.return_so_far == pytest.approx(best.ret)


def test_line_comparisons_and_the_skip_line():
    assert beats((1.0,), (0.5,)) and not beats((0.5 + 1e-13,), (0.5,))
    assert beats((True, 0.1), (False, 0.9)) and not beats((False, 0.9), (True, 0.1))
    p = problem(3)
    inst = p.instance(msa_order(p))
    msa = best_fit_line(inst, "msa")
    skip = skip_line(inst, msa.ret)
    assert skip is None or (skip.source == "msa-skip" and skip.ret > msa.ret)
    fit = problem(3, objective="fit-all", capacity="300%")
    assert skip_line(fit.instance(msa_order(fit)), 0.0) is None  # fit-all: nothing stays slow
