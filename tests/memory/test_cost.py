import numpy as np
import pytest

from mallocgame.memory import cost
from mallocgame.memory.targets import Target

T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=1,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)


def test_roofline_by_hand(tiny):
    # i0: compute 100 s; memory 500/100 = 5 s -> 100. i1: 0 flops, 300/100 = 3.
    # i2: 5 s, 650/100 = 6.5.
    assert cost.all_slow_time(tiny, T) == pytest.approx(100 + 3 + 6.5)
    # b3 fast: i0 stays compute-bound; i2: 250/100 + 400/400 = 3.5 s.
    fast = np.array([False, False, False, True])
    assert cost.program_time(tiny, T, fast) == pytest.approx(100 + 3 + 5.0)  # max(5, 3.5) = 5
    # All fast: i1 300/400 = 0.75, i2 max(5, 650/400) = 5.
    assert cost.lower_bound_time(tiny, T) == pytest.approx(100 + 0.75 + 5)


def test_solo_benefit_matches_program_time(tiny):
    base = cost.all_slow_time(tiny, T)
    ben = cost.solo_benefit(tiny, T)
    for b in range(tiny.num_buffers):
        fast = np.zeros(tiny.num_buffers, dtype=bool)
        fast[b] = True
        assert ben[b] == pytest.approx(base - cost.program_time(tiny, T, fast))


def test_instructions_without_accesses():
    from mallocgame.memory.workload import Workload

    # The last two instructions touch nothing (XLA's tuple/parameter bookkeeping does this).
    w = Workload("w", [0], [100], [0], [1], [0.0, 20.0, 0.0], [0, 1, 1, 1], [0], [100.0])
    assert cost.all_slow_time(w, T) == pytest.approx(1.0 + 2.0)
