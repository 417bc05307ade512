"""The local search over lines of play: the second half of the ``agent`` solver and, on its
own, the agent-free ``local-search`` solver (:func:`solve`).

:func:`improve` searches from start lines (the agent's, ``msa``'s, ``msa-skip``'s: msa's order,
the lowest-density buffers left slow; :mod:`mallocgame.memory.solvers.heuristics`). Two kinds of
step take turns: *descents* -- along a line, at each turn the alternatives are tried (in the
order of the agent's prior at that state, when there is an agent), each judged exactly by
finishing the game with best fit in the native core (``clone`` + ``play_best_fit``), and adopted
when it beats the line; first the start lines, then random kicks of the best line -- and
*reorderings* of the presentation order played with best fit (a buffer left slow cannot come
back later in a line, so the order bounds what a line can reach). The time goes to the kind that
has raised the best line more per second, each keeping at least a third (``MIN_SHARE``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from mallocgame import _native
from mallocgame.memory.order import msa_order
from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers.heuristics import SKIP_FRACTIONS, best_fit_moves, best_skip_game
from mallocgame.memory.solvers.policy import Agent


# --------------------------------------------------------------------------- lines
@dataclasses.dataclass
class Line:
    """One played game: its moves, its return and the mapping (-1 slow / unplaced), with the
    game instance (presentation order) it was played in."""

    actions: list[int]
    ret: float
    offsets: np.ndarray
    placed: int
    solved: bool
    source: str
    instance: _native.Instance | None = None

    def key(self, objective: str) -> tuple:
        return line_key(objective, self.ret, self.solved)


def offsets_of(game: _native.Game) -> np.ndarray:
    off = np.array(game.offsets(), dtype=np.int64)
    off[off < 0] = -1
    return off


def line_of(game: _native.Game, actions: list[int], source: str, ret: float | None = None) -> Line:
    off = offsets_of(game)
    return Line(
        list(actions),
        float(game.return_so_far if ret is None else ret),
        off,
        int((off >= 0).sum()),
        bool(game.solved),
        source,
        game.instance,
    )


def best_fit_actions(game: _native.Game) -> list[int]:
    """Finishes ``game`` in place with best fit (action 1 if legal, else 0; a fit-all game stops
    at a dead end); its moves. Played in C++: a move of best fit is fast exactly when its
    buffer ends with an offset."""
    first = game.turn
    game.play_best_fit()
    return best_fit_moves(game, first)


def best_fit_line(instance: _native.Instance, source: str) -> Line:
    """The :class:`Line` of playing ``instance`` with best fit from the start (for ``msa``'s
    order: ``msa``'s line)."""
    game = _native.Game(instance)
    return line_of(game, best_fit_actions(game), source)


def half_of_remaining(deadline: float) -> float:
    """The time halfway between now and ``deadline`` (``time.perf_counter()`` times): how long
    the ``msa-skip`` start may take before the local search, in ``local-search`` and ``agent``
    alike, so that it never eats the whole budget of a large program."""
    now = time.perf_counter()
    return now + 0.5 * max(0.0, deadline - now)


def skip_line(
    instance: _native.Instance, msa_ret: float, deadline: float | None = None
) -> Line | None:
    """The ``msa-skip`` heuristic's line in ``instance``'s order (best fit with the lowest-density
    buffers left slow, the fraction picked by the cost model), or None when it does not beat
    ``msa_ret`` (msa's line is then as good) or the objective is fit-all. ``deadline``: see
    :func:`~mallocgame.memory.solvers.heuristics.best_skip_game`."""
    if instance.objective != "time":
        return None
    # fraction 0 is msa's own line, which the caller has: only the others are played
    game, acts, q = best_skip_game(instance, deadline, tuple(f for f in SKIP_FRACTIONS if f > 0))
    return (
        line_of(game, acts, "msa-skip") if q > 0 and game.return_so_far > msa_ret + 1e-12 else None
    )


def line_key(objective: str, ret: float, solved: bool) -> tuple:
    # fit-all: solved first, then bytes placed (= the return); time: the return
    return (solved, ret) if objective == "fit-all" else (ret,)


def beats(a: tuple, b: tuple) -> bool:
    """``a`` strictly better than ``b`` (returns compared with a 1e-12 tolerance)."""
    if a[:-1] != b[:-1]:
        return a[:-1] > b[:-1]
    return a[-1] > b[-1] + 1e-12


# --------------------------------------------------------------------------- improvement
class _Pass:
    """One first-improvement pass along a line, advanced one turn per :meth:`step`: at the
    turn, the other legal moves are tried in the order of the agent's prior, each judged by
    finishing the game with best fit; the first that beats the line is adopted (the rest of
    the line becomes best fit from there) and the pass goes on at the next turn."""

    def __init__(self, imp: Improver, line: Line):
        self.imp = imp
        self.line = line
        self.game = _native.Game(line.instance)
        self.acts = list(line.actions)
        self.key = line.key(imp.objective)
        self.t = 0
        self.improved = False

    @property
    def finished(self) -> bool:
        return self.t >= len(self.acts) or bool(self.game.done)

    def step(self) -> None:
        imp, g = self.imp, self.game
        if self.finished:
            return
        t = self.t
        for a in imp._alternatives(g, self.acts[t]):
            c = g.clone()
            c.step(a)
            ret = c.return_so_far + (c.play_best_fit() if not c.done else 0.0)
            imp.evaluations += 1
            key = line_key(imp.objective, ret, bool(c.solved))
            if beats(key, self.key):
                c2 = g.clone()
                c2.step(a)
                self.acts = self.acts[:t] + [a] + best_fit_actions(c2)
                self.line = line_of(c2, self.acts, "improved")
                self.key = key
                self.improved = True
                break
            if not imp.time_left():
                return  # the turn is not finished: the pass resumes here if time is given
        g.step(self.acts[t])
        self.t = t + 1


class Improver:
    """The local search's moves (see the module doc).

    - :class:`_Pass` (``descend``): first-improvement passes along a line, judged exactly.
    - ``kick(line)``: a few random moves changed at a random turn, finished with best fit
      (then descended: iterated local search).
    - ``reorder(line)``: the presentation order perturbed (multiplicative log-normal noise on
      the ranks, as the ``restarts`` baseline does around msa's order, here around the order
      of ``line`` or of msa), finished with best fit. The game's order fixes what one line of
      moves can express (a buffer left slow cannot come back later), so the search also moves
      between orders.
    """

    def __init__(
        self,
        agent: Agent | None,
        problem: Problem,
        base_order: np.ndarray,
        deadline: float,
        rng: np.random.Generator,
        use_prior: bool = True,
    ):
        self.agent = agent
        self.problem = problem
        self.objective = problem.objective
        self.base_order = np.asarray(base_order)
        self.deadline = deadline
        self.rng = rng
        self.use_prior = use_prior and agent is not None
        self.evaluations = 0
        self._obs: np.ndarray | None = None

    def time_left(self) -> bool:
        return time.perf_counter() < self.deadline

    def _alternatives(self, game: _native.Game, current: int) -> list[int]:
        legal = np.asarray(game.legal_mask())
        cand = [a for a in np.flatnonzero(legal).tolist() if a != current]
        if len(cand) > 1 and self.use_prior:
            if self._obs is None or self._obs.shape[0] != game.instance.observation_size:
                self._obs = np.zeros(game.instance.observation_size, np.float32)
            game.observe(self._obs)
            p = self.agent.prior(self._obs)[0]
            cand.sort(key=lambda a: -p[a])
        return cand

    def kick(self, line: Line) -> Line | None:
        if not line.actions:
            return None
        g = _native.Game(line.instance)
        n = len(line.actions)
        t0 = int(self.rng.integers(0, n))
        acts = list(line.actions[:t0])
        g.replay(acts)
        flips = 1 + int(self.rng.integers(0, 3))
        while not g.done and flips > 0:
            legal = np.flatnonzero(np.asarray(g.legal_mask())).tolist()
            if not legal:
                break
            cur = line.actions[len(acts)] if len(acts) < n else 1
            others = [a for a in legal if a != cur] or legal
            a = int(self.rng.choice(others))
            g.step(a)
            acts.append(a)
            flips -= 1
            for _ in range(int(self.rng.integers(0, 8))):  # a little best fit before the next flip
                if g.done:
                    break
                m = g.legal_mask()
                act = 1 if m[1] else 0
                if not m[act]:
                    break
                g.step(act)
                acts.append(act)
        acts += best_fit_actions(g)
        self.evaluations += 1
        return line_of(g, acts, "improved")

    def reorder(self, line: Line) -> Line:
        around = np.asarray(line.instance.order()) if self.rng.random() < 0.5 else self.base_order
        b = around.shape[0]
        rank = np.empty(b)
        rank[around] = np.arange(b)
        noise = self.rng.lognormal(0.0, 0.5 + self.rng.random(), size=b)
        order = np.argsort(rank * noise, kind="stable").astype(np.int64)
        self.evaluations += 1
        return best_fit_line(self.problem.instance(order), "improved")


#: the least share of the local search's time each kind of step gets (see :func:`improve`)
MIN_SHARE = 1 / 3


def improve(
    agent: Agent | None,
    problem: Problem,
    base_order: np.ndarray,
    starts: list[Line],
    deadline: float,
    seed: int = 0,
    use_prior: bool = True,
    reorder: bool = True,
    stats: dict[str, Any] | None = None,
) -> tuple[Line, int]:
    """Local search from ``starts`` until ``deadline``; returns (best line, evaluations).
    ``stats`` (a dict) receives, per kind of step, its seconds, steps and gain in return.

    Two kinds of step share the time, interleaved, so that neither waits for the other:

    - **descend**: one turn of a first-improvement pass (:class:`_Pass`) along the working
      line. The working lines are the start lines (best first), then kicks of the best line
      (iterated local search); a pass that improved its line is followed by another, a pass
      that found nothing ends that line (a local optimum). When a reordering finds a better
      line, the descent moves on to it.
    - **reorder** (``reorder=False``: never, so every line stays in the start lines' order):
      one reordering, played with best fit, of msa's order or of the order of the best line
      the reorderings themselves have found (they climb in the space of orders on their own,
      as the descents raise the best line).

    Each step is credited with how much it raised the best line's return. The next step goes
    to the kind with the higher gain per second of its own time so far (the one with less time
    on a tie), except that a kind below ``MIN_SHARE`` of the time spent goes first. So the
    split follows the problem: on a workload of a thousand buffers a pass takes seconds and
    reorderings gain more per second (``resnet50.csv`` at 50% of peak); on small workloads the
    passes find the gains. Before, each start line was descended to its local optimum before
    anything else ran, which on large workloads took the whole budget."""
    rng = np.random.default_rng(seed)
    obj = problem.objective
    imp = Improver(agent, problem, base_order, deadline, rng, use_prior)
    pending = sorted(starts, key=lambda ln: ln.key(obj), reverse=True)
    best = pending[0]
    seen: set = set()
    kinds = ["descend", "reorder"] if reorder else ["descend"]
    spent = dict.fromkeys(kinds, 0.0)
    gain = dict.fromkeys(kinds, 0.0)
    steps = dict.fromkeys(kinds, 0)
    work: _Pass | None = None
    around = best  # the reorderings' own best line: they search around its order

    def next_work() -> _Pass | None:
        while pending:
            line = pending.pop(0)
            sig = (id(line.instance), tuple(line.actions))
            if sig not in seen:
                seen.add(sig)
                return _Pass(imp, line)
        kicked = imp.kick(best)
        return None if kicked is None else _Pass(imp, kicked)

    while imp.time_left() and not (obj == "fit-all" and best.solved):
        total = sum(spent.values())
        starved = [k for k in kinds if spent[k] < MIN_SHARE * total]
        if starved:
            kind = min(starved, key=spent.__getitem__)
        else:
            kind = max(kinds, key=lambda k: (gain[k] / max(spent[k], 1e-9), -spent[k]))
        t = time.perf_counter()
        before = best.ret
        if kind == "descend":
            if work is None:
                work = next_work()
                if work is None:  # nothing to descend (a problem without moves)
                    kinds.remove("descend")
                    for d in (spent, gain, steps):
                        d.pop("descend")
                    if not kinds:
                        break
                    continue
            work.step()
            if beats(work.line.key(obj), best.key(obj)):
                best = work.line
            if work.finished:
                work = _Pass(imp, work.line) if work.improved else None
        else:
            line = imp.reorder(around)
            if beats(line.key(obj), around.key(obj)):
                around = line
            if beats(line.key(obj), best.key(obj)):
                best = line
                work = _Pass(imp, line)
        spent[kind] += time.perf_counter() - t
        gain[kind] += max(0.0, best.ret - before)
        steps[kind] += 1
    if stats is not None:
        stats.update({k: {"s": spent[k], "steps": steps[k], "gain": gain[k]} for k in spent})
    return best, imp.evaluations


# --------------------------------------------------------------------------- the solver
def solve(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ablation of ``agent``: the same local search (:func:`improve`) from the heuristics'
    lines alone (``msa``'s and ``msa-skip``'s), for the whole time limit, with no agent games
    and no policy ordering the moves."""
    t0 = time.perf_counter()
    order = msa_order(problem)
    instance = problem.instance(order)
    budget = 1.0 if time_limit is None else float(time_limit)
    starts = [best_fit_line(instance, "msa")]
    skip = skip_line(instance, starts[0].ret, half_of_remaining(t0 + budget))
    if skip is not None:
        starts.append(skip)
    seed = int(rng.integers(0, 2**31 - 1))
    steps: dict[str, Any] = {}
    best, evaluations = improve(
        None, problem, order, starts, t0 + budget, seed, use_prior=False, stats=steps
    )
    return best.offsets, {
        "return": best.ret,
        "improve_evaluations": evaluations,
        "improve_steps": steps,
    }
