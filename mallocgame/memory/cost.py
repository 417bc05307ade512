"""The roofline cost model of DESIGN.md, in plain numpy, independent of the native core.

Per scheduled instruction ``i``::

    time_i = max(flops_i / peak_flops,
                 slow_bytes_i / slow_bandwidth + fast_bytes_i / fast_bandwidth)

and the program's time is the sum. A buffer in fast memory moves all of its accesses' bytes to
the fast term. The two bounds that frame every result: every buffer slow (the upper bound,
``all_slow_time``) and every buffer fast with unlimited capacity (``lower_bound_time``).
"""

from __future__ import annotations

import numpy as np

from mallocgame.memory.targets import Target
from mallocgame.memory.workload import Workload


def program_time(workload: Workload, target: Target, fast: np.ndarray) -> float:
    """Execution time in seconds when buffers with ``fast[b]`` True live in fast memory."""
    fast = np.asarray(fast, dtype=bool)
    if fast.shape != (workload.num_buffers,):
        raise ValueError(f"fast mask has shape {fast.shape}, expected ({workload.num_buffers},)")
    nbytes = workload.access_bytes
    in_fast = fast[workload.access_buffer]
    bw = np.where(in_fast, target.fast_bandwidth_bytes_per_s, target.slow_bandwidth_bytes_per_s)
    per_access = nbytes / bw
    instr = np.repeat(np.arange(workload.num_instructions), np.diff(workload.access_ptr))
    mem = np.bincount(instr, weights=per_access, minlength=workload.num_instructions)
    compute = workload.instr_flops / target.peak_flops_per_s
    return float(np.maximum(compute, mem).sum())


def all_slow_time(workload: Workload, target: Target) -> float:
    return program_time(workload, target, np.zeros(workload.num_buffers, dtype=bool))


def lower_bound_time(workload: Workload, target: Target) -> float:
    return program_time(workload, target, np.ones(workload.num_buffers, dtype=bool))


def solo_benefit(workload: Workload, target: Target) -> np.ndarray:
    """Per buffer: the time saved if that buffer alone moved to fast memory (seconds)."""
    counts = np.diff(workload.access_ptr)
    instr = np.repeat(np.arange(workload.num_instructions), counts)
    slow = workload.access_bytes / target.slow_bandwidth_bytes_per_s
    mem = np.bincount(instr, weights=slow, minlength=workload.num_instructions)
    compute = workload.instr_flops / target.peak_flops_per_s
    saved = workload.access_bytes * (
        1.0 / target.slow_bandwidth_bytes_per_s - 1.0 / target.fast_bandwidth_bytes_per_s
    )
    before = np.maximum(compute, mem)[instr]
    after = np.maximum(compute[instr], mem[instr] - saved)
    return np.bincount(
        workload.access_buffer, weights=before - after, minlength=workload.num_buffers
    )
