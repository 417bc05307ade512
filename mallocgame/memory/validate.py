"""An independent validator of memory mappings: it shares no code with the game or solvers.

Checks: every buffer decided exactly once (a mapping row per buffer, no unknown or repeated
ids), fast buffers inside capacity and aligned, and no two fast buffers whose live intervals
overlap also overlap in address.
"""

from __future__ import annotations

import bisect
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
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    slow = offsets < 0
    if require_all_fast:
        for i in np.flatnonzero(slow)[:max_problems]:
            problems.append(f"buffer {ids[i]} is not placed (fit-all needs every buffer in memory)")
    fast = np.flatnonzero(~slow)
    for i in fast[offsets[fast] % alignment != 0][:max_problems]:
        problems.append(
            f"buffer {ids[i]} offset {int(offsets[i])} is not a multiple of the alignment "
            f"{alignment}"
        )
    for i in fast[offsets[fast] > capacity - sizes[fast]][:max_problems]:
        off = int(offsets[i])
        problems.append(
            f"buffer {ids[i]} [{off}, {off + int(sizes[i])}) exceeds the capacity {capacity}"
        )
    if len(problems) >= max_problems:
        return Report(False, problems[:max_problems])
    # Sweep over time, keeping the live fast buffers' address ranges in a list sorted by offset.
    # While no overlap has been found they are disjoint, so a new range [a0, a1) overlaps one
    # of them iff the last one that starts below a1 ends above a0: O(log n) per buffer (plus
    # the list's insertions) instead of a check against every live buffer. A buffer found to
    # overlap is reported and left out, so the ranges stay disjoint.
    st = np.asarray(starts, dtype=np.int64)
    en = np.asarray(ends, dtype=np.int64)
    by_time = fast[np.lexsort((en[fast], st[fast]))]
    live: list[tuple[int, int]] = []  # heap of (end, index)
    lo: list[int] = []  # the live ranges' offsets, sorted
    owner: list[int] = []  # the buffer of each, in the same order
    for i in by_time.tolist():
        s = int(st[i])
        while live and live[0][0] <= s:
            _, j = heapq.heappop(live)
            k = bisect.bisect_left(lo, int(offsets[j]))
            del lo[k], owner[k]
        a0 = int(offsets[i])
        a1 = a0 + int(sizes[i])
        k = bisect.bisect_left(lo, a1)
        if k > 0:
            j = owner[k - 1]
            b0, b1 = int(offsets[j]), int(offsets[j]) + int(sizes[j])
            if b1 > a0:
                problems.append(
                    f"buffers {ids[j]} and {ids[i]} are live together and overlap in fast memory "
                    f"([{b0}, {b1}) and [{a0}, {a1}))"
                )
                if len(problems) >= max_problems:
                    return Report(False, problems)
                continue
        lo.insert(k, a0)
        owner.insert(k, i)
        heapq.heappush(live, (int(en[i]), i))
    return Report(not problems, problems[:max_problems])
