"""Baseline solvers behind one call: ``solve(problem, solver="msa")``.

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
from collections.abc import Callable

import numpy as np

from mallocgame.errors import InputError
from mallocgame.memory.problem import Problem, Solution

SolverFn = Callable[[Problem, np.random.Generator, "float | None"], tuple[np.ndarray, dict]]


# --------------------------------------------------------------------------- orders
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
    return np.lexsort((np.arange(w.num_buffers), w.starts, w.starts - w.ends, -w.sizes)).astype(
        np.int64
    )


# --------------------------------------------------------------------------- play
def play_best_fit(problem: Problem, order: np.ndarray) -> tuple[np.ndarray, float]:
    """Present buffers in ``order``; place each at its best-fit offset if one exists, else slow.
    Returns (offsets with -1 for slow/unplaced, the game's return)."""
    from mallocgame import _native

    game = _native.Game(problem.instance(order))
    total = game.play_best_fit()
    offsets = np.array(game.offsets(), dtype=np.int64)
    offsets[offsets < 0] = -1
    return offsets, float(total)


def _msa(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    offsets, ret = play_best_fit(problem, msa_order(problem))
    return offsets, {"return": ret}


def _greedy_size(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    offsets, ret = play_best_fit(problem, size_order(problem))
    return offsets, {"return": ret}


#: the fractions of lowest-density buffers that ``msa-skip`` tries leaving slow
SKIP_FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def play_skip_game(instance, fraction: float, ranks: np.ndarray | None = None) -> tuple:
    """Plays ``instance`` with best fit, except that the buffers whose density rank (``ranks``,
    default ``instance.density_ranks()``) is below ``fraction`` stay slow; returns (the finished
    native Game, its actions)."""
    from mallocgame import _native

    game = _native.Game(instance)
    keep = (instance.density_ranks() if ranks is None else ranks) >= fraction
    actions = []
    while not game.done:
        mask = game.legal_mask()
        act = 1 if (mask[1] and keep[game.current_buffer]) else 0
        if not mask[act]:  # fit-all: no candidate and slow is illegal (the game ends failed)
            break
        game.step(act)
        actions.append(act)
    return game, actions


def best_skip_game(instance) -> tuple:
    """``msa-skip`` in ``instance``'s order: :func:`play_skip_game` for every fraction of
    :data:`SKIP_FRACTIONS` (fit-all: only 0, nothing may stay slow on purpose); returns (the
    best finished Game, its actions, its fraction), the lowest fraction on a tie."""
    ranks = instance.density_ranks()
    best = None
    for q in SKIP_FRACTIONS if instance.objective == "time" else (0.0,):
        game, acts = play_skip_game(instance, q, ranks)
        if best is None or game.return_so_far > best[0].return_so_far + 1e-12:
            best = (game, acts, q)
    return best


def _msa_skip(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    game, _, q = best_skip_game(problem.instance(msa_order(problem)))
    offsets = np.array(game.offsets(), dtype=np.int64)
    offsets[offsets < 0] = -1
    return offsets, {"return": float(game.return_so_far), "skip_fraction": q}


def _random(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    from mallocgame import _native

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


def _all_slow(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    return np.full(problem.workload.num_buffers, -1, dtype=np.int64), {"return": 0.0}


def _restarts(problem: Problem, rng: np.random.Generator, time_limit: float | None):
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


SOLVERS: dict[str, SolverFn] = {
    "msa": _msa,
    "greedy-size": _greedy_size,
    "random": _random,
    "all-slow": _all_slow,
    "restarts": _restarts,
    "msa-skip": _msa_skip,
}


def register_solver(name: str, fn: SolverFn) -> None:
    SOLVERS[name] = fn


def list_solvers() -> list[str]:
    _load_plugins()
    return sorted(SOLVERS)


def _load_plugins() -> None:
    # Solvers that live in other modules register themselves on import: the agent (it needs
    # a trained checkpoint) and CP-SAT (it needs ortools, the `bench` install group).
    for module in (
        "mallocgame.memory.solvers.agent",
        "mallocgame.bench",
        "mallocgame.memory.solvers.packing",
    ):
        try:
            __import__(module)
        except ImportError:
            pass


def solve(
    problem: Problem, solver: str = "msa", seed: int = 0, time_limit: float | None = None
) -> Solution:
    """Solve ``problem`` with the named solver; the result is not validated here (see
    :meth:`Solution.check`)."""
    _load_plugins()
    if solver not in SOLVERS:
        raise InputError(
            f"unknown solver {solver!r}; choose one of {', '.join(sorted(SOLVERS))}", field="solver"
        )
    if problem.objective == "fit-all" and solver == "all-slow":
        raise InputError(
            "the all-slow solver places nothing, so it cannot play fit-all", field="solver"
        )
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    offsets, extra = SOLVERS[solver](problem, rng, time_limit)
    wall = time.perf_counter() - t0
    return Solution(problem, solver, np.asarray(offsets, dtype=np.int64), wall, extra)
