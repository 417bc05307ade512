"""CP-SAT (the ``cpsat`` solver and its exact models) against exhaustive search on instances
small enough to enumerate."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ortools")

from mallocgame.memory import cost  # noqa: E402
from mallocgame.memory.solvers import cpsat, list_solvers, solve  # noqa: E402
from tests.memory.solvers.exhaustive import (  # noqa: E402
    CASES,
    brute_force_peak,
    brute_force_time,
    check_valid,
    problem_of,
    random_instance,
)


@pytest.mark.parametrize("seed,unit,max_units,capacity,alignment,trace", CASES)
def test_cpsat_time_matches_brute_force_and_proves_it(
    seed, unit, max_units, capacity, alignment, trace
):
    w = random_instance(seed, unit=unit, max_units=max_units, trace=trace)
    p = problem_of(w, capacity, alignment)
    want = brute_force_time(p)
    res = cpsat.solve_time(p, time_limit=20, num_workers=1, seed=0)
    assert res.status == "OPTIMAL"
    assert res.proved_optimal
    assert res.objective == pytest.approx(want, rel=1e-9)
    assert res.bound == pytest.approx(want, rel=1e-6)
    assert res.bound <= res.objective * (1 + 1e-12)
    check_valid(p, res.offsets)
    assert cost.program_time(w, p.target, res.offsets >= 0) == pytest.approx(res.objective)


@pytest.mark.parametrize("geometry", ["2d", "cliques", "both"])
def test_geometry_variants_agree(geometry):
    w = random_instance(7, n=7, unit=512, max_units=4)
    p = problem_of(w, 4 * 512, 512)
    want = brute_force_time(p)
    res = cpsat.solve_time(p, time_limit=20, num_workers=1, geometry=geometry)
    assert res.proved_optimal and res.objective == pytest.approx(want, rel=1e-9)
    check_valid(p, res.offsets)


@pytest.mark.parametrize("seed,alignment", [(10, 1), (11, 2), (12, 1)])
def test_cpsat_fit_all_minimises_the_peak(seed, alignment):
    w = random_instance(seed, n=6, unit=1, max_units=5, trace=True)
    want = brute_force_peak(w, alignment)
    p = problem_of(w, int(w.sizes.sum()) + alignment, alignment, objective="fit-all")
    res = cpsat.solve_fit_all(p, time_limit=20, num_workers=1)
    assert res.status == "OPTIMAL" and res.proved_optimal
    assert res.objective == want and res.bound == want
    check_valid(p, res.offsets, all_fast=True)
    assert int(np.max(res.offsets + w.sizes)) == want


def test_fit_all_infeasible_capacity_is_proven():
    w = random_instance(13, n=6, unit=1, max_units=5, trace=True)
    p = problem_of(w, w.peak_live_bytes() - 1, 1, objective="fit-all")
    res = cpsat.solve_fit_all(p, time_limit=5, num_workers=1)
    assert res.status == "INFEASIBLE" and res.objective is None and res.bound == p.capacity + 1


def test_cpsat_is_a_solver_and_its_result_validates():
    assert "cpsat" in list_solvers()
    w = random_instance(0, unit=512, max_units=4)
    p = problem_of(w, 3 * 512, 512)
    sol = solve(p, "cpsat", seed=0, time_limit=10)
    assert sol.check().valid
    assert sol.extra["proved_optimal"] and sol.extra["status"] == "OPTIMAL"
    assert sol.time_s == pytest.approx(brute_force_time(p), rel=1e-9)


def test_num_workers_is_read_at_solve_time(monkeypatch):
    """The bench sets ``cpsat.NUM_WORKERS`` from ``--threads`` before a run."""
    monkeypatch.setattr(cpsat, "NUM_WORKERS", 1)
    p = problem_of(random_instance(1, unit=512, max_units=4), 3 * 512, 512)
    sol = solve(p, "cpsat", seed=0, time_limit=10)
    assert sol.extra["workers"] == 1 and sol.check().valid


def test_maximal_cliques_cover_every_conflict():
    rng = np.random.default_rng(5)
    starts = rng.integers(0, 30, 60)
    ends = starts + rng.integers(1, 10, 60)
    cliques = cpsat.maximal_cliques(starts, ends)
    together = set()
    for q in cliques:
        # a clique: all live at one position
        assert np.max(starts[q]) < np.min(ends[q])
        together |= {(int(a), int(b)) for a in q for b in q if a < b}
    want = {
        (a, b)
        for a in range(60)
        for b in range(a + 1, 60)
        if starts[a] < ends[b] and starts[b] < ends[a]
    }
    assert together == want
    # maximal: no clique is contained in another
    sets = [set(q.tolist()) for q in cliques]
    assert not any(a < b for a in sets for b in sets)


def test_address_units():
    u, s, exact_ = cpsat.address_units(np.array([1024, 2048, 3072]), 512)
    assert (u, exact_) == (1024, True) and s.tolist() == [1, 2, 3]
    u, s, exact_ = cpsat.address_units(np.array([100, 700]), 512)
    assert (u, exact_) == (512, False) and s.tolist() == [1, 2]
