"""Microbenchmarks of the hot paths on a ~1000-buffer trace (resnet50, 1042 buffers, fast
memory of 25% of the peak live bytes, target tpuv4i).

Run: ``.venv/bin/python -m pytest benchmarks/bench_hotpaths.py --benchmark-enable``
(add ``--benchmark-json=FILE`` to keep the numbers). Hot paths:

- native step: one move of the game (best-fit placement) and its exact undo, mid-game;
- candidate offsets: a move that leaves the buffer slow, then undo (the next turn's candidate
  offsets and mask are computed inside ``step``), plus reading them out (``candidates()``,
  ``legal_mask()``);
- whole game: ``play_best_fit`` from the start (1042 moves in C++);
- cost model: :func:`mallocgame.memory.cost.program_time` from scratch (numpy) and the per-buffer
  :func:`mallocgame.memory.cost.solo_benefit`;
- validator: :func:`mallocgame.memory.validate.validate` of the ``msa`` mapping;
- solvers: ``msa`` end to end (order + game).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mallocgame.api import make_problem
from mallocgame.memory import cost
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.validate import validate

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TRACE = DATASETS / "ml-traces" / "resnet50.csv"

pytestmark = pytest.mark.skipif(not TRACE.exists(), reason=f"{TRACE} not found")


@pytest.fixture(scope="module")
def problem():
    wl, _ = read_csv(TRACE)
    return make_problem(wl, "25%", "tpuv4i")


@pytest.fixture(scope="module")
def msa_offsets(problem):
    from mallocgame.memory.solvers import solve

    return solve(problem, "msa").offsets


@pytest.fixture(scope="module")
def midgame(problem):
    """A game halfway through the msa order, at a turn where best fit is legal."""
    _native = pytest.importorskip("mallocgame._native")
    from mallocgame.memory.order import msa_order

    game = _native.Game(problem.instance(msa_order(problem)))
    n = problem.workload.num_buffers
    while game.turn < n // 2 or not game.legal_mask()[1]:
        mask = game.legal_mask()
        game.step(1 if mask[1] else 0)
        if game.done:
            pytest.skip("the game ended before a mid-game turn with a legal placement")
    return game


def test_native_step_and_undo(benchmark, midgame):
    def move():
        midgame.step(1)
        midgame.undo()

    benchmark(move)
    assert midgame.legal_mask()[1]


def test_candidate_offsets(benchmark, midgame):
    def turn():
        midgame.step(0)  # the next buffer's candidates are computed here
        c = midgame.candidates()
        m = midgame.legal_mask()
        midgame.undo()
        return c, m

    c, m = benchmark(turn)
    assert c.shape[0] + 1 == m.shape[0]


def test_native_whole_game_best_fit(benchmark, problem):
    _native = pytest.importorskip("mallocgame._native")
    from mallocgame.memory.order import msa_order

    inst = problem.instance(msa_order(problem))

    def game():
        g = _native.Game(inst)
        g.play_best_fit()
        return g

    g = benchmark(game)
    assert g.done


def test_cost_program_time(benchmark, problem, msa_offsets):
    fast = msa_offsets >= 0
    t = benchmark(cost.program_time, problem.workload, problem.target, fast)
    assert problem.lower_bound_time <= t <= problem.all_slow_time


def test_cost_solo_benefit(benchmark, problem):
    b = benchmark(cost.solo_benefit, problem.workload, problem.target)
    assert np.all(b >= 0)


def test_validator(benchmark, problem, msa_offsets):
    w = problem.workload
    rep = benchmark(
        validate,
        w.ids,
        w.sizes,
        w.starts,
        w.ends,
        msa_offsets,
        problem.capacity,
        problem.target.alignment_bytes,
    )
    assert rep.valid


def test_msa_end_to_end(benchmark, problem):
    from mallocgame.memory.solvers import solve

    sol = benchmark(solve, problem, "msa")
    assert sol.check().valid
