import numpy as np

from mallocgame.memory.validate import validate


def v(offsets, capacity=100, alignment=1, **kw):
    ids = np.array([0, 1, 2])
    sizes = np.array([40, 40, 30])
    starts = np.array([0, 2, 5])
    ends = np.array([4, 6, 8])
    return validate(ids, sizes, starts, ends, np.array(offsets), capacity, alignment, **kw)


def test_valid_and_slow():
    assert v([0, 40, 0]).valid  # b2 starts when b0 ended: may share offset 0
    assert v([-1, -1, -1]).valid


def test_overlap_detected():
    r = v([0, 20, -1])
    assert not r.valid and "overlap" in r.problems[0]


def test_touching_intervals_do_not_conflict():
    # b1 [2,6) and b2 [5,8) overlap in time; b0 [0,4) and b2 [5,8) do not.
    assert v([0, 40, 50]).valid is False
    assert v([0, -1, 10]).valid
    # Half-open: [0,4) and [4,9) share no position, so they may share addresses.
    r = validate(
        np.array([0, 1]), np.array([8, 8]), np.array([0, 4]), np.array([4, 9]), np.array([0, 0]), 8
    )
    assert r.valid


def test_capacity_alignment_fitall_duplicates():
    assert "exceeds the capacity" in v([70, -1, -1]).problems[0]
    assert "alignment" in v([3, -1, -1], alignment=8).problems[0]
    assert "not placed" in v([0, 40, -1], require_all_fast=True).problems[0]
    r = validate(
        np.array([1, 1]),
        np.array([1, 1]),
        np.array([0, 0]),
        np.array([1, 1]),
        np.array([-1, -1]),
        10,
    )
    assert "more than once" in r.problems[0]
