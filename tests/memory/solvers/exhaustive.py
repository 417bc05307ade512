"""Exhaustive references for the exact solvers: instances small enough to enumerate every
subset of fast buffers and every aligned packing (shared by the CP-SAT and the bounds tests)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from mallocgame.memory import cost
from mallocgame.memory.problem import Problem
from mallocgame.memory.targets import load_target
from mallocgame.memory.validate import validate
from mallocgame.memory.workload import Workload

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


def check_valid(p: Problem, offsets: np.ndarray, all_fast: bool = False) -> None:
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
