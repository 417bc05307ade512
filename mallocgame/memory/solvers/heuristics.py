"""The heuristic solvers of the memory game (``solve(problem, "msa")`` and the other baselines).

Each solver has the signature of :data:`mallocgame.memory.solvers.SolverFn`.

- ``msa``: XLA memory-space assignment's idea, ported: buffers sorted by
  ``MemoryBoundednessBufferIntervalComparator`` (xla/service/memory_space_assignment/
  buffer_interval_comparator.cc) — memory boundedness (``CostAnalysis::GetMemoryBoundedness``:
  the alternate-memory benefit of the defining instruction and of every use, summed while
  memory-bound, divided by the square root of the size), then larger size, longer live range,
  earlier latest use, earlier start, lower id — and each placed at the best-fit offset where it
  fits, else left in default (slow) memory. Whole-buffer placement: XLA's prefetches and
  evictions, which split a live range, are not modelled.
- ``greedy-size``: sizes descending (XLA's GlobalDecreasingSizeBestFitHeap order), best fit.
- ``random``: random order, uniformly random legal action (seeded).
- ``all-slow``: nothing in fast memory.
- ``msa-skip``: ``msa``'s order and best fit, except that the buffers whose *density* (the
  reward a buffer earns alone in fast memory, per byte and schedule position it holds; see
  docs/game.md, ``buffer.density_rank``) ranks in the lowest fraction ``q`` stay slow, so that
  long-lived buffers of little value leave room for better ones; ``q`` is picked among
  :data:`SKIP_FRACTIONS` by the cost model (``q = 0`` is ``msa``, so it is never worse).
- ``restarts``: the equal-time search baseline: randomised restarts of the ``msa`` order
  (its priorities perturbed by multiplicative noise), keeping the best; stops at ``time_limit``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mallocgame import _native
from mallocgame.memory.order import msa_order, size_order
from mallocgame.memory.problem import Problem


def play_best_fit(problem: Problem, order: np.ndarray) -> tuple[np.ndarray, float]:
    """Present buffers in ``order``; place each at its best-fit offset if one exists, else slow.
    Returns (offsets with -1 for slow/unplaced, the game's return)."""
    game = _native.Game(problem.instance(order))
    total = game.play_best_fit()
    offsets = np.array(game.offsets(), dtype=np.int64)
    offsets[offsets < 0] = -1
    return offsets, float(total)


def msa(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    offsets, ret = play_best_fit(problem, msa_order(problem))
    return offsets, {"return": ret}


def greedy_size(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    offsets, ret = play_best_fit(problem, size_order(problem))
    return offsets, {"return": ret}


#: the fractions of lowest-density buffers that ``msa-skip`` tries leaving slow
SKIP_FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def play_skip_game(
    instance: _native.Instance, fraction: float, ranks: np.ndarray | None = None
) -> tuple[_native.Game, list[int]]:
    """Plays ``instance`` with best fit, except that the buffers whose density rank (``ranks``,
    default ``instance.density_ranks()``) is below ``fraction`` stay slow; returns (the finished
    native Game, its actions)."""
    game = _native.Game(instance)
    keep = (instance.density_ranks() if ranks is None else ranks) >= fraction
    game.play_best_fit(keep.astype(np.int64))  # in C++
    return game, best_fit_moves(game, 0)


def best_fit_moves(game: _native.Game, first: int) -> list[int]:
    """The moves of turns ``first`` to ``game.turn`` of a game that best fit played from turn
    ``first`` on: action 1 (the best-fit candidate) where the buffer ended fast, else 0."""
    order = game.instance.order()[first : game.turn]
    return (game.offsets()[order] >= 0).astype(np.int64).tolist()


def best_skip_game(
    instance: _native.Instance,
    deadline: float | None = None,
    fractions: tuple[float, ...] = SKIP_FRACTIONS,
) -> tuple[_native.Game, list[int], float]:
    """``msa-skip`` in ``instance``'s order: :func:`play_skip_game` for every fraction of
    :data:`SKIP_FRACTIONS` (fit-all: only 0, nothing may stay slow on purpose); returns (the
    best finished Game, its actions, its fraction), the lowest fraction on a tie. ``deadline``
    (a ``time.perf_counter()`` time): no further fraction is tried after it (the first always
    is), so that a caller with a budget keeps it on large programs. ``fractions``: the ones to
    try, in order (default :data:`SKIP_FRACTIONS`)."""
    ranks = instance.density_ranks()
    best = None
    for q in fractions if instance.objective == "time" else (0.0,):
        if best is not None and deadline is not None and time.perf_counter() >= deadline:
            break
        game, acts = play_skip_game(instance, q, ranks)
        if best is None or game.return_so_far > best[0].return_so_far + 1e-12:
            best = (game, acts, q)
    return best


def msa_skip(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    game, _, q = best_skip_game(problem.instance(msa_order(problem)))
    offsets = np.array(game.offsets(), dtype=np.int64)
    offsets[offsets < 0] = -1
    return offsets, {"return": float(game.return_so_far), "skip_fraction": q}


def random_order(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    order = rng.permutation(problem.workload.num_buffers)
    game = _native.Game(problem.instance(order))
    total = 0.0
    while not game.done:
        legal = np.flatnonzero(game.legal_mask())
        if legal.size == 0:
            break
        total += game.step(int(rng.choice(legal)))
    offsets = np.array(game.offsets(), dtype=np.int64)
    offsets[offsets < 0] = -1
    return offsets, {"return": total}


def all_slow(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    return np.full(problem.workload.num_buffers, -1, dtype=np.int64), {"return": 0.0}


def restarts(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Randomised restarts of the msa order; the first restart is msa itself."""
    budget = 1.0 if time_limit is None else float(time_limit)
    start = time.perf_counter()
    w = problem.workload
    base = msa_order(problem)
    rank = np.empty(w.num_buffers)
    rank[base] = np.arange(w.num_buffers)
    best_off, best_ret = play_best_fit(problem, base)
    tries = 1
    while time.perf_counter() - start < budget:
        noise = rng.lognormal(0.0, 0.5 + rng.random(), size=w.num_buffers)
        order = np.argsort(rank * noise, kind="stable")
        off, ret = play_best_fit(problem, order)
        tries += 1
        if _better(problem, ret, off, best_ret, best_off):
            best_off, best_ret = off, ret
    return best_off, {"return": best_ret, "restarts": tries}


def _better(
    problem: Problem, ret: float, off: np.ndarray, best_ret: float, best_off: np.ndarray
) -> bool:
    if problem.objective == "fit-all":
        return int((off >= 0).sum()) > int((best_off >= 0).sum())
    return ret > best_ret + 1e-12
