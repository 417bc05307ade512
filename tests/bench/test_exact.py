"""CP-SAT against exhaustive search on instances small enough to enumerate."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

pytest.importorskip("ortools")

from mallocgame.bench import exact  # noqa: E402
from mallocgame.memory import cost  # noqa: E402
from mallocgame.memory.problem import Problem  # noqa: E402
from mallocgame.memory.targets import load_target  # noqa: E402
from mallocgame.memory.validate import validate  # noqa: E402
from mallocgame.memory.workload import Workload  # noqa: E402

TPU = load_target("tpuv4i")


def random_instance(
    seed: int, n: int = 6, horizon: int = 5, unit: int = 1, max_units: int = 4, trace: bool = False
) -> Workload:
    """Buffers with instructions that read parts of them; FLOPs make some instructions
    compute-bound, so the max in the roofline matters."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, horizon - 1, size=n)
    ends = np.minimum(starts + rng.integers(1, 4, size=n), horizon)
    sizes = rng.integers(1, max_units + 1, size=n) * unit
    if trace:
        return Workload.from_intervals(f"r{seed}", np.arange(n), sizes, starts, ends)
    ptr, buf, nbytes, flops = [0], [], [], []
    for pos in range(horizon):
        live = np.flatnonzero((starts <= pos) & (ends > pos))
        live = live[rng.random(live.size) < 0.8]
        buf.extend(live.tolist())
        nbytes.extend((sizes[live] * rng.uniform(0.5, 2.0, live.size)).round().tolist())
        ptr.append(len(buf))
        mem = float(sizes[live].sum()) / TPU.slow_bandwidth_bytes_per_s
        flops.append(float(rng.uniform(0.1, 1.1)) * mem * TPU.peak_flops_per_s)
    return Workload(
        name=f"r{seed}",
        ids=np.arange(n),
        sizes=sizes,
        starts=starts,
        ends=ends,
        instr_flops=np.array(flops),
        access_ptr=np.array(ptr),
        access_buffer=np.array(buf, dtype=np.int64),
        access_bytes=np.array(nbytes, dtype=float),
    )


def problem_of(w: Workload, capacity: int, alignment: int, objective: str = "time") -> Problem:
    t = dataclasses.replace(TPU, fast_capacity_bytes=capacity, alignment_bytes=alignment)
    return Problem(w, t, objective=objective)


def _conflicts(w: Workload, i: int, j: int) -> bool:
    return bool(w.starts[i] < w.ends[j] and w.starts[j] < w.ends[i])


def pack(w: Workload, members: list[int], capacity: int, alignment: int) -> dict[int, int] | None:
    """Exhaustive search for aligned offsets of ``members`` within ``capacity`` (or None)."""
    members = sorted(members, key=lambda b: -int(w.sizes[b]))
    placed: dict[int, int] = {}

    def rec(i: int) -> bool:
        if i == len(members):
            return True
        b = members[i]
        s = int(w.sizes[b])
        for off in range(0, capacity - s + 1, alignment):
            if all(
                not _conflicts(w, b, c) or off + s <= o or o + int(w.sizes[c]) <= off
                for c, o in placed.items()
            ):
                placed[b] = off
                if rec(i + 1):
                    return True
                del placed[b]
        return False

    return dict(placed) if rec(0) else None


def brute_force_time(p: Problem) -> float:
    """The least program time over every subset of buffers that packs (time-sorted subsets)."""
    w = p.workload
    n = w.num_buffers
    subsets = []
    for mask in itertools.product([False, True], repeat=n):
        fast = np.array(mask)
        subsets.append((cost.program_time(w, p.target, fast), fast))
    subsets.sort(key=lambda x: x[0])
    for t, fast in subsets:
        if pack(w, np.flatnonzero(fast).tolist(), p.capacity, p.target.alignment_bytes) is not None:
            return t
    raise AssertionError("the empty set always packs")


def brute_force_peak(w: Workload, alignment: int) -> int:
    lo = w.peak_live_bytes()
    for peak in range(lo, int(w.sizes.sum()) + alignment + 1):
        if pack(w, list(range(w.num_buffers)), peak, alignment) is not None:
            return peak
    raise AssertionError("everything packs in the sum of the sizes")


def _check_valid(p: Problem, offsets: np.ndarray, all_fast: bool = False) -> None:
    w = p.workload
    rep = validate(
        w.ids,
        w.sizes,
        w.starts,
        w.ends,
        offsets,
        p.capacity,
        p.target.alignment_bytes,
        require_all_fast=all_fast,
    )
    assert rep.valid, rep.problems


CASES = [
    # (seed, unit, max_units, capacity, alignment, trace): U = gcd (exact), U = alignment (ceil
    # sizes, capacity not a multiple), trace proxy (linear objective).
    (0, 512, 4, 3 * 512, 512, False),
    (1, 512, 4, 4 * 512 + 100, 512, False),
    (2, 1, 5, 7, 2, False),
    (3, 1, 5, 8, 1, False),
    (4, 3, 4, 11, 2, True),
    (5, 512, 3, 2 * 512, 512, True),
]


@pytest.mark.parametrize("seed,unit,max_units,capacity,alignment,trace", CASES)
def test_cpsat_time_matches_brute_force_and_proves_it(
    seed, unit, max_units, capacity, alignment, trace
):
    w = random_instance(seed, unit=unit, max_units=max_units, trace=trace)
    p = problem_of(w, capacity, alignment)
    want = brute_force_time(p)
    res = exact.solve_time(p, time_limit=20, num_workers=1, seed=0)
    assert res.status == "OPTIMAL"
    assert res.proved_optimal
    assert res.objective == pytest.approx(want, rel=1e-9)
    assert res.bound == pytest.approx(want, rel=1e-6)
    assert res.bound <= res.objective * (1 + 1e-12)
    _check_valid(p, res.offsets)
    assert cost.program_time(w, p.target, res.offsets >= 0) == pytest.approx(res.objective)
    # The knapsack bounds are valid lower bounds, never above the optimum.
    for integral in (False, True):
        b = exact.knapsack_bound(p, integral=integral, time_limit=10)
        assert b.value is not None and p.lower_bound_time * (1 - 1e-9) <= b.value <= want * (
            1 + 1e-9
        )


@pytest.mark.parametrize("geometry", ["2d", "cliques", "both"])
def test_geometry_variants_agree(geometry):
    w = random_instance(7, n=7, unit=512, max_units=4)
    p = problem_of(w, 4 * 512, 512)
    want = brute_force_time(p)
    res = exact.solve_time(p, time_limit=20, num_workers=1, geometry=geometry)
    assert res.proved_optimal and res.objective == pytest.approx(want, rel=1e-9)
    _check_valid(p, res.offsets)


@pytest.mark.parametrize("seed,alignment", [(10, 1), (11, 2), (12, 1)])
def test_cpsat_fit_all_minimises_the_peak(seed, alignment):
    w = random_instance(seed, n=6, unit=1, max_units=5, trace=True)
    want = brute_force_peak(w, alignment)
    p = problem_of(w, int(w.sizes.sum()) + alignment, alignment, objective="fit-all")
    res = exact.solve_fit_all(p, time_limit=20, num_workers=1)
    assert res.status == "OPTIMAL" and res.proved_optimal
    assert res.objective == want and res.bound == want
    _check_valid(p, res.offsets, all_fast=True)
    assert int(np.max(res.offsets + w.sizes)) == want


def test_fit_all_infeasible_capacity_is_proven():
    w = random_instance(13, n=6, unit=1, max_units=5, trace=True)
    p = problem_of(w, w.peak_live_bytes() - 1, 1, objective="fit-all")
    res = exact.solve_fit_all(p, time_limit=5, num_workers=1)
    assert res.status == "INFEASIBLE" and res.objective is None and res.bound == p.capacity + 1


def test_cpsat_is_a_registered_solver_and_its_result_validates():
    import mallocgame.bench  # noqa: F401  (registers cpsat)
    from mallocgame.memory.solvers import SOLVERS, solve

    assert "cpsat" in SOLVERS
    w = random_instance(0, unit=512, max_units=4)
    p = problem_of(w, 3 * 512, 512)
    sol = solve(p, "cpsat", seed=0, time_limit=10)
    assert sol.check().valid
    assert sol.extra["proved_optimal"] and sol.extra["status"] == "OPTIMAL"
    assert sol.time_s == pytest.approx(brute_force_time(p), rel=1e-9)


def test_maximal_cliques_cover_every_conflict():
    rng = np.random.default_rng(5)
    starts = rng.integers(0, 30, 60)
    ends = starts + rng.integers(1, 10, 60)
    cliques = exact.maximal_cliques(starts, ends)
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
    u, s, exact_ = exact.address_units(np.array([1024, 2048, 3072]), 512)
    assert (u, exact_) == (1024, True) and s.tolist() == [1, 2, 3]
    u, s, exact_ = exact.address_units(np.array([100, 700]), 512)
    assert (u, exact_) == (512, False) and s.tolist() == [1, 2]
