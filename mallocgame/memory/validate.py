"""An independent validator of memory mappings: it shares no code with the game or solvers.

Checks: every buffer decided exactly once (a mapping row per buffer, no unknown or repeated
ids), fast buffers inside capacity and aligned, and no two fast buffers whose live intervals
overlap also overlap in address.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np


@dataclasses.dataclass
class Report:
    valid: bool
    problems: list[str]

    def __bool__(self) -> bool:
        return self.valid


def validate(
    ids: np.ndarray,
    sizes: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    offsets: np.ndarray,
    capacity: int,
    alignment: int = 1,
    require_all_fast: bool = False,
    max_problems: int = 20,
) -> Report:
    """Validate a mapping given as parallel arrays (offset -1 = slow memory)."""
    problems: list[str] = []
    n = len(ids)
    if not (len(sizes) == len(starts) == len(ends) == len(offsets) == n):
        return Report(
            False, ["arrays of different lengths: every buffer must be decided exactly once"]
        )
    ids = np.asarray(ids)
    uniq, counts = np.unique(ids, return_counts=True)
    for dup in uniq[counts > 1][:max_problems]:
        problems.append(f"buffer {dup} is decided more than once")
    fast = []
    for i in range(n):
        off = int(offsets[i])
        if off < 0:
            if require_all_fast:
                problems.append(
                    f"buffer {ids[i]} is not placed (fit-all needs every buffer in memory)"
                )
            continue
        if off % alignment:
            problems.append(
                f"buffer {ids[i]} offset {off} is not a multiple of the alignment {alignment}"
            )
        if off + int(sizes[i]) > capacity:
            problems.append(
                f"buffer {ids[i]} [{off}, {off + int(sizes[i])}) exceeds the capacity {capacity}"
            )
        fast.append(i)
    # Sweep over time; keep the live fast buffers; check address overlap on each insertion.
    fast.sort(key=lambda i: (int(starts[i]), int(ends[i])))
    live: list[tuple[int, int]] = []  # heap of (end, index)
    active: set[int] = set()
    for i in fast:
        s = int(starts[i])
        while live and live[0][0] <= s:
            _, j = heapq.heappop(live)
            active.discard(j)
        a0, a1 = int(offsets[i]), int(offsets[i]) + int(sizes[i])
        for j in active:
            b0, b1 = int(offsets[j]), int(offsets[j]) + int(sizes[j])
            if a0 < b1 and b0 < a1:
                problems.append(
                    f"buffers {ids[j]} and {ids[i]} are live together and overlap in fast memory "
                    f"([{b0}, {b1}) and [{a0}, {a1}))"
                )
                if len(problems) >= max_problems:
                    return Report(False, problems)
        heapq.heappush(live, (int(ends[i]), i))
        active.add(i)
    return Report(not problems, problems[:max_problems])
