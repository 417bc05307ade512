"""The exact packing search (native ``pack``) against an independent exhaustive search and the
independent validator, its limits, its errors, and the ``pack`` / ``pack-peak`` solvers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mallocgame import _native, api
from mallocgame.errors import InputError, MallocGameError
from mallocgame.memory.solvers import list_solvers, solve
from mallocgame.memory.solvers.packing import TOO_LARGE, best_fit_pack, minimize_peak, pack
from mallocgame.memory.validate import validate
from mallocgame.memory.workload import Workload

RULES = (
    "canonical_only",
    "section_inference",
    "monotonic_floor",
    "check_dominance",
    "hatless_pruning",
    "dynamic_ordering",
    "dynamic_decomposition",
)


# --------------------------------------------------------------------------- references
def brute_force_fits(sizes, starts, ends, capacity, alignment=1) -> bool:
    """Every aligned offset of every buffer, buffer by buffer, with backtracking: shares
    nothing with the native search (no canonical form, no bounds)."""
    n = len(sizes)
    conflicts = [
        [j for j in range(i) if starts[i] < ends[j] and starts[j] < ends[i]] for i in range(n)
    ]
    offsets = [0] * n

    def place(i: int) -> bool:
        if i == n:
            return True
        for o in range(0, capacity - sizes[i] + 1, alignment):
            if all(o + sizes[i] <= offsets[j] or offsets[j] + sizes[j] <= o for j in conflicts[i]):
                offsets[i] = o
                if place(i + 1):
                    return True
        return False

    return place(0)


def peak_live(sizes, starts, ends) -> int:
    return max(
        sum(s for s, a, b in zip(sizes, starts, ends, strict=True) if a <= t < b)
        for t in range(min(starts), max(ends))
    )


def random_tiny(rng: np.random.Generator):
    n = int(rng.integers(2, 7))
    starts = rng.integers(0, 5, size=n)
    ends = starts + rng.integers(1, 4, size=n)
    sizes = rng.integers(1, 5, size=n)
    live = peak_live(sizes.tolist(), starts.tolist(), ends.tolist())
    capacity = int(max(int(sizes.max()), live + int(rng.integers(-1, 3))))
    return sizes, starts, ends, capacity


def assert_valid_packing(r, sizes, starts, ends, capacity, alignment=1, complete=True):
    rep = validate(
        np.arange(len(sizes)),
        sizes,
        starts,
        ends,
        r.offsets,
        capacity,
        alignment,
        require_all_fast=complete,
    )
    assert rep.valid, rep.problems


# --------------------------------------------------------------------------- exactness
def test_agrees_with_exhaustive_search_and_validator():
    rng = np.random.default_rng(7)
    counts = {"solved": 0, "infeasible": 0, "infeasible_not_by_peak": 0}
    for _ in range(160):
        sizes, starts, ends, cap = random_tiny(rng)
        align = int(rng.choice([1, 1, 2]))
        truth = brute_force_fits(sizes.tolist(), starts.tolist(), ends.tolist(), cap, align)
        r = pack(sizes, starts, ends, cap, align, time_limit=10)
        assert r.status == ("solved" if truth else "infeasible"), (sizes, starts, ends, cap, align)
        if truth:
            counts["solved"] += 1
            assert r.placed == len(sizes) and r.height <= cap
            assert_valid_packing(r, sizes, starts, ends, cap, align)
        else:
            counts["infeasible"] += 1
            if r.peak_live <= cap:
                counts["infeasible_not_by_peak"] += 1
            assert_valid_packing(r, sizes, starts, ends, cap, align, complete=False)
    # Both answers occur, and some infeasible ones were not settled by the peak live bytes.
    assert counts["solved"] >= 40 and counts["infeasible"] >= 20, counts
    assert counts["infeasible_not_by_peak"] >= 3, counts


@pytest.mark.parametrize("rule", RULES + ("all",))
def test_each_rule_is_sound_and_complete(rule):
    """Switching a rule off (or all of them) never changes the answer."""
    rng = np.random.default_rng(11)
    off = dict.fromkeys(RULES, False) if rule == "all" else {rule: False}
    for _ in range(60):
        sizes, starts, ends, cap = random_tiny(rng)
        full = pack(sizes, starts, ends, cap, time_limit=10)
        ablated = pack(sizes, starts, ends, cap, time_limit=10, **off)
        assert ablated.status == full.status, (rule, sizes, starts, ends, cap)
        if ablated.solved:
            assert_valid_packing(ablated, sizes, starts, ends, cap)


def test_obvious_infeasibility_is_proven_at_once():
    # Three 2-byte buffers live together need 6 bytes.
    r = pack([2, 2, 2], [0, 0, 0], [1, 1, 1], 5, time_limit=5)
    assert r.status == "infeasible" and r.infeasible and r.peak_live == 6 and r.nodes <= 2
    r = pack([2, 2, 2], [0, 0, 0], [1, 1, 1], 6, time_limit=5)
    assert r.solved and sorted(r.offsets.tolist()) == [0, 2, 4] and r.height == 6
    # A buffer larger than the capacity.
    assert pack([4, 1], [0, 5], [1, 6], 3).infeasible


def test_infeasible_by_fragmentation():
    # Peak live 9 bytes, capacity 10, yet no packing fits (found by random search, shrunk,
    # confirmed by the exhaustive search): only the search itself can prove it.
    sizes, starts, ends = (
        [2, 1, 2, 4, 5, 4, 4, 2],
        [2, 1, 3, 1, 5, 6, 1, 2],
        [6, 4, 6, 3, 7, 7, 2, 4],
    )
    assert peak_live(sizes, starts, ends) == 9
    assert not brute_force_fits(sizes, starts, ends, 10) and brute_force_fits(
        sizes, starts, ends, 11
    )
    r = pack(sizes, starts, ends, 10)
    assert r.infeasible and r.peak_live == 9 and r.nodes > 1
    for rule in RULES:
        assert pack(sizes, starts, ends, 10, **{rule: False}).infeasible, rule
    r = pack(sizes, starts, ends, 11)
    assert r.solved
    assert_valid_packing(r, np.array(sizes), np.array(starts), np.array(ends), 11)


def test_empty_and_disjoint_instances():
    r = pack([], [], [], 0)
    assert r.solved and r.offsets.shape == (0,) and r.placed == 0
    # Two independent blocks in time (decomposed), the second one tight.
    sizes, starts, ends = [3, 1, 2, 2, 2], [0, 0, 10, 10, 11], [5, 5, 12, 11, 12]
    r = pack(sizes, starts, ends, 4)
    assert r.solved
    assert_valid_packing(r, np.array(sizes), np.array(starts), np.array(ends), 4)


def test_priority_orders_the_branching():
    # All live together, plenty of room: the first leaf stacks them by priority.
    sizes, starts, ends = [5, 3, 7, 2], [0, 0, 0, 0], [4, 4, 4, 4]
    r = pack(sizes, starts, ends, 100, priority=[0.1, 0.9, 0.5, 0.7], heuristics="P")
    assert r.solved and r.heuristic == "P" and r.nodes == 5
    assert r.offsets.tolist() == [12, 0, 5, 3]  # order 1, 3, 2, 0
    r = pack(sizes, starts, ends, 100, priority=[0.9, 0.1, 0.5, 0.7])
    assert r.offsets.tolist() == [0, 14, 7, 5] and r.heuristic == "P"


# --------------------------------------------------------------------------- limits
def tiling(seed: int, n: int, horizon: int = 1000, capacity: int = 1 << 16):
    """Buffers cut from the [0, horizon) x [0, capacity) rectangle by random guillotine cuts:
    they fit exactly, with zero waste (like 8 of minimalloc's 11 challenging instances)."""
    rng = np.random.default_rng(seed)
    rects = [(0, horizon, 0, capacity)]
    while len(rects) < n:
        i = int(rng.integers(len(rects)))
        t0, t1, a0, a1 = rects[i]
        if rng.random() < 0.5 and t1 - t0 > 1:
            c = int(rng.integers(t0 + 1, t1))
            rects[i : i + 1] = [(t0, c, a0, a1), (c, t1, a0, a1)]
        elif a1 - a0 > 1:
            c = int(rng.integers(a0 + 1, a1))
            rects[i : i + 1] = [(t0, t1, a0, c), (t0, t1, c, a1)]
    r = np.array(rects, dtype=np.int64)
    return r[:, 3] - r[:, 2], r[:, 0], r[:, 1], capacity


def hard_instance():
    """A tiling the search does not settle in seconds (measured: no packing in 3 s)."""
    return tiling(2, 150)


def test_zero_waste_tilings_are_packed():
    for seed in (0, 1, 3):
        sizes, starts, ends, cap = tiling(seed, 150)
        r = pack(sizes, starts, ends, cap, time_limit=20)
        assert r.solved and r.peak_live == cap and r.height == cap
        assert_valid_packing(r, sizes, starts, ends, cap)


def test_time_limit_and_node_limit_are_respected():
    sizes, starts, ends, cap = hard_instance()
    t0 = time.perf_counter()
    r = pack(sizes, starts, ends, cap, time_limit=0.5)
    wall = time.perf_counter() - t0
    assert r.status == "timeout", r.status
    assert 0.45 <= r.wall_s and wall < 1.5
    assert r.nodes > 0 and 0 < r.placed < len(sizes)
    assert_valid_packing(r, sizes, starts, ends, cap, complete=False)  # the partial packing

    r = pack(sizes, starts, ends, cap, node_limit=300)
    assert r.status == "node_limit" and r.nodes == 300
    r = pack(sizes, starts, ends, cap, time_limit=0)
    assert r.status == "timeout" and r.nodes <= 1


def test_search_releases_the_gil():
    sizes, starts, ends, cap = hard_instance()
    out = {}
    th = threading.Thread(
        target=lambda: out.setdefault("r", pack(sizes, starts, ends, cap, time_limit=0.6))
    )
    th.start()
    time.sleep(0.05)
    ticks = 0
    while th.is_alive():
        ticks += 1
    th.join()
    assert out["r"].status == "timeout"
    assert ticks > 1000  # the main thread ran Python while the search was going on


def test_too_large_instances_are_refused():
    # 8000 buffers live together: 32 million conflicting pairs, refused before allocating.
    n = 8000
    with pytest.raises(ValueError, match="too large"):
        _native.pack(
            np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64), n
        )


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([1, 2], [0, 0], [1]), {}, "same length"),
        (([0], [0], [1]), {}, r"sizes\[0\]"),
        (([-3], [0], [1]), {}, r"sizes\[0\]"),
        (([1 << 61], [0], [1]), {}, r"sizes\[0\]"),
        (([1], [2], [2]), {}, r"starts\[0\] must be below"),
        (([1.5], [0], [1]), {}, "whole numbers"),
        ((["a"], [0], [1]), {}, "integer array"),
        (([[1]], [0], [1]), {}, "1-D"),
        (([1], [0], [1], -1), {}, "capacity"),
        (([1], [0], [1], True), {}, "capacity"),
        (([1], [0], [1], "8"), {}, "capacity"),
        (([1], [0], [1], 8, 0), {}, "alignment"),
        (([1], [0], [1], 8), {"time_limit": -1}, "time_limit"),
        (([1], [0], [1], 8), {"time_limit": float("nan")}, "time_limit"),
        (([1], [0], [1], 8), {"node_limit": -5}, "node_limit"),
        (([1], [0], [1], 8), {"priority": [1.0, 2.0]}, "priority"),
        (([1], [0], [1], 8), {"priority": [float("nan")]}, "priority"),
        (([1], [0], [1], 8), {"heuristics": "WQ"}, "unknown key 'Q'"),
        (([1], [0], [1], 8), {"heuristics": "P"}, "no priority"),
        (([1], [0], [1], 8), {"heuristics": []}, "empty"),
        (([1], [0], [1], 8), {"heuristics": [3]}, "strings"),
    ],
)
def test_bad_input_raises_value_error(args, kwargs, match):
    if len(args) == 3:
        args = (*args, 8)
    with pytest.raises(ValueError, match=match):
        _native.pack(*args, **kwargs)


# --------------------------------------------------------------------------- solvers
def tiny_problem(sizes, starts, ends, capacity):
    wl = Workload.from_intervals("t", np.arange(len(sizes)), sizes, starts, ends)
    return api.make_problem(wl, int(capacity), objective="fit-all", alignment=1)


def test_solvers_listed_and_refuse_the_time_objective():
    assert {"pack", "pack-peak"} <= set(list_solvers())
    wl = Workload.from_intervals("t", np.arange(3), [2, 2, 2], [0, 0, 0], [1, 1, 1])
    with pytest.raises(MallocGameError, match="fit-all only"):
        solve(api.make_problem(wl, 6, objective="time"), "pack")
    sol = solve(tiny_problem([2, 2, 2], [0, 0, 0], [1, 1, 1], 6), "pack", time_limit=5)
    s = sol.summary()
    assert (
        s["solved"] and s["valid"] and s["search_status"] == "solved" and s["wall_s"] == sol.wall_s
    )
    # Below the max load no packing can fit: one line that says by how much (issue 20).
    with pytest.raises(InputError, match=r"max load is 6 bytes .* capacity 5 bytes; short by 1"):
        solve(tiny_problem([2, 2, 2], [0, 0, 0], [1, 1, 1], 5), "pack", time_limit=5)
    with pytest.raises(InputError, match=r"buffer 1 \(9 bytes\) is larger than the capacity 8"):
        solve(tiny_problem([2, 9, 2], [0, 2, 4], [1, 3, 5], 8), "pack-peak", time_limit=5)
    # At the max load but still infeasible (two live-together 1-byte buffers, offsets at
    # multiples of 2, capacity 2): the search proves it.
    wl = Workload.from_intervals("t", np.arange(2), [1, 1], [0, 0], [1, 1])
    sol = solve(api.make_problem(wl, 2, objective="fit-all", alignment=2), "pack", time_limit=5)
    assert not sol.summary()["solved"] and sol.extra["search_status"] == "infeasible"


def test_pack_peak_reaches_the_exhaustive_optimum():
    rng = np.random.default_rng(5)
    for _ in range(25):
        sizes, starts, ends, _ = random_tiny(rng)
        s, a, b = sizes.tolist(), starts.tolist(), ends.tolist()
        optimum = next(
            c for c in range(peak_live(s, a, b), sum(s) + 1) if brute_force_fits(s, a, b, c)
        )
        best, info = minimize_peak(sizes, starts, ends, sum(s), time_limit=5)
        assert best.solved and best.height == optimum and info["proved_optimal"], (s, a, b)
        if info["probes"][0][2] > info["lower_bound"]:  # the bound is probed right after
            assert info["probes"][1][0] == info["lower_bound"] == peak_live(s, a, b)
        sol = solve(tiny_problem(sizes, starts, ends, sum(s)), "pack-peak", time_limit=5)
        assert sol.summary()["valid"] and sol.extra["height"] == optimum


def test_challenging_instances_solved(datasets):
    for name in ("J", "K"):
        wl = api.load_workload(datasets / "minimalloc-challenging" / f"{name}.1048576.csv")
        problem = api.make_problem(wl, 1048576, objective="fit-all", alignment=1)
        sol = solve(problem, "pack", time_limit=30)
        s = sol.summary()
        assert s["solved"] and s["valid"], (name, sol.extra)


# --------------------------------------------------------------------------- best fit, fallback
def reference_best_fit(sizes, starts, ends, capacity, alignment, order):
    """Best fit written out plainly: the smallest interior gap among the placed buffers live
    together with b that fits (ties: lowest), else the aligned top; unplaced above capacity."""
    offsets = [-1] * len(sizes)
    for b in order:
        ranges = sorted(
            (offsets[p], offsets[p] + sizes[p])
            for p in range(len(sizes))
            if offsets[p] >= 0 and starts[p] < ends[b] and starts[b] < ends[p]
        )
        best, best_gap, cursor = None, None, 0
        for lo, hi in ranges:
            if lo > cursor:
                off = -(-cursor // alignment) * alignment
                if off + sizes[b] <= lo and (best is None or lo - cursor < best_gap):
                    best, best_gap = off, lo - cursor
            cursor = max(cursor, hi)
        if best is None:
            best = -(-cursor // alignment) * alignment
        if best + sizes[b] <= capacity:
            offsets[b] = best
    return offsets


def test_best_fit_matches_the_reference_and_is_valid():
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(1, 90))
        starts = rng.integers(0, 30, n)
        ends = starts + rng.integers(1, 12, n)
        sizes = rng.integers(1, 20, n)
        alignment = int(rng.choice([1, 2, 8]))
        cap = int(rng.integers(int(sizes.max()), int(sizes.sum()) + 8))
        order = rng.permutation(n)
        r = _native.best_fit(sizes, starts, ends, cap, order, alignment)
        want = reference_best_fit(
            sizes.tolist(), starts.tolist(), ends.tolist(), cap, alignment, order.tolist()
        )
        assert r["offsets"].tolist() == want
        placed = r["offsets"] >= 0
        assert r["placed"] == placed.sum()
        assert r["height"] == max([0] + (r["offsets"] + sizes)[placed].tolist())
        rep = validate(np.arange(n), sizes, starts, ends, r["offsets"], cap, alignment)
        assert rep.valid, rep.problems


def test_best_fit_refuses_bad_input():
    with pytest.raises(ValueError, match=r"order\[1\] = 0 is out of range or repeated"):
        _native.best_fit([1, 1], [0, 0], [1, 1], 4, [0, 0])
    with pytest.raises(ValueError, match="order has 1 entries"):
        _native.best_fit([1, 1], [0, 0], [1, 1], 4, [0])
    with pytest.raises(ValueError, match=r"sizes\[0\] must be in"):
        _native.best_fit([0], [0], [1], 4, [0])
    with pytest.raises(ValueError, match="same length"):
        best_fit_pack([1, 2], [0], [1], 4)


def test_pack_falls_back_to_best_fit_beyond_the_exact_search():
    # 11,000 buffers all live across the middle: more section memberships than the exact
    # search holds (issue 20). pack and pack-peak return a valid packing, say how, and give
    # the gap to the max-load bound; no traceback.
    n = 11_000
    sizes = np.full(n, 64) + np.arange(n) % 3
    starts = np.arange(n)
    ends = n + np.arange(n)
    r = pack(sizes, starts, ends, int(sizes.sum()))
    assert r.solved and r.method == "best-fit" and r.fallback_reason.startswith(TOO_LARGE)
    info = r.info()
    assert info["gap_to_max_load"] == (r.height - r.peak_live) / r.peak_live >= 0
    assert validate(np.arange(n), sizes, starts, ends, r.offsets, int(sizes.sum())).valid
    with pytest.raises(ValueError, match=TOO_LARGE):
        pack(sizes, starts, ends, int(sizes.sum()), fallback=False)
    sol = solve(tiny_problem(sizes, starts, ends, 2 * int(sizes.sum())), "pack-peak")
    s = sol.summary()
    assert s["valid"] and s["solved"] and s["method"] == "best-fit"
    assert s["probes"] == [s["probes"][0]] and s["height"] >= s["lower_bound"]


def test_pack_returns_a_best_fit_packing_when_the_search_stops_without_one():
    # A node limit of 1 stops the exact search at once; best fit still places everything.
    sizes, starts, ends = [4, 4, 4, 2], [0, 1, 2, 0], [3, 4, 5, 5]
    r = pack(sizes, starts, ends, 14, node_limit=1)
    assert r.solved and r.method == "best-fit" and "node_limit" in r.fallback_reason
    exact = pack(sizes, starts, ends, 14, node_limit=1, fallback=False)
    assert exact.status == "node_limit"
