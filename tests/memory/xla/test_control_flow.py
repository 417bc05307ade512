"""While-loop trip counts and the multipliers of the computations they run."""

from __future__ import annotations

import pytest

from mallocgame.memory import xla
from mallocgame.memory.xla.control_flow import control_flow
from mallocgame.memory.xla.hlo import calls

from .conftest import hlo_of

pytest.importorskip("jax")


def test_unknown_trip_count_counts_once(dumps):
    wl = xla.read_dump_folder(dumps["while"])
    (loop,) = wl.source["while_loops"]
    assert loop == {"while": loop["while"], "trip_count": None, "known": False}
    assert wl.source["while_loops_unknown_trip_count"] == 1
    # The body's multiply-add (2 ops on 64 elements) and the condition's sum and compare,
    # each counted for one execution.
    assert wl.instr_flops.sum() == 2 * 64 + 64 + 1
    wl.check()


def test_known_trip_count_multiplies_body_and_condition(dumps):
    hlo = hlo_of(xla.read_dump_folder(dumps["fori"]))
    cf = control_flow(hlo)
    (loop,) = cf.loops
    w = hlo.instructions[loop["while"]]
    (body,), (cond,) = calls(w, "body"), calls(w, "condition")
    assert cf.order[0] == hlo.entry and cf.multiplier[hlo.entry] == 1.0
    assert cf.multiplier[body] == 7.0 and cf.multiplier[cond] == 8.0  # tested once more
    assert cf.unknown_trips == 0
