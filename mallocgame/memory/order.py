"""The orders in which the game presents buffers: XLA memory-space assignment's
memory-boundedness order (``msa_order``, the game's default, so that the heuristic is one legal
line of play), the order by size, and the classic packing orders (``packing_order``: sizes,
areas or live ranges descending), which best fit plays at any size.

``msa_order`` sorts as ``MemoryBoundednessBufferIntervalComparator``
(xla/service/memory_space_assignment/buffer_interval_comparator.cc): memory boundedness
(``CostAnalysis::GetMemoryBoundedness``: the alternate-memory benefit of the defining
instruction and of every use, summed while memory-bound, divided by the square root of the
size), then larger size, longer live range, earlier latest use, earlier start, lower id.
"""

from __future__ import annotations

import numpy as np

from mallocgame.memory.problem import Problem


def alternate_memory_benefits(problem: Problem) -> np.ndarray:
    """Per access, XLA's ``GetAlternateMemoryBenefit`` of putting that operand/output alone in
    alternate memory: the memory time saved if the instruction is memory-bound, else the
    (negative) distance from memory-boundedness. Shape ``[A]``."""
    w, t = problem.workload, problem.target
    counts = np.diff(w.access_ptr)
    instr = np.repeat(np.arange(w.num_instructions), counts)
    total = np.bincount(instr, weights=w.access_bytes, minlength=w.num_instructions)
    mem = total / t.slow_bandwidth_bytes_per_s
    compute = w.instr_flops / t.peak_flops_per_s
    x = w.access_bytes
    alt = x / t.fast_bandwidth_bytes_per_s + (total[instr] - x) / t.slow_bandwidth_bytes_per_s
    return np.where(mem[instr] > compute[instr], mem[instr] - alt, mem[instr] - compute[instr])


def memory_boundedness(problem: Problem) -> np.ndarray:
    """XLA's ``GetMemoryBoundedness`` per buffer (the defining position is the buffer's first
    access in schedule order, its uses the later ones)."""
    w = problem.workload
    ptr, _, _ = w.accesses_of()
    # Accesses grouped by buffer; within a buffer they stay in schedule order (stable sort of
    # the instruction-major CSR), so the first is the defining position.
    ben = alternate_memory_benefits(problem)[np.argsort(w.access_buffer, kind="stable")]
    result = np.zeros(w.num_buffers)
    for b in range(w.num_buffers):
        lo, hi = int(ptr[b]), int(ptr[b + 1])
        if lo == hi:
            continue
        total = float(ben[lo])
        for u in ben[lo + 1 : hi].tolist():
            total = total + u if (total > 0 and u > 0) else max(total, u)
        result[b] = total
    return result / np.sqrt(w.sizes.astype(np.float64))


def latest_use(problem: Problem) -> np.ndarray:
    w = problem.workload
    counts = np.diff(w.access_ptr)
    instr = np.repeat(np.arange(w.num_instructions), counts)
    last = np.full(w.num_buffers, -1, dtype=np.int64)
    np.maximum.at(last, w.access_buffer, instr)
    return last


def msa_order(problem: Problem, boundedness: np.ndarray | None = None) -> np.ndarray:
    """The presentation order of XLA's memory-boundedness comparator (see module doc)."""
    w = problem.workload
    mb = memory_boundedness(problem) if boundedness is None else boundedness
    # np.lexsort sorts by the last key first.
    keys = (
        np.arange(w.num_buffers),  # buffer id (position in the workload)
        w.starts,
        latest_use(problem),
        w.starts - w.ends,  # -duration
        -w.sizes,
        -mb.astype(np.float32),  # XLA compares float32 boundedness
    )
    return np.lexsort(keys).astype(np.int64)


def size_order(problem: Problem) -> np.ndarray:
    w = problem.workload
    return packing_order("size", w.sizes, w.starts, w.ends)


#: The classic packing orders, by :func:`packing_order`'s ``kind``.
PACKING_ORDERS = ("size", "area", "width")


def packing_order(kind: str, sizes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A packing order, largest first: ``size`` (then longer live range), ``area`` (size x live
    range, then size), ``width`` (live range, then size); ties by earlier start, then index."""
    width = ends - starts
    idx = np.arange(sizes.size)
    if kind == "size":
        keys = (idx, starts, -width, -sizes)
    elif kind == "area":
        keys = (idx, starts, -sizes, -(sizes.astype(np.float64) * width))
    elif kind == "width":
        keys = (idx, starts, -sizes, -width)
    else:
        raise ValueError(
            f"unknown packing order {kind!r}; choose one of {', '.join(PACKING_ORDERS)}"
        )
    return np.lexsort(keys).astype(np.int64)


# --------------------------------------------------------------------------- play
