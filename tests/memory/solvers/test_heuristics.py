"""The heuristic solvers (msa, greedy-size, random, all-slow, restarts, msa-skip)."""

import numpy as np
import pytest

from mallocgame import api
from mallocgame.memory import order as orders
from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers import solve
from mallocgame.memory.targets import Target
from tests.conftest import random_workload

T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=1,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)


def test_memory_boundedness_by_hand(tiny):
    p = Problem(tiny, T)
    ben = orders.alternate_memory_benefits(p)
    # Access order (instruction-major): i0:b0,b3  i1:b0,b1  i2:b1,b2,b3.
    # i0 compute-bound (100 s vs 5 s): benefit = 5 - 100 = -95 for both of its accesses.
    # i1 memory-bound (3 s): b0 saves 100*(1/100-1/400) = 0.75; b1 saves 1.5.
    # i2 memory-bound (6.5 s vs 5 s): b1 1.5, b2 0.375, b3 3.0.
    assert ben.tolist() == pytest.approx([-95, -95, 0.75, 1.5, 1.5, 0.375, 3.0])
    mb = orders.memory_boundedness(p)
    # b0: defining -95, use +0.75 -> max(-95, 0.75) = 0.75. b1: 1.5 + 1.5 = 3. b2: 0.375.
    # b3: max(-95, 3) = 3.
    expected = np.array([0.75, 3.0, 0.375, 3.0]) / np.sqrt([100, 200, 50, 400])
    assert mb == pytest.approx(expected)
    order = orders.msa_order(p)
    # b1 (3/sqrt(200)=0.212) > b3 (0.15) > b2 (0.053) > b0 (0.075)? b0 = 0.075 > b2 = 0.053.
    assert order.tolist() == [1, 3, 0, 2]


def test_size_order(tiny):
    assert orders.size_order(Problem(tiny, T)).tolist() == [3, 1, 0, 2]


@pytest.mark.parametrize(
    "solver", ["msa", "greedy-size", "random", "all-slow", "restarts", "msa-skip"]
)
def test_every_solver_valid_on_random_workloads(solver):
    rng = np.random.default_rng(1)
    for _ in range(5):
        wl = random_workload(rng)
        problem = api.make_problem(wl, "30%", T)
        sol = solve(problem, solver, seed=3, time_limit=0.05)
        s = sol.summary()
        assert s["valid"], s["problems"]
        assert s["time_s"] <= s["all_slow_time_s"] + 1e-12
        assert s["time_s"] >= s["lower_bound_time_s"] - 1e-12


def test_msa_beats_all_slow_and_restarts_never_worse(datasets):
    wl = api.load_workload(datasets / "ml-traces" / "resnet50.csv")
    problem = api.make_problem(wl, "25%")
    msa = solve(problem, "msa")
    assert msa.summary()["valid"] and msa.placed_bytes > 0
    assert msa.summary()["speedup_vs_all_slow"] > 1
    rs = solve(problem, "restarts", time_limit=0.5)
    assert rs.time_s <= msa.time_s + 1e-15
    assert rs.extra["restarts"] >= 2


def test_msa_skip_leaves_a_long_low_density_buffer_slow():
    # One 100-byte buffer live for 10 positions and ten 60-byte buffers of one position each,
    # all under it; 100 bytes of fast memory. msa presents the big one first (its boundedness
    # grows with sqrt(size) under the trace proxy) and it blocks every short one; their density
    # (benefit per byte and position) is 10x its, so msa-skip leaves it slow and places them.
    from mallocgame.memory.workload import Workload

    n = 11
    wl = Workload.from_intervals(
        "skip", np.arange(n), [100] + [60] * 10, [0] + list(range(10)), [10] + list(range(1, 11))
    )
    problem = api.make_problem(wl, 100, T)
    ranks = problem.instance(orders.msa_order(problem)).density_ranks()
    assert ranks[0] == 0.0 and (ranks[1:] >= 1 / n).all()  # equal densities up to rounding
    msa = solve(problem, "msa")
    skip = solve(problem, "msa-skip")
    assert msa.offsets[0] >= 0 and (msa.offsets[1:] < 0).all()
    assert skip.summary()["valid"] and skip.offsets[0] == -1 and (skip.offsets[1:] >= 0).all()
    assert skip.time_s < msa.time_s and skip.extra["skip_fraction"] > 0
    # fit-all: nothing may stay slow on purpose, so it is msa's line
    fit = api.make_problem(wl, 160, T, objective="fit-all")
    assert solve(fit, "msa-skip").offsets.tolist() == solve(fit, "msa").offsets.tolist()


def test_msa_skip_never_worse_than_msa(datasets):
    wl = api.load_workload(datasets / "ml-traces" / "resnet50.csv")
    for cap in ("10%", "50%"):
        problem = api.make_problem(wl, cap)
        msa, skip = solve(problem, "msa"), solve(problem, "msa-skip")
        assert skip.summary()["valid"] and skip.time_s <= msa.time_s * (1 + 1e-12)
    assert skip.time_s < msa.time_s  # resnet50 at 50%: leaving the lowest-density 5% slow pays


def test_fit_all_on_easy_instance():
    wl = random_workload(np.random.default_rng(2), n=20)
    problem = api.make_problem(wl, wl.peak_live_bytes() * 3, T, objective="fit-all")
    sol = solve(problem, "greedy-size")
    s = sol.summary()
    assert s["solved"] and s["valid"]
