"""The ``agent`` solver: the trained MuZero agent plays the mallocGame, then keeps improving.

How one problem is solved (:func:`agent_solve`):

1. **Agent play** (:func:`play_agent`). The game presents the buffers in ``msa`` order (so
   action 1 everywhere is ``msa``'s line of play). ``copies`` copies of the game are stepped
   together (:class:`mallocgame._native.BatchedGames`); every move, one batched MuZero search
   over the learned model (mctx) chooses the moves of all copies: copy 0 plays greedily (its
   search has no Gumbel noise), the others sample (Gumbel noise, a different seed per round).
   The best of these games is ``agent_raw`` -- the agent alone, no heuristic and no exact
   rollouts. This phase may take ``agent_share`` (default half) of the budget: the time per
   move is measured over the first moves, and when the round would overrun its share the
   sampled copies are dropped and the greedy game finishes alone (the greedy game always
   completes); if still too slow, it plays its remaining moves with the policy network alone
   (no search), and if even that would overrun, best fit plays the rest.
2. **Improvement within the budget** (``improve_search=True``): the local search of
   :mod:`mallocgame.memory.solvers.local_search` (:func:`~.local_search.improve`), seeded with
   the best of the agent's lines, ``msa``'s line and ``msa-skip``'s line, its descents trying
   the alternatives in the order of the agent's prior; on fit-all first the exact packing
   search with the agent's layout as its branching order. ``msa-skip``'s fractions may take
   half of what is left after the agent's games (``local_search.half_of_remaining``, as in
   ``local-search``). The search stops at the deadline: the whole solve keeps its budget.
3. The result is the best valid mapping among all of these (``best``). Because ``msa``'s line
   is one of the candidates, ``best`` is never worse than ``msa``; ``agent_raw`` can be.

The summary keys (``Solution.extra``): ``agent_greedy``, ``agent_raw``, ``msa_return``,
``msa_skip_return``, ``best_return``, ``best_source`` (``agent`` | ``msa`` | ``msa-skip`` |
``improved``), ``agent_games``, ``improve_evaluations``, ``agent_wall_s``, ``improve_wall_s``,
``setup_s`` and ``split`` (the measured split of the budget: :class:`SplitSummary`).

The policy: :mod:`mallocgame.memory.solvers.policy`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from mallocgame import _native
from mallocgame.memory.env import new_batch
from mallocgame.memory.order import PACKING_ORDERS, msa_order, packing_order
from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers.local_search import (
    Line,
    beats,
    best_fit_actions,
    best_fit_line,
    half_of_remaining,
    improve,
    line_key,
    line_of,
    skip_line,
)
from mallocgame.memory.solvers.packing import pack_problem
from mallocgame.memory.solvers.policy import Agent, check_compatible, load_agent


def play_agent(
    agent: Agent,
    instance: _native.Instance,
    copies: int = 8,
    seed: int = 0,
    greedy_first: bool = True,
    cap: float | None = None,
    probe_moves: int = 16,
    stats: dict[str, Any] | None = None,
) -> list[Line]:
    """Plays ``copies`` games of ``instance`` with batched search: copy 0 greedy (if
    ``greedy_first``: its search has no exploration noise), the others sampled. Returns one
    :class:`Line` per finished copy.

    ``cap`` (a ``time.perf_counter()`` time): when, after ``probe_moves`` moves (and again every
    ``probe_moves`` moves after that), the measured time per move says the games will not end
    by ``cap`` and the agent has a search for one game compiled (:meth:`Agent.warmup`), the
    sampled copies are abandoned and the greedy game goes on alone in a batch of one (faster
    per move), so that a long game leaves time to the local search. If the greedy game alone
    still would not end by ``cap`` (measured the same way), its remaining moves are the policy
    network's most likely legal move, without search (about a network call per move); and if
    that too would not end by ``cap``, best fit plays the rest (``best_fit_from``), so that the
    game ends near ``cap`` at any size. The greedy game always finishes. ``stats`` (a dict)
    receives ``moves``, ``probe_s_per_move``, ``projected_s``, ``dropped_sampled`` (the move at
    which the sampled copies were abandoned, or None), ``prior_from`` (the move from which the
    policy network played alone, or None) and ``best_fit_from`` (the move from which best fit
    played, or None)."""
    n = int(copies)
    games = [_native.Game(instance) for _ in range(n)]
    batch, obs, legal, reward, done = new_batch(
        games, instance.observation_size, instance.num_actions
    )
    greedy = np.zeros(n, np.bool_)
    greedy[0] = bool(greedy_first)
    actions: list[list[int]] = [[] for _ in range(n)]
    b = instance.num_buffers
    probe = max(1, int(probe_moves))
    start = time.perf_counter()
    info: dict[str, Any] = {
        "moves": 0,
        "probe_s_per_move": None,
        "projected_s": None,
        "dropped_sampled": None,
        "prior_from": None,
        "best_fit_from": None,
    }
    use_prior = False
    prior_cap = cap  # the policy network alone must end by it too, else best fit finishes
    mark = (start, 0)  # (time, move) from which the current way of playing is timed
    for t in range(b):
        if done.all():
            break
        if use_prior and prior_cap is not None and t > mark[1] and (t - mark[1]) % probe == 0:
            now = time.perf_counter()
            if now + (now - mark[0]) / (t - mark[1]) * (b - t) > prior_cap:
                # even the network alone would overrun: best fit plays the remaining moves
                info["best_fit_from"] = t
                actions[0] += best_fit_actions(games[0])
                info["moves"] = len(actions[0])
                break
        if cap is not None and greedy_first and t > mark[1] and (t - mark[1]) % probe == 0:
            now = time.perf_counter()
            per_move = (now - mark[0]) / (t - mark[1])
            if info["probe_s_per_move"] is None:
                info["probe_s_per_move"] = per_move
                info["projected_s"] = per_move * b
            if now + per_move * (b - t) > cap:
                if n > 1:
                    # the round would overrun the agent's share: the greedy game goes on alone
                    info["dropped_sampled"] = t
                    games, actions = games[:1], actions[:1]
                    n = 1
                    obs, legal, reward, done, greedy = (
                        x[:1].copy() for x in (obs, legal, reward, done, greedy)
                    )
                    batch = _native.BatchedGames(games)
                    mark = (time.perf_counter(), t)
                if mark[1] != t or 1 not in agent._warm:
                    # even alone the searched game would overrun (or no search for one game is
                    # compiled, so nothing would be saved): the policy network plays on alone
                    info["prior_from"] = t
                    use_prior = True
                    cap = None
                    mark = (time.perf_counter(), t)
        search_legal = legal.copy()
        search_legal[done, 0] = (
            True  # finished games (fit-all dead ends): any row needs a legal move
        )
        if use_prior:
            act = np.argmax(np.where(search_legal, agent.prior(obs), -1.0), axis=1).astype(np.int32)
        else:
            moves_left = np.full(n, max(b - t, 1), np.int32)
            out = agent.search(
                obs,
                search_legal,
                moves_left,
                greedy=greedy,
                seed=(seed * 1_000_003 + t) & 0x7FFFFFFF,
            )
            act = np.asarray(out.action, np.int32).copy()
        bad = ~search_legal[np.arange(n), act]
        if bad.any():  # never expected: fall back to the first legal move
            act[bad] = np.argmax(search_legal[bad], axis=1)
        alive = ~done
        batch.step(act, obs, legal, reward, done)
        for i in np.flatnonzero(alive).tolist():
            actions[i].append(int(act[i]))
        info["moves"] = t + 1
    if stats is not None:
        stats.update(info)
    return [line_of(g, acts, "agent") for g, acts in zip(games, actions, strict=True)]


# --------------------------------------------------------------------------- the solver
def agent_priority(line: Line, capacity: int) -> np.ndarray:
    """Branching priority for the exact packing search from an agent's game: higher first, so
    buffers the agent placed lower come first; buffers it left unplaced come last."""
    off = np.asarray(line.offsets, dtype=np.float64)
    return np.where(off >= 0, -off, -2.0 * float(capacity) - 1.0)


def _pack_guided(problem: Problem, line: Line, time_s: float) -> tuple[Line | None, dict[str, Any]]:
    """Runs the exact packing search (:mod:`mallocgame.memory.solvers.packing`) with the agent's
    priority first (heuristic ``P``), then minimalloc's orders. Returns the packing as a
    :class:`Line` when it fits every buffer, and the search's summary."""
    r = pack_problem(
        problem, time_limit=max(0.0, time_s), priority=agent_priority(line, problem.capacity)
    )
    info = r.info()
    if not r.solved:
        return None, info
    w = problem.workload
    return (
        Line([], float(w.sizes.sum()), r.offsets, int(w.num_buffers), True, "pack", None),
        info,
    )


# Share of the budget the agent's games may take before the local search (at least the
# greedy game is always played); the local search always gets the rest of the budget.
AGENT_SHARE = 0.5
# Sampled copies cost little next to the greedy game while the batch is searched at once; a
# batch of one is compiled in setup (not counted in the budget) when the estimated round of
# games, this many times the bare search time per move, would overrun the agent's share.
_MOVE_OVERHEAD = 1.7


@dataclasses.dataclass
class SplitSummary:
    """How :func:`agent_solve` spent its budget (``extra["split"]``, written by ``mallocgame
    optimize``; :meth:`to_dict` gives its JSON keys, in this order)."""

    budget_s: float  # the budget asked for (0 when none: no local search, no cap)
    agent_share: float  # the share of the budget the agent's games may take
    agent_cap_s: float | None  # agent_share x budget, or None when nothing is capped
    agent_s: float  # seconds of the agent's games (all rounds)
    improve_s: float  # seconds of the improvement phase (packing search and local search)
    improve_ran: bool  # whether the packing search or the local search ran at all
    total_s: float  # agent_s + improve_s and the bookkeeping between them
    over_budget_s: float  # how far total_s ran past the budget (0 when within)
    agent_rounds: int  # rounds of agent games played (more than 1 only without local search)
    first_round_s: float  # seconds of the first round
    first_round_moves: int | None  # moves the first round played
    probe_s_per_move: float | None  # seconds per move measured at the first probe, if any
    projected_round_s: float | None  # that probe's projection of the whole first round
    sampled_dropped_at_move: int | None  # the move at which the sampled copies were dropped
    prior_from_move: int | None  # the move from which the policy network played alone
    estimated_round_s: float  # the setup's estimate of a round (decides the batch-of-1 compile)
    improve_steps: dict[str, dict[str, float]]  # per kind of local-search step: s, steps, gain

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def agent_solve(
    problem: Problem,
    budget: float | None = None,
    seed: int = 0,
    copies: int = 8,
    num_simulations: int | None = None,
    improve_search: bool = True,
    include_msa: bool = True,
    policy: str | os.PathLike[str] | None = None,
    agent: Agent | None = None,
    agent_share: float = AGENT_SHARE,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Solves ``problem`` (see the module doc). ``budget``: seconds of wall-clock for the whole
    solve, counted after the agent is loaded and its search compiled (``setup_s``).

    The split between the agent's games and the local search adapts to the problem: the
    agent's games may take ``agent_share`` of the budget (a round of ``copies`` games; when
    the first moves show that the round would take longer, the sampled copies are dropped and
    the greedy game goes on alone, then the network alone, then best fit: the greedy game
    always completes, near that share at any size); the local search then gets until the
    deadline (a tenth of a second at least). Without the local search
    (``improve_search=False``) further rounds of sampled games fill the budget. Returns
    ``(offsets, extra)``; ``extra["split"]`` reports the measured split
    (:meth:`SplitSummary.to_dict`)."""

    if not 0.0 < agent_share <= 1.0:
        raise ValueError(f"agent_share must be in (0, 1], got {agent_share}")
    t_setup = time.perf_counter()
    agent = agent or load_agent(policy, num_simulations)
    agent.warmup(int(copies))
    budget_s = float(budget) if budget is not None else 0.0
    split_budget = improve_search and budget_s > 0  # else: no local search, no cap
    cap_s = agent_share * budget_s if split_budget else None
    est_round_s = (
        problem.workload.num_buffers * agent.search_s.get(int(copies), 0.0) * _MOVE_OVERHEAD
    )
    if cap_s is not None and copies > 1 and est_round_s > cap_s:
        agent.warmup(1)  # the greedy game alone may be needed (see play_agent's cap)
    setup_s = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    order = msa_order(problem)
    instance = problem.instance(order)
    check_compatible(agent, instance)
    obj = problem.objective
    deadline = t0 + budget_s

    round_stats: dict[str, Any] = {}
    lines = play_agent(
        agent,
        instance,
        copies=copies,
        seed=seed,
        cap=None if cap_s is None else t0 + cap_s,
        stats=round_stats,
    )
    for ln in lines:
        ln.instance = instance
    agent_games = len(lines)
    greedy = lines[0]
    rnd = 1
    first_round_s = time.perf_counter() - t0
    # Without the improvement search, spend the budget on more sampled agent games.
    while (
        not improve_search and budget is not None and time.perf_counter() + first_round_s < deadline
    ):
        more = play_agent(
            agent, instance, copies=copies, seed=seed + 7919 * rnd, greedy_first=False
        )
        lines += more
        agent_games += len(more)
        rnd += 1
    agent_best = max(lines, key=lambda ln: line_key(obj, ln.ret, ln.solved))
    agent_wall = time.perf_counter() - t0

    msa_line = best_fit_line(instance, "msa")
    skip_until = half_of_remaining(deadline) if split_budget else None
    skip = skip_line(instance, msa_line.ret, skip_until) if include_msa else None

    # the start lines, best first (on a tie the agent's before the heuristics')
    heuristics = [ln for ln in (msa_line, skip) if ln is not None] if include_msa else []
    candidates = sorted(lines + heuristics, key=lambda ln: ln.key(obj), reverse=True)
    if obj == "fit-all":
        # Packing lives or dies by the order: also start from the classic packing orders
        # (size, area = size x lifetime, lifetime; each descending), played with best fit.
        w = problem.workload
        for kind in PACKING_ORDERS:
            o = packing_order(kind, w.sizes, w.starts, w.ends)
            candidates.append(best_fit_line(problem.instance(o), "improved"))
        candidates.sort(key=lambda ln: ln.key(obj), reverse=True)
    best = candidates[0]
    evaluations = 0
    improve_s = 0.0
    improve_ran = False
    packed: dict[str, Any] | None = None
    improve_steps: dict[str, Any] = {}
    if split_budget:
        t_imp = time.perf_counter()
        # The budget is the limit: the agent's games end near their share (play_agent's
        # cap), so the search has the rest; a few tenths at least when they overran.
        improve_deadline = max(deadline, t_imp + 0.1)
        if obj == "fit-all" and not best.solved and improve_deadline > t_imp:
            # Fit-all: an exact packing search (minimalloc's canonical DFS) whose branching
            # is ordered by the agent's layout first -- buffers the agent put lower go first.
            found, packed = _pack_guided(problem, agent_best, improve_deadline - t_imp)
            improve_ran = True
            if found is not None:
                best = found
        if not (obj == "fit-all" and best.solved) and improve_deadline > time.perf_counter():
            found, evaluations = improve(
                agent, problem, order, candidates[:3], improve_deadline, seed, stats=improve_steps
            )
            improve_ran = True
            if beats(line_key(obj, found.ret, found.solved), line_key(obj, best.ret, best.solved)):
                best = found
        improve_s = time.perf_counter() - t_imp
    total_s = time.perf_counter() - t0
    split = SplitSummary(
        budget_s=budget_s,
        agent_share=agent_share,
        agent_cap_s=cap_s,
        agent_s=agent_wall,
        improve_s=improve_s,
        improve_ran=improve_ran,
        total_s=total_s,
        over_budget_s=max(0.0, total_s - budget_s),
        agent_rounds=rnd,
        first_round_s=first_round_s,
        first_round_moves=round_stats.get("moves"),
        probe_s_per_move=round_stats.get("probe_s_per_move"),
        projected_round_s=round_stats.get("projected_s"),
        sampled_dropped_at_move=round_stats.get("dropped_sampled"),
        prior_from_move=round_stats.get("prior_from"),
        estimated_round_s=est_round_s,
        improve_steps=improve_steps,
    )
    extra: dict[str, Any] = {
        "return": best.ret,
        "agent_greedy": greedy.ret,
        "agent_raw": agent_best.ret,
        "msa_return": msa_line.ret,
        "msa_skip_return": skip.ret if skip is not None else msa_line.ret,
        "best_return": best.ret,
        "best_source": best.source,
        "agent_games": agent_games,
        "improve_evaluations": evaluations,
        "agent_wall_s": agent_wall,
        "improve_wall_s": improve_s,
        "setup_s": setup_s,
        "split": split.to_dict(),
        "policy": str(agent.path) if agent.path else None,
    }
    if obj == "fit-all":
        extra.update(
            pack_search=packed,
            agent_raw_solved=agent_best.solved,
            msa_solved=msa_line.solved,
            agent_raw_placed=agent_best.placed,
            msa_placed=msa_line.placed,
        )
    extra["order"] = np.asarray(best.instance.order()) if best.instance is not None else order
    return best.offsets, extra


def solve(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``agent`` solver: :func:`agent_solve` with ``time_limit`` (default 1 s) as the budget
    and a seed drawn from ``rng``."""
    seed = int(rng.integers(0, 2**31 - 1))
    offsets, extra = agent_solve(
        problem, budget=time_limit if time_limit is not None else 1.0, seed=seed
    )
    extra.pop("order", None)
    return offsets, extra
