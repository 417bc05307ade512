"""Tests of the native mallocGame core (mallocgame._native) against
tests/native/reference_game.py."""

from __future__ import annotations

import copy
import math
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mallocgame._native import BatchedGames, Game, Instance

from mallocgame.memory.workload import Workload

try:
    from tests.native.reference_game import ReferenceGame
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from reference_game import ReferenceGame

REL = 1e-9
ABS = 1e-12


# ---------------------------------------------------------------------- helpers
def spec_from_buffers(
    sizes: list[int],
    starts: list[int],
    ends: list[int],
    capacity: int,
    alignment: int = 1,
    order: list[int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A spec with the trace proxy: one instruction per buffer end, reading the buffer in full."""
    n = len(sizes)
    spec: dict[str, Any] = dict(
        sizes=sizes,
        starts=starts,
        ends=ends,
        instr_flops=[0.0] * n,
        access_ptr=list(range(n + 1)),
        access_buffer=list(range(n)),
        access_bytes=[float(s) for s in sizes],
        capacity=capacity,
        alignment=alignment,
        fast_bandwidth=10.0,
        slow_bandwidth=1.0,
        peak_flops=1.0,
        order=order if order is not None else list(range(n)),
        num_candidates=4,
        objective="time",
        grid=4,
    )
    spec.update(extra)
    return spec


def build(spec: dict[str, Any]) -> tuple[Instance, ReferenceGame]:
    arrays = dict(spec)
    for key in ("sizes", "starts", "ends", "access_ptr", "access_buffer", "order"):
        arrays[key] = np.asarray(spec[key], dtype=np.int64)
    for key in ("instr_flops", "access_bytes"):
        arrays[key] = np.asarray(spec[key], dtype=np.float64)
    return Instance(**arrays), ReferenceGame(**spec)


def check_placement_valid(inst: Instance, spec: dict[str, Any], offsets: np.ndarray) -> None:
    """Fast buffers fit, are aligned, and conflicting ones never share an address."""
    sizes, starts, ends = spec["sizes"], spec["starts"], spec["ends"]
    fast = [b for b in range(len(sizes)) if offsets[b] >= 0]
    for b in fast:
        assert offsets[b] + sizes[b] <= inst.capacity
        assert offsets[b] % inst.alignment == 0
    for x in fast:
        for y in fast:
            if x < y and starts[x] < ends[y] and starts[y] < ends[x]:
                assert offsets[x] + sizes[x] <= offsets[y] or offsets[y] + sizes[y] <= offsets[x], (
                    f"buffers {x} and {y} overlap"
                )


def assert_same_state(game: Game, ref: ReferenceGame, check_obs: bool = True) -> None:
    assert game.done == ref.done
    assert game.failed == ref.failed
    assert game.solved == ref.solved
    assert game.turn == ref.turn
    assert game.current_buffer == ref.current_buffer
    assert game.offsets().tolist() == ref.offsets
    assert game.candidates().tolist() == ref.candidates()
    assert game.legal_mask().tolist() == ref.legal_mask()
    assert game.time() == pytest.approx(ref.time(), rel=REL, abs=ABS)
    assert game.return_so_far == pytest.approx(ref.return_so_far, rel=REL, abs=ABS)
    assert game.fast_reward() == pytest.approx(ref.fast_reward(), rel=REL, abs=ABS)
    if check_obs:
        obs = game.observe()
        assert np.all(np.isfinite(obs)) and obs.min() >= -1.0 and obs.max() <= 4.0
        np.testing.assert_allclose(obs, np.asarray(ref.observe()), rtol=1e-6, atol=1e-6)


def snapshot(game: Game) -> tuple:
    return (
        game.turn,
        game.done,
        game.failed,
        game.offsets().tolist(),
        game.time(),
        game.return_so_far,
        game.fast_bytes_placed,
        game.candidates().tolist(),
        game.legal_mask().tolist(),
        game.observe().tobytes(),
    )


# ---------------------------------------------------------------------- strategies
@st.composite
def game_specs(
    draw: st.DrawFn,
    objective: str | None = None,
    num_candidates: int | None = None,
    grid: int | None = None,
) -> dict[str, Any]:
    n = draw(st.integers(1, 9))
    starts = [draw(st.integers(0, 12)) for _ in range(n)]
    ends = [s + draw(st.integers(1, 8)) for s in starts]
    sizes = [draw(st.integers(1, 40)) for _ in range(n)]
    num_instr = draw(st.integers(0, 7))
    flops, ptr, buf, nbytes = [], [0], [], []
    for _ in range(num_instr):
        flops.append(draw(st.sampled_from([0.0, 1.0, 50.0, 333.25])))
        for _ in range(draw(st.integers(0, 4))):
            buf.append(draw(st.integers(0, n - 1)))
            nbytes.append(draw(st.floats(0.0, 1000.0, allow_nan=False, allow_infinity=False)))
        ptr.append(len(buf))
    return dict(
        sizes=sizes,
        starts=starts,
        ends=ends,
        instr_flops=flops,
        access_ptr=ptr,
        access_buffer=buf,
        access_bytes=nbytes,
        capacity=draw(st.integers(0, 100)),
        alignment=draw(st.sampled_from([1, 2, 4, 8])),
        fast_bandwidth=draw(st.sampled_from([10.0, 3.0, 1.0, 0.5, math.inf])),
        slow_bandwidth=draw(st.sampled_from([1.0, 2.5])),
        peak_flops=draw(st.sampled_from([1.0, 100.0, math.inf])),
        order=draw(st.permutations(list(range(n)))),
        num_candidates=num_candidates or draw(st.integers(1, 4)),
        objective=objective or draw(st.sampled_from(["time", "fit-all"])),
        grid=grid or draw(st.integers(1, 5)),
    )


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------- hand-made instances
def test_tiny_time_game_known_answers() -> None:
    # Buffers 0 and 1 conflict ([0,3) and [1,4)); buffer 2 ([2,5)) conflicts with both.
    spec = spec_from_buffers([4, 4, 8], [0, 1, 2], [3, 4, 5], capacity=8, alignment=4)
    inst, _ = build(spec)
    assert inst.num_buffers == 3
    assert inst.num_actions == 5
    assert inst.total_bytes == 16
    # One instruction per buffer reading its bytes: all slow = 16 / 1, all fast = 16 / 10.
    assert inst.all_slow_time == pytest.approx(16.0)
    assert inst.lower_bound_time == pytest.approx(1.6)
    assert sorted(inst.conflicts(2).tolist()) == [0, 1]
    g = Game(inst)
    assert g.candidates().tolist() == [0, -1, -1, -1]
    assert g.legal_mask().tolist() == [True, True, False, False, False]
    assert g.step(1) == pytest.approx(3.6 / 16)
    assert g.candidates().tolist() == [4, -1, -1, -1]  # directly on top of buffer 0
    assert g.step(1) == pytest.approx(3.6 / 16)
    assert g.candidates().tolist() == [-1, -1, -1, -1]  # 8 bytes, but [0, 8) is full
    assert g.legal_mask().tolist() == [True, False, False, False, False]
    assert g.step(0) == 0.0
    assert g.done and g.solved and not g.failed
    assert g.current_buffer == -1
    assert g.offsets().tolist() == [0, 4, -1]
    assert g.time() == pytest.approx(0.4 + 0.4 + 8.0)
    assert g.return_so_far == pytest.approx((16.0 - g.time()) / 16.0)
    assert g.fast_bytes_placed == 8
    assert g.legal_mask().tolist() == [False] * 5


def test_alignment_rounds_gap_start_up() -> None:
    # Buffer 0 (10 bytes) at 0; buffer 1 must start at 16 (alignment 16), not at 10.
    spec = spec_from_buffers([10, 20], [0, 0], [5, 5], capacity=64, alignment=16)
    inst, _ = build(spec)
    g = Game(inst)
    g.step(1)
    assert g.candidates().tolist() == [16, -1, -1, -1]
    g.step(1)
    assert g.offsets().tolist() == [0, 16]
    # Too little room once aligned: 10 used, gap [10, 32), aligned start 16, size 17 > 16.
    spec = spec_from_buffers([10, 17], [0, 0], [5, 5], capacity=32, alignment=16)
    g = Game(build(spec)[0])
    g.step(1)
    assert g.candidates().tolist() == [-1, -1, -1, -1]


def test_capacity_edge() -> None:
    spec = spec_from_buffers([32, 1], [0, 0], [2, 2], capacity=32)
    g = Game(build(spec)[0])
    assert g.candidates().tolist() == [0, -1, -1, -1]  # size == capacity fits exactly
    g.step(1)
    assert g.candidates().tolist() == [-1, -1, -1, -1]  # no byte left
    spec = spec_from_buffers([33], [0], [2], capacity=32)
    g = Game(build(spec)[0])
    assert g.legal_mask().tolist() == [True, False, False, False, False]
    # Zero capacity: never any candidate.
    g = Game(build(spec_from_buffers([1], [0], [2], capacity=0))[0])
    assert g.candidates().tolist() == [-1] * 4
    assert np.all(np.isfinite(g.observe()))


def test_best_fit_ranking_and_truncation() -> None:
    # Six buffers that all conflict; the first five are set at chosen offsets.
    sizes = [4, 6, 4, 6, 4, 5]
    starts = [0, 0, 0, 0, 0, 0]
    ends = [9] * 6
    spec = spec_from_buffers(sizes, starts, ends, capacity=60, num_candidates=2)
    inst, ref = build(spec)
    g = Game(inst)
    g.set_offsets([0, 10, 20, 36, 50, -2])
    # Occupied: [0,4) [10,16) [20,24) [36,42) [50,54); gaps [4,10) [16,20) [24,36) [42,50) [54,60).
    # Buffer 5 (5 bytes) fits in [4,10) (leftover 1), [24,36) (7), [42,50) (3), [54,60) (1).
    assert g.candidates().tolist() == [4, 54]  # K = 2: leftover 1 twice, lower offset first
    for _ in range(5):
        ref.step(0)
    ref.offsets[:5] = [0, 10, 20, 36, 50]
    assert ref.candidates() == [4, 54]
    np.testing.assert_allclose(g.observe(), ref.observe(), rtol=1e-6, atol=1e-6)


def test_fit_all_dead_end() -> None:
    spec = spec_from_buffers([8, 8, 8], [0, 0, 0], [3, 3, 3], capacity=16, objective="fit-all")
    inst, ref = build(spec)
    g = Game(inst)
    assert g.legal_mask()[0] == np.False_
    with pytest.raises(ValueError, match="fit-all"):
        g.step(0)
    assert g.step(1) == pytest.approx(8 / 24)
    assert g.step(1) == pytest.approx(8 / 24)
    assert g.done and g.failed and not g.solved
    assert g.current_buffer == -1
    assert g.legal_mask().tolist() == [False] * 5
    with pytest.raises(ValueError, match="over"):
        g.step(1)
    g.undo()
    assert not g.done and not g.failed
    assert ref.play_greedy() == pytest.approx(16 / 24)
    assert ref.failed
    # A first buffer larger than the capacity ends the game before any move.
    g = Game(build(spec_from_buffers([20], [0], [1], capacity=16, objective="fit-all"))[0])
    assert g.done and g.failed and g.turn == 0


def test_fit_all_solved() -> None:
    spec = spec_from_buffers([8, 8, 8], [0, 0, 3], [3, 3, 6], capacity=16, objective="fit-all")
    g = Game(build(spec)[0])
    assert g.play_greedy() == pytest.approx(1.0)
    assert g.solved and not g.failed
    assert g.offsets().tolist() == [0, 8, 0]


def test_time_rewards_sum_to_saved_fraction() -> None:
    spec = spec_from_buffers([4, 4, 8, 2], [0, 1, 2, 4], [3, 4, 5, 6], capacity=12)
    inst, _ = build(spec)
    g = Game(inst)
    total = g.play_greedy()
    assert total == pytest.approx((inst.all_slow_time - g.time()) / inst.all_slow_time)
    assert total == pytest.approx(g.return_so_far)


def test_compute_bound_instruction_earns_nothing() -> None:
    # One instruction with 1000 flops at 1 flop/s dwarfs its 10 bytes of traffic.
    spec = spec_from_buffers([10], [0], [1], capacity=16, instr_flops=[1000.0])
    inst, _ = build(spec)
    assert inst.all_slow_time == pytest.approx(1000.0)
    g = Game(inst)
    assert g.fast_reward() == 0.0
    g.play_greedy()
    assert g.offsets().tolist() == [-1]  # greedy only places a buffer when it pays


def test_undo_restores_everything() -> None:
    spec = spec_from_buffers(
        [4, 4, 8, 2, 6], [0, 1, 2, 4, 0], [3, 4, 5, 6, 6], capacity=14, alignment=2
    )
    g = Game(build(spec)[0])
    states = [snapshot(g)]
    for action in (1, 2, 0, 1, 1):
        if not g.legal_mask()[action]:
            action = 0
        g.step(action)
        states.append(snapshot(g))
    assert g.done
    while g.history_size:
        g.undo()
        states.pop()
        assert snapshot(g) == states[-1]  # bit for bit, time() included
    with pytest.raises(ValueError, match="nothing to undo"):
        g.undo()


def test_clone_is_independent() -> None:
    spec = spec_from_buffers([4, 4, 8, 2], [0, 1, 2, 4], [3, 4, 5, 6], capacity=12)
    g = Game(build(spec)[0])
    g.step(1)
    c = g.clone()
    before = snapshot(g)
    c.step(1)
    c.step(0)
    assert snapshot(g) == before
    assert c.turn == 3 and g.turn == 1
    c.undo()
    c.undo()
    assert snapshot(c) == before  # the clone carries the history too
    assert copy.copy(g).offsets().tolist() == g.offsets().tolist()
    assert copy.deepcopy(g).turn == g.turn
    assert c.instance is g.instance or c.instance.num_buffers == g.instance.num_buffers


def test_reset_and_replay() -> None:
    spec = spec_from_buffers([4, 4, 8, 2], [0, 1, 2, 4], [3, 4, 5, 6], capacity=12)
    g = Game(build(spec)[0])
    fresh = snapshot(g)
    total = g.replay([1, 1, 0, 1])
    assert total == pytest.approx(g.return_so_far)
    played = snapshot(g)
    g.reset()
    assert snapshot(g) == fresh
    g.step(1)
    with pytest.raises(ValueError, match="move 2"):
        g.replay([1, 0, 3])  # the third action is illegal: all of it is undone
    assert g.turn == 1
    g.reset()
    g.replay(np.array([1, 1, 0, 1], dtype=np.int32))
    assert snapshot(g) == played


def test_set_offsets() -> None:
    spec = spec_from_buffers([4, 4, 8, 2], [0, 1, 2, 4], [3, 4, 5, 6], capacity=12, alignment=2)
    inst, _ = build(spec)
    g = Game(inst)
    g.replay([1, 1, 0, 1])
    played = g.offsets()
    h = Game(inst)
    h.set_offsets(played)
    assert snapshot(h)[:4] == snapshot(g)[:4]
    assert h.time() == pytest.approx(g.time(), rel=REL)
    assert h.return_so_far == pytest.approx(g.return_so_far, rel=REL)
    # A non-canonical but feasible offset is accepted (and undoable).
    h.set_offsets([2, 6, -2, -2])
    assert h.turn == 2 and h.offsets().tolist() == [2, 6, -2, -2]
    h.undo()
    assert h.offsets().tolist() == [2, -2, -2, -2]
    before = snapshot(h)
    bad = {
        "overlaps": [0, 2, -2, -2],
        "alignment": [1, -2, -2, -2],
        "capacity": [10, -2, -2, -2],
        "undecided": [-2, 0, -2, -2],
        "not -2": [-5, -2, -2, -2],
        "entries": [0, 0],
    }
    for message, offsets in bad.items():
        with pytest.raises(ValueError, match=message):
            h.set_offsets(offsets)
        assert snapshot(h) == before  # a refused state leaves the game as it was


def test_observation_layout_and_bounds() -> None:
    spec = spec_from_buffers([4, 4, 8, 2], [0, 1, 2, 4], [3, 4, 5, 6], capacity=12, grid=3)
    inst, ref = build(spec)
    layout = inst.observation_layout()
    k = inst.num_candidates
    assert layout["occupancy"] == (0, 9)
    assert layout["live_range"] == (9, 3)
    assert layout["buffer"] == (12, 11)
    assert layout["candidates"] == (23, 4 * k)
    assert layout["globals"] == (23 + 4 * k, 6)
    assert inst.observation_size == 23 + 4 * k + 6 == ref.observation_size()
    g = Game(inst)
    out = np.full(inst.observation_size, np.nan, dtype=np.float32)
    while True:
        assert g.observe(out) is out
        assert np.all(np.isfinite(out)) and np.all(out >= -1.0) and np.all(out <= 4.0)
        np.testing.assert_allclose(out, ref.observe(), rtol=1e-6, atol=1e-6)
        if g.done:
            break
        a = 1 if g.legal_mask()[1] else 0
        g.step(a)
        ref.step(a)
    start, _ = layout["globals.turn"]
    assert out[start] == 1.0
    with pytest.raises(ValueError, match="float32"):
        g.observe(np.zeros(inst.observation_size, dtype=np.float64))
    with pytest.raises(ValueError, match="shape"):
        g.observe(np.zeros(inst.observation_size + 1, dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        g.observe(np.zeros(2 * inst.observation_size, dtype=np.float32)[::2])


def test_from_workload() -> None:
    w = Workload.from_intervals(
        "t", ids=[0, 1, 2, 3], sizes=[64, 128, 64, 256], starts=[0, 1, 2, 0], ends=[3, 4, 6, 2]
    )
    cap = w.peak_live_bytes() // 2
    inst = Instance(
        w.sizes,
        w.starts,
        w.ends,
        w.instr_flops,
        w.access_ptr,
        w.access_buffer,
        w.access_bytes,
        capacity=cap,
        alignment=64,
        fast_bandwidth=8.0,
        slow_bandwidth=1.0,
        peak_flops=1e12,
        order=np.arange(4),
    )
    assert inst.all_slow_time == pytest.approx(2 * w.total_bytes())
    g = Game(inst)
    assert 0.0 < g.play_greedy() < 1.0


# ---------------------------------------------------------------------- errors
def test_constructor_errors_raise_value_error() -> None:
    good = spec_from_buffers([4, 4, 8], [0, 1, 2], [3, 4, 5], capacity=8)
    build(good)
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(sizes=[4, 4]), "starts has 3 entries, expected 2"),
        (dict(sizes=[[4, 4, 8]]), "1-D"),
        (dict(sizes=[4, -4, 8]), "non-positive size"),
        (dict(sizes=[4, 0, 8]), "non-positive size"),
        (dict(sizes=[4.5, 4, 8]), "whole numbers"),
        (dict(sizes=["a", "b", "c"]), "integer"),
        (dict(ends=[3, 1, 5]), "empty or inverted"),
        (dict(order=[0, 0, 2]), "not a permutation"),
        (dict(order=[0, 1, 3]), "not a permutation"),
        (dict(order=[0, 1]), "order has 2 entries"),
        (dict(access_buffer=[0, 1, 3]), "access_buffer"),
        (dict(access_buffer=[0, -1, 2]), "access_buffer"),
        (dict(access_ptr=[0, 1, 2]), "access_ptr has 3 entries"),
        (dict(access_ptr=[1, 1, 2, 3]), r"access_ptr\[0\]"),
        (dict(access_ptr=[0, 2, 1, 3]), "decreases"),
        (dict(access_ptr=[0, 1, 2, 2]), r"access_ptr\[-1\]"),
        (dict(access_bytes=[1.0, -1.0, 1.0]), "access_bytes"),
        (dict(access_bytes=[1.0, math.nan, 1.0]), "access_bytes"),
        (dict(access_bytes=[1.0, 1.0]), "access_bytes has 2 entries"),
        (dict(instr_flops=[1.0, -1.0, 0.0]), "instr_flops"),
        (dict(capacity=-1), "capacity"),
        (dict(capacity=1.5), "whole number"),
        (dict(capacity=2**70), "int64"),
        (dict(alignment=0), "alignment"),
        (dict(fast_bandwidth=0.0), "fast_bandwidth"),
        (dict(slow_bandwidth=math.nan), "slow_bandwidth"),
        (dict(peak_flops=-1.0), "peak_flops"),
        (dict(fast_bandwidth="fast"), "fast_bandwidth"),
        (dict(num_candidates=0), "num_candidates"),
        (dict(grid=0), "grid"),
        (dict(objective="speed"), "objective"),
    ]
    for change, message in cases:
        spec = dict(good)
        spec.update(change)
        with pytest.raises(ValueError, match=message):
            Instance(**spec)
    # An empty workload.
    with pytest.raises(ValueError, match="at least one buffer"):
        Instance(
            **{
                **good,
                "sizes": [],
                "starts": [],
                "ends": [],
                "order": [],
                "instr_flops": [],
                "access_ptr": [0],
                "access_buffer": [],
                "access_bytes": [],
            }
        )


def test_step_errors() -> None:
    g = Game(build(spec_from_buffers([4, 4], [0, 1], [3, 4], capacity=4))[0])
    for action in (-1, 5, 2, 10**6):
        with pytest.raises(ValueError, match="action"):
            g.step(action)
    with pytest.raises(ValueError, match="nothing to undo"):
        g.undo()
    g.step(1)
    with pytest.raises(ValueError, match="illegal"):
        g.step(1)  # buffer 1 no longer fits
    g.step(0)
    with pytest.raises(ValueError, match="over"):
        g.step(0)
    with pytest.raises(ValueError):
        Game(None)


# ---------------------------------------------------------------------- properties
@PROPERTY
@given(data=st.data())
def test_native_matches_reference(data: st.DataObject) -> None:
    spec = data.draw(game_specs())
    inst, ref = build(spec)
    assert inst.all_slow_time == pytest.approx(ref.all_slow_time, rel=REL, abs=ABS)
    assert inst.lower_bound_time == pytest.approx(ref.lower_bound_time, rel=REL, abs=ABS)
    for b in range(inst.num_buffers):
        assert sorted(inst.conflicts(b).tolist()) == ref.conflicts[b]
    game = Game(inst)
    while True:
        assert_same_state(game, ref)
        check_placement_valid(inst, spec, game.offsets())
        if ref.done:
            break
        legal = [a for a, ok in enumerate(ref.legal_mask()) if ok]
        action = data.draw(st.sampled_from(legal))
        assert game.step(action) == pytest.approx(ref.step(action), rel=REL, abs=ABS)
    assert game.return_so_far == pytest.approx(ref.return_so_far, rel=REL, abs=ABS)
    if spec["objective"] == "time":
        assert game.return_so_far == pytest.approx(
            (ref.all_slow_time - ref.time()) / ref.reward_scale, rel=1e-7, abs=1e-9
        )


@PROPERTY
@given(spec=game_specs(), prefix=st.integers(0, 9))
def test_greedy_matches_reference(spec: dict[str, Any], prefix: int) -> None:
    inst, ref = build(spec)
    game = Game(inst)
    for _ in range(prefix):  # start the rollout mid-game, after some slow/best-fit moves
        if ref.done:
            break
        action = 0 if spec["objective"] == "time" else 1
        game.step(action)
        ref.step(action)
    assert game.play_greedy() == pytest.approx(ref.play_greedy(), rel=REL, abs=ABS)
    assert_same_state(game, ref, check_obs=False)
    check_placement_valid(inst, spec, game.offsets())


@PROPERTY
@given(spec=game_specs())
def test_static_values_match_first_turn_and_reference(spec: dict[str, Any]) -> None:
    """static_benefits()[b] is the reward b earns going fast on the first turn (every other
    buffer slow; fit-all: size / total bytes), bit for bit; densities and their ranks agree
    with the reference game."""
    inst, ref = build(spec)
    n = len(spec["sizes"])
    benefits = inst.static_benefits()
    for b in range(n):
        first = dict(spec, order=[b] + [x for x in range(n) if x != b])
        g = Game(build(first)[0])
        if not g.done:  # a fit-all game whose first buffer cannot fit is over at once
            assert g.fast_reward() == benefits[b]
    assert benefits.tolist() == ref.static_benefit
    assert inst.densities().tolist() == ref.density
    assert inst.density_ranks().tolist() == ref.density_rank
    assert inst.mean_benefit == ref.mean_benefit
    ranks = inst.density_ranks()
    assert ((ranks >= 0) & (ranks < 1)).all() and ranks.min() == 0.0


@PROPERTY
@given(spec=game_specs(objective="time"))
def test_best_fit_rollout_matches_reference(spec: dict[str, Any]) -> None:
    inst, ref = build(spec)
    game = Game(inst)
    assert game.play_best_fit() == pytest.approx(ref.play_best_fit(), rel=REL, abs=ABS)
    assert game.offsets().tolist() == ref.offsets
    # play_greedy places only what pays; with a slower fast memory nothing pays.
    greedy = Game(inst)
    greedy.play_greedy()
    assert greedy.return_so_far >= -ABS
    if spec["fast_bandwidth"] < spec["slow_bandwidth"]:
        assert (greedy.offsets() < 0).all()


@PROPERTY
@given(data=st.data())
def test_undo_and_clone_properties(data: st.DataObject) -> None:
    spec = data.draw(game_specs())
    inst, _ = build(spec)
    game = Game(inst)
    states = [snapshot(game)]
    clones = [game.clone()]
    while not game.done:
        legal = np.flatnonzero(game.legal_mask()).tolist()
        game.step(data.draw(st.sampled_from(legal)))
        states.append(snapshot(game))
        clones.append(game.clone())
    for clone, state in zip(clones, states, strict=True):
        assert snapshot(clone) == state
    while game.history_size:
        game.undo()
        states.pop()
        assert snapshot(game) == states[-1]
    # set_offsets reaches the final state again from scratch.
    final = clones[-1]
    fresh = Game(inst)
    fresh.set_offsets(final.offsets())
    assert fresh.offsets().tolist() == final.offsets().tolist()
    assert fresh.done == final.done and fresh.failed == final.failed
    assert fresh.time() == pytest.approx(final.time(), rel=REL, abs=ABS)


def _empty_outputs(batch: BatchedGames) -> tuple[np.ndarray, ...]:
    n = len(batch)
    return (
        np.zeros((n, batch.observation_size), np.float32),
        np.zeros((n, batch.num_actions), np.bool_),
        np.zeros(n, np.float32),
        np.zeros(n, np.bool_),
    )


@PROPERTY
@given(data=st.data(), count=st.integers(1, 4))
def test_batched_matches_single(data: st.DataObject, count: int) -> None:
    specs = [data.draw(game_specs(num_candidates=3, grid=4)) for _ in range(count)]
    instances = [build(s)[0] for s in specs]
    games = [Game(inst) for inst in instances]
    singles = [Game(inst) for inst in instances]
    batch = BatchedGames(games)
    assert len(batch) == count
    obs, mask, rewards, done = _empty_outputs(batch)
    batch.observe(obs, mask, done)
    for _ in range(12):
        actions = np.zeros(count, np.int32)
        for i, g in enumerate(singles):
            if not g.done:
                actions[i] = data.draw(st.sampled_from(np.flatnonzero(g.legal_mask()).tolist()))
        expected = [
            0.0 if g.done else g.step(int(a)) for g, a in zip(singles, actions, strict=True)
        ]
        batch.step(actions, obs, mask, rewards, done)
        for i, g in enumerate(singles):
            assert rewards[i] == np.float32(expected[i])
            assert done[i] == g.done
            assert mask[i].tolist() == g.legal_mask().tolist()
            assert obs[i].tobytes() == g.observe().tobytes()
            assert batch.game(i).offsets().tolist() == g.offsets().tolist()


# ---------------------------------------------------------------------- batched API
def test_batched_api_and_errors() -> None:
    spec = spec_from_buffers([4, 4, 8], [0, 1, 2], [3, 4, 5], capacity=8)
    inst, _ = build(spec)
    games = [Game(inst), Game(inst)]
    batch = BatchedGames(games)
    assert batch.game(0) is games[0] and batch[-1] is games[1]
    with pytest.raises(IndexError):
        batch.game(2)
    obs, mask, rewards, done = _empty_outputs(batch)
    batch.observe(obs, mask, done)
    assert mask.tolist() == [[True, True, False, False, False]] * 2
    batch.step(np.array([1, 0], np.int64), obs, mask, rewards, done)
    assert games[0].turn == 1 and games[0].offsets()[0] == 0 and games[1].offsets()[0] == -1
    assert rewards[1] == 0.0 and rewards[0] > 0.0
    with pytest.raises(ValueError, match="illegal for game 1"):
        batch.step(np.array([0, 4], np.int32), obs, mask, rewards, done)
    assert games[0].turn == 1  # nothing was stepped
    bad_arrays = [
        (np.zeros(2, np.float32), "actions"),
        (np.zeros(3, np.int32), "actions"),
    ]
    for actions, message in bad_arrays:
        with pytest.raises(ValueError, match=message):
            batch.step(actions, obs, mask, rewards, done)
    a = np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="obs"):
        batch.step(a, obs.astype(np.float64), mask, rewards, done)
    with pytest.raises(ValueError, match="obs"):
        batch.step(a, obs[:, :-1], mask, rewards, done)
    with pytest.raises(ValueError, match="contiguous"):
        batch.step(a, np.asfortranarray(obs), mask, rewards, done)
    with pytest.raises(ValueError, match="mask"):
        batch.step(a, obs, mask.astype(np.int8), rewards, done)
    with pytest.raises(ValueError, match="rewards"):
        batch.step(a, obs, mask, rewards[:1], done)
    readonly = done.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        batch.step(a, obs, mask, rewards, readonly)
    # Finish game 1, then check done games ignore actions and reset_done resets them.
    while not games[1].done:
        batch.step(np.array([0, 0], np.int32), obs, mask, rewards, done)
    assert done.tolist() == [True, True]
    batch.step(np.array([3, 3], np.int32), obs, mask, rewards, done)  # ignored
    assert rewards.tolist() == [0.0, 0.0] and done.tolist() == [True, True]
    assert batch.reset_done().tolist() == [0, 1]
    assert games[0].turn == 0 and games[1].turn == 0
    games[0].step(1)
    batch.reset([0])
    assert games[0].turn == 0
    games[1].step(1)
    batch.reset()
    assert games[1].turn == 0
    with pytest.raises(IndexError, match="out of range"):
        batch.reset([5])
    # Construction checks.
    with pytest.raises(ValueError, match="at least one"):
        BatchedGames([])
    with pytest.raises(ValueError, match="twice"):
        BatchedGames([games[0], games[0]])
    other = Instance(**{**spec, "num_candidates": 2})
    with pytest.raises(ValueError, match="num_actions"):
        BatchedGames([games[0], Game(other)])
    other = Instance(**{**spec, "grid": 5})
    with pytest.raises(ValueError, match="observation size"):
        BatchedGames([games[0], Game(other)])


def test_batched_mixes_instances() -> None:
    a = build(spec_from_buffers([4, 4, 8], [0, 1, 2], [3, 4, 5], capacity=8))[0]
    b = build(spec_from_buffers([2, 6], [0, 0], [9, 9], capacity=8, objective="fit-all"))[0]
    batch = BatchedGames([Game(a), Game(b)])
    obs, mask, rewards, done = _empty_outputs(batch)
    batch.step(np.array([1, 1], np.int32), obs, mask, rewards, done)
    assert rewards[1] == pytest.approx(2 / 8)
    assert obs[1, a.observation_layout()["globals.fit_all"][0]] == 1.0


def test_play_greedy_releases_gil_and_is_thread_safe_per_game() -> None:
    sizes = [(7 * i) % 50 + 1 for i in range(200)]
    starts = [(13 * i) % 60 for i in range(200)]
    ends = [s + 1 + (5 * i) % 20 for i, s in enumerate(starts)]
    inst = build(spec_from_buffers(sizes, starts, ends, capacity=300, alignment=4))[0]
    games = [Game(inst) for _ in range(4)]
    results: list[float] = [0.0] * 4

    def run(i: int) -> None:
        results[i] = games[i].play_greedy()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] > 0
    assert all(g.offsets().tolist() == games[0].offsets().tolist() for g in games)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_schedule_matches_reference(seed: int) -> None:
    """Many short-lived buffers: most fast buffers are not live with the current one, and the
    core's interval index must find exactly those that are."""
    rng = np.random.default_rng(seed)
    n = 240
    starts = rng.integers(0, 400, size=n).tolist()
    ends = [s + int(rng.integers(1, 12)) for s in starts]
    sizes = (rng.integers(1, 16, size=n) * 8).tolist()
    spec = spec_from_buffers(
        sizes,
        starts,
        ends,
        capacity=96,
        alignment=8,
        order=rng.permutation(n).tolist(),
        num_candidates=3,
        grid=8,
    )
    inst, ref = build(spec)
    game = Game(inst)
    while not ref.done:
        assert game.candidates().tolist() == ref.candidates()
        legal = [a for a, ok in enumerate(ref.legal_mask()) if ok]
        action = legal[-1] if rng.random() < 0.8 else int(rng.choice(legal))
        assert game.step(action) == pytest.approx(ref.step(action), rel=REL, abs=ABS)
    assert game.offsets().tolist() == ref.offsets
    check_placement_valid(inst, spec, game.offsets())
    np.testing.assert_allclose(game.observe(), ref.observe(), rtol=1e-6, atol=1e-6)


def test_many_live_together_matches_reference() -> None:
    """More than 512 fast buffers live with one long buffer: the core sorts their address
    ranges by radix instead of std::sort; the candidates, the game and the blocked-bytes
    observation must not change. Long buffers come last, when fast memory is fragmented."""
    rng = np.random.default_rng(7)
    short = 700
    starts = rng.integers(0, 1500, size=short).tolist()
    ends = [s + int(rng.integers(1, 6)) for s in starts]
    sizes = rng.integers(1, 5, size=short).tolist()
    starts += [0, 100, 0]
    ends += [1600, 1400, 1600]
    sizes += [3, 2, 40]
    n = short + 3
    spec = spec_from_buffers(
        sizes, starts, ends, capacity=48, alignment=1, order=list(range(n)), num_candidates=4
    )
    inst, ref = build(spec)
    game = Game(inst)
    for _ in range(short):
        game.step(1 if game.legal_mask()[1] else 0)
        ref.step(1 if ref.legal_mask()[1] else 0)
    assert sum(o >= 0 for o in ref.offsets) > 512
    while not ref.done:
        assert game.candidates().tolist() == ref.candidates()
        np.testing.assert_allclose(game.observe(), ref.observe(), rtol=1e-6, atol=1e-6)
        action = 1 if ref.legal_mask()[1] else 0
        assert game.step(action) == pytest.approx(ref.step(action), rel=REL, abs=ABS)
    assert game.offsets().tolist() == ref.offsets
    assert game.offsets()[short] >= 0 and game.offsets()[short + 2] == -1  # a gap; no room
    check_placement_valid(inst, spec, game.offsets())


def test_range_unions_after_undo_and_clone_match_a_fresh_replay() -> None:
    """Over a thousand buffers, long ones among them: a walk reads the fast buffers live at the
    current buffer's start from the segment tree's merged unions, and those that start inside
    a long live range block by block (256 leaves); an undo marks both stale and the next walk
    rebuilds them. After random undos and on clones, every turn's candidates and observation
    equal those of a fresh game replaying the same moves (unions built by insertion only), and
    the final game equals the reference's."""
    rng = np.random.default_rng(11)
    short = 1100
    starts = rng.integers(0, 2000, size=short).tolist()
    ends = [s + int(rng.integers(1, 30)) for s in starts]
    sizes = rng.integers(1, 6, size=short).tolist()
    long_starts = rng.integers(0, 200, size=40).tolist()
    starts += long_starts
    ends += [2100 - int(x) for x in rng.integers(0, 200, size=40)]
    sizes += rng.integers(1, 4, size=40).tolist()
    n = len(sizes)
    spec = spec_from_buffers(
        sizes,
        starts,
        ends,
        capacity=64,
        alignment=1,
        order=rng.permutation(n).tolist(),
        num_candidates=4,
        grid=8,
    )
    inst, ref = build(spec)
    game = Game(inst)
    moves: list[int] = []
    checks = 0
    while not game.done:
        if moves and rng.random() < 0.04:  # about 0.2 moves back per move: the game advances
            for _ in range(int(rng.integers(1, min(len(moves), 10) + 1))):
                game.undo()
                moves.pop()
        if rng.random() < 0.05:
            game = game.clone()
        if rng.random() < 0.05:
            fresh = Game(inst)
            fresh.replay(np.array(moves, np.int64))
            assert snapshot(fresh) == snapshot(game)
            checks += 1
        legal = np.flatnonzero(game.legal_mask()).tolist()
        action = legal[1] if len(legal) > 1 and rng.random() < 0.9 else int(rng.choice(legal))
        game.step(action)
        moves.append(action)
    assert checks > 50
    for action in moves:
        ref.step(action)
    assert game.offsets().tolist() == ref.offsets
    check_placement_valid(inst, spec, game.offsets())
    np.testing.assert_allclose(game.observe(), ref.observe(), rtol=1e-6, atol=1e-6)


@PROPERTY
@given(data=st.data())
def test_corrupted_inputs_raise_value_error_or_play(data: st.DataObject) -> None:
    """Random corruptions of a valid spec either build a game that plays, or raise ValueError."""
    spec = data.draw(game_specs())
    field = data.draw(
        st.sampled_from(
            ["sizes", "starts", "ends", "access_ptr", "access_buffer", "order", "access_bytes"]
        )
    )
    values = list(spec[field])
    if values and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(values) - 1))
        values[i] = data.draw(st.sampled_from([-(2**62), -3, -1, 0, 1, 7, 25, 2**61]))
    elif data.draw(st.booleans()):
        values.append(values[0] if values else 1)
    else:
        values = values[:-1]
    spec[field] = values
    for key in ("capacity", "alignment", "num_candidates", "grid"):
        if data.draw(st.integers(0, 9)) == 0:
            spec[key] = data.draw(st.sampled_from([-1, 0, 2**61]))
    try:
        inst = Instance(**spec)
    except ValueError:
        return
    game = Game(inst)
    while not game.done:
        action = data.draw(st.integers(-1, inst.num_actions))
        try:
            game.step(action)
        except ValueError:
            assert not game.is_legal(action)
    game.observe()
