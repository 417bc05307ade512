"""The bench's lower bounds against exhaustive search on instances small enough to enumerate."""

from __future__ import annotations

import pytest

pytest.importorskip("scipy")

from mallocgame.bench import exact  # noqa: E402
from tests.memory.solvers.exhaustive import (  # noqa: E402
    CASES,
    brute_force_peak,
    brute_force_time,
    problem_of,
    random_instance,
)


@pytest.mark.parametrize("seed,unit,max_units,capacity,alignment,trace", CASES)
def test_knapsack_bounds_stay_below_the_optimum(seed, unit, max_units, capacity, alignment, trace):
    w = random_instance(seed, unit=unit, max_units=max_units, trace=trace)
    p = problem_of(w, capacity, alignment)
    want = brute_force_time(p)
    # The knapsack bounds are valid lower bounds, never above the optimum.
    for integral in (False, True):
        b = exact.knapsack_bound(p, integral=integral, time_limit=10)
        assert b.proven and b.kind == ("knapsack-milp" if integral else "knapsack-lp")
        assert b.value is not None and p.lower_bound_time * (1 - 1e-9) <= b.value <= want * (
            1 + 1e-9
        )
    u = exact.unlimited_fast_bound(p)
    assert u.proven and u.value == p.lower_bound_time <= want * (1 + 1e-9)


def test_the_knapsack_bound_is_for_the_time_objective_only():
    w = random_instance(10, n=6, unit=1, max_units=5, trace=True)
    p = problem_of(w, int(w.sizes.sum()) + 1, 1, objective="fit-all")
    b = exact.knapsack_bound(p)
    assert b.value is None and not b.proven


@pytest.mark.parametrize("seed,alignment", [(10, 1), (11, 2), (12, 1)])
def test_peak_bound_stays_below_the_optimal_peak(seed, alignment):
    w = random_instance(seed, n=6, unit=1, max_units=5, trace=True)
    p = problem_of(w, int(w.sizes.sum()) + alignment, alignment, objective="fit-all")
    b = exact.peak_bound(p)
    assert b.proven and b.value == w.peak_live_bytes() <= brute_force_peak(w, alignment)
