"""The ``agent`` solver: the trained MuZero agent plays the mallocGame, then keeps improving.

How one problem is solved (:func:`agent_solve`):

1. **Agent play.** The game presents the buffers in ``msa`` order (so action 1 everywhere is
   ``msa``'s line of play). ``copies`` copies of the game are stepped together
   (:class:`mallocgame._native.BatchedGames`); every move, one batched MuZero search over the
   learned model (mctx) chooses the moves of all copies: copy 0 plays greedily (its search
   has no Gumbel noise), the others sample (Gumbel noise, a different seed per round). The
   best of these games is ``agent_raw`` -- the agent alone, no heuristic and no exact
   rollouts. This phase may take ``agent_share`` (default half) of the budget: the time per
   move is measured over the first moves, and when the round would overrun its share the
   sampled copies are dropped and the greedy game finishes alone (the greedy game always
   completes).
2. **Improvement within the budget** (``improve=True``): a local search over lines of play
   seeded with the best of the agent's lines, ``msa``'s line and ``msa-skip``'s line (msa's
   order, the lowest-density buffers left slow; :mod:`mallocgame.memory.solvers`) (:func:`improve`). Two kinds of step
   take turns: *descents* -- along a line, at each turn the alternatives are tried in the order
   of the agent's prior (its policy network at that state), each judged exactly by finishing
   the game with best fit in the native core (``clone`` + ``play_best_fit``), and adopted when
   it beats the line; first the agent's lines, then random kicks of the best line -- and
   *reorderings* of the presentation order played with best fit (a buffer left slow cannot
   come back later in a line, so the order bounds what a line can reach). The time goes to
   the kind that has raised the best line more per second, each keeping at least a third. It
   stops at the deadline, and runs for at least ``(1 - agent_share)`` of the budget even when
   the greedy game ran past its share. The greedy game keeps to its share on large workloads
   by dropping the sampled copies and then, if still too slow, playing its remaining moves
   with the policy network alone (no search).
3. The result is the best valid mapping among all of these (``best``). Because ``msa``'s line
   is one of the candidates, ``best`` is never worse than ``msa``; ``agent_raw`` can be.

The summary keys (``Solution.extra``): ``agent_greedy``, ``agent_raw``, ``msa_return``,
``msa_skip_return``, ``best_return``, ``best_source`` (``agent`` | ``msa`` | ``msa-skip`` |
``improved``), ``agent_games``,
``improve_evaluations``, ``agent_wall_s``, ``improve_wall_s``, ``setup_s`` and ``split`` (the
measured split of the budget: ``agent_s``, ``improve_s``, ``improve_ran``, ``agent_cap_s``,
``total_s``, ``over_budget_s``, the first round's probe, whether its sampled copies were
dropped and from which move, if any, the greedy game went on without search:
``prior_from_move``, when even alone its searched moves would overrun the agent's share).

The policy comes from ``$MALLOCGAME_POLICY`` if set, else the agent shipped in
``mallocgame/memory/pretrained/policy.npz``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError, MallocGameError
from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers import msa_order, register_solver

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
PRETRAINED_POLICY = PRETRAINED_DIR / "policy.npz"


def policy_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The policy to load: ``path``, else ``$MALLOCGAME_POLICY``, else the shipped one."""
    if path is not None:
        return Path(path)
    env = os.environ.get("MALLOCGAME_POLICY")
    return Path(env) if env else PRETRAINED_POLICY


def _enable_compilation_cache() -> None:
    """Keep jitted searches on disk so that a second run does not compile again — only when
    ``MALLOCGAME_JAX_CACHE=1``: JAX's persistent cache is process-wide, and a cache hit skips
    XLA's passes and so the dump files that workload extraction reads (a later `extract` in the
    same process would fail)."""
    if os.environ.get("MALLOCGAME_JAX_CACHE") != "1":
        return
    try:
        import jax

        from mallocgame.io import cache_dir

        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception:  # an old jax or a read-only home: compile every time
        pass


class Agent:
    """A loaded policy: batched search (``search``) and the policy prior (``prior``)."""

    def __init__(self, policy: Any, path: Path | None = None):
        import jax

        self.policy = policy
        self.path = path
        self.num_actions = int(policy.num_actions)
        self.observation_size = int(policy.observation_size)
        nets = policy.networks
        self._warm: set[int] = set()
        self.search_s: dict[int, float] = {}  # batch -> seconds per search call, once compiled
        self._prior = jax.jit(
            lambda params, obs: jax.nn.softmax(nets.initial_inference(params, obs).policy_logits)
        )

    @classmethod
    def from_trainer(cls, trainer: Any) -> Agent:
        """An agent over a live :class:`agent.trainer.Trainer`'s current parameters."""
        from agent.trainer import Policy

        return cls(Policy(trainer.networks, trainer.state.params, trainer.config.search, {}))

    def warmup(self, batch: int) -> float:
        """Compiles the search for ``batch`` games (and the prior) and measures a compiled
        search (``search_s[batch]``); returns the seconds spent."""
        if batch in self._warm:
            return 0.0
        t = time.perf_counter()
        obs = np.zeros((batch, self.observation_size), np.float32)
        legal = np.ones((batch, self.num_actions), np.bool_)
        moves = np.full(batch, 8, np.int32)
        self.search(obs, legal, moves, greedy=False, seed=0)
        self.prior(obs[:1])
        t1 = time.perf_counter()
        for i in range(3):
            self.search(obs, legal, moves, greedy=False, seed=i + 1)
        self.search_s[batch] = (time.perf_counter() - t1) / 3
        self._warm.add(batch)
        return time.perf_counter() - t

    def search(
        self, obs: np.ndarray, legal: np.ndarray, moves_left: np.ndarray, greedy: bool, seed: int
    ):
        return self.policy.search(obs, legal, moves_left, greedy=greedy, seed=seed)

    def prior(self, obs: np.ndarray) -> np.ndarray:
        """float32[N, A] policy-network probabilities (no search)."""
        return np.asarray(
            self._prior(
                self.policy.params, np.asarray(obs, np.float32).reshape(-1, self.observation_size)
            )
        )


_AGENTS: dict[tuple[str, int | None], Agent] = {}


def load_agent(
    path: str | os.PathLike[str] | None = None, num_simulations: int | None = None
) -> Agent:
    """Loads (once per process) the policy at :func:`policy_path`."""
    p = policy_path(path)
    key = (str(p.resolve()) if p.exists() else str(p), num_simulations)
    if key in _AGENTS:
        return _AGENTS[key]
    if not p.exists():
        raise MallocGameError(
            f"no trained agent at {p}: train one with `mallocgame train` and pass --policy, "
            "or set MALLOCGAME_POLICY"
        )
    _enable_compilation_cache()
    from agent.trainer import load_policy

    try:
        policy = load_policy(p, num_simulations=num_simulations)
    except (ValueError, KeyError, OSError) as e:
        raise InputError(f"not an agent checkpoint: {e}", str(p)) from None
    agent = Agent(policy, p)
    _AGENTS[key] = agent
    return agent


def check_compatible(agent: Agent, instance: Any) -> None:
    if (instance.observation_size, instance.num_actions) != (
        agent.observation_size,
        agent.num_actions,
    ):
        raise InputError(
            f"the agent was trained on observations of {agent.observation_size} values and "
            f"{agent.num_actions} actions, this game has {instance.observation_size} and "
            f"{instance.num_actions} (use the same number of candidates, K = {agent.num_actions - 1})",
            field="num_candidates",
        )


# --------------------------------------------------------------------------- agent play
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
    instance: Any = None

    def key(self, objective: str) -> tuple:
        return _key(objective, self.ret, self.solved)


def _offsets(game: Any) -> np.ndarray:
    off = np.array(game.offsets(), dtype=np.int64)
    off[off < 0] = -1
    return off


def _line_of(game: Any, actions: list[int], source: str, ret: float | None = None) -> Line:
    off = _offsets(game)
    return Line(
        list(actions),
        float(game.return_so_far if ret is None else ret),
        off,
        int((off >= 0).sum()),
        bool(game.solved),
        source,
        game.instance,
    )


def play_agent(
    agent: Agent,
    instance: Any,
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
    network's most likely legal move, without search (about a network call per move). The
    greedy game always finishes. ``stats`` (a dict) receives ``moves``, ``probe_s_per_move``,
    ``projected_s``, ``dropped_sampled`` (the move at which the sampled copies were abandoned,
    or None) and ``prior_from`` (the move from which the policy network played alone, or
    None)."""
    from mallocgame import _native
    from mallocgame.memory.env import new_batch

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
    }
    use_prior = False
    mark = (start, 0)  # (time, move) from which the current way of playing is timed
    for t in range(b):
        if done.all():
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
    return [_line_of(g, acts, "agent") for g, acts in zip(games, actions, strict=True)]


def best_fit_actions(game: Any) -> list[int]:
    """Finishes ``game`` in place with best fit (action 1 if legal, else 0); its moves."""
    acts = []
    while not game.done:
        m = game.legal_mask()
        if m[1]:
            act = 1
        elif m[0]:
            act = 0
        else:
            break
        game.step(act)
        acts.append(act)
    return acts


def best_fit_line(instance: Any, source: str) -> Line:
    """The :class:`Line` of playing ``instance`` with best fit from the start (for ``msa``'s
    order: ``msa``'s line)."""
    from mallocgame import _native

    game = _native.Game(instance)
    return _line_of(game, best_fit_actions(game), source)


def skip_line(instance: Any, msa_ret: float) -> Line | None:
    """The ``msa-skip`` heuristic's line in ``instance``'s order (best fit with the lowest-density
    buffers left slow, the fraction picked by the cost model), or None when it does not beat
    ``msa_ret`` (msa's line is then as good) or the objective is fit-all."""
    from mallocgame.memory.solvers import best_skip_game

    if instance.objective != "time":
        return None
    game, acts, q = best_skip_game(instance)
    return (
        _line_of(game, acts, "msa-skip") if q > 0 and game.return_so_far > msa_ret + 1e-12 else None
    )


def _key(objective: str, ret: float, solved: bool) -> tuple:
    # fit-all: solved first, then bytes placed (= the return); time: the return
    return (solved, ret) if objective == "fit-all" else (ret,)


def _beats(a: tuple, b: tuple) -> bool:
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
        from mallocgame import _native

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
            key = _key(imp.objective, ret, bool(c.solved))
            if _beats(key, self.key):
                c2 = g.clone()
                c2.step(a)
                self.acts = self.acts[:t] + [a] + best_fit_actions(c2)
                self.line = _line_of(c2, self.acts, "improved")
                self.key = key
                self.improved = True
                break
            if not imp.time_left():
                return  # the turn is not finished: the pass resumes here if time is given
        g.step(self.acts[t])
        self.t = t + 1


class Improver:
    """The local search's moves (the module doc, step 2).

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

    def _alternatives(self, game: Any, current: int) -> list[int]:
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
        from mallocgame import _native

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
        return _line_of(g, acts, "improved")

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
            if _beats(work.line.key(obj), best.key(obj)):
                best = work.line
            if work.finished:
                work = _Pass(imp, work.line) if work.improved else None
        else:
            line = imp.reorder(around)
            if _beats(line.key(obj), around.key(obj)):
                around = line
            if _beats(line.key(obj), best.key(obj)):
                best = line
                work = _Pass(imp, line)
        spent[kind] += time.perf_counter() - t
        gain[kind] += max(0.0, best.ret - before)
        steps[kind] += 1
    if stats is not None:
        stats.update({k: {"s": spent[k], "steps": steps[k], "gain": gain[k]} for k in spent})
    return best, imp.evaluations


# --------------------------------------------------------------------------- the solver
def _packing_orders(problem: Problem) -> list[np.ndarray]:
    w = problem.workload
    dur = w.ends - w.starts
    ids = np.arange(w.num_buffers)
    return [
        np.lexsort(keys).astype(np.int64)
        for keys in (
            (ids, w.starts, -dur, -w.sizes),
            (ids, w.starts, -w.sizes, -(w.sizes * dur)),
            (ids, w.starts, -w.sizes, -dur),
        )
    ]


def agent_priority(line: Line, capacity: int) -> np.ndarray:
    """Branching priority for the exact packing search from an agent's game: higher first, so
    buffers the agent placed lower come first; buffers it left unplaced come last."""
    off = np.asarray(line.offsets, dtype=np.float64)
    return np.where(off >= 0, -off, -2.0 * float(capacity) - 1.0)


def _pack_guided(problem: Problem, line: Line, time_s: float) -> tuple[Line | None, dict[str, Any]]:
    """Runs the exact packing search (``mallocgame.memory.solvers.packing``) with the agent's priority first
    (heuristic ``P``), then minimalloc's orders. Returns the packing as a :class:`Line` when
    it fits every buffer, and the search's summary."""
    from mallocgame.memory.solvers.packing import pack_problem

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
    the greedy game goes on alone). The greedy game always completes, even past that share;
    the local search then gets until the deadline, and at least ``(1 - agent_share) x budget``
    (so a game longer than the agent's share makes the solve run over the budget, never
    the local search vanish). Without the local search (``improve_search=False``) further
    rounds of sampled games fill the budget. Returns ``(offsets, extra)``; ``extra["split"]``
    reports the measured split."""

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
    agent_best = max(lines, key=lambda ln: _key(obj, ln.ret, ln.solved))
    agent_wall = time.perf_counter() - t0

    msa_line = best_fit_line(instance, "msa")
    skip = skip_line(instance, msa_line.ret) if include_msa else None

    # the start lines, best first (on a tie the agent's before the heuristics')
    heuristics = [ln for ln in (msa_line, skip) if ln is not None] if include_msa else []
    candidates = sorted(lines + heuristics, key=lambda ln: ln.key(obj), reverse=True)
    if obj == "fit-all":
        # Packing lives or dies by the order: also start from the classic packing orders
        # (size, area = size x lifetime, lifetime; each descending), played with best fit.
        for o in _packing_orders(problem):
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
        improve_deadline = max(deadline, t_imp + (1.0 - agent_share) * budget_s)
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
            if _beats(_key(obj, found.ret, found.solved), _key(obj, best.ret, best.solved)):
                best = found
        improve_s = time.perf_counter() - t_imp
    total_s = time.perf_counter() - t0
    split = {
        "budget_s": budget_s,
        "agent_share": agent_share,
        "agent_cap_s": cap_s,
        "agent_s": agent_wall,
        "improve_s": improve_s,
        "improve_ran": improve_ran,
        "total_s": total_s,
        "over_budget_s": max(0.0, total_s - budget_s),
        "agent_rounds": rnd,
        "first_round_s": first_round_s,
        "first_round_moves": round_stats.get("moves"),
        "probe_s_per_move": round_stats.get("probe_s_per_move"),
        "projected_round_s": round_stats.get("projected_s"),
        "sampled_dropped_at_move": round_stats.get("dropped_sampled"),
        "prior_from_move": round_stats.get("prior_from"),
        "estimated_round_s": est_round_s,
        "improve_steps": improve_steps,
    }
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
        "split": split,
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


def _solver(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    seed = int(rng.integers(0, 2**31 - 1))
    offsets, extra = agent_solve(
        problem, budget=time_limit if time_limit is not None else 1.0, seed=seed
    )
    extra.pop("order", None)
    return offsets, extra


register_solver("agent", _solver)


def _local_search(problem: Problem, rng: np.random.Generator, time_limit: float | None):
    """The ablation of ``agent``: the same local search (:func:`improve`) from the heuristics'
    lines alone (``msa``'s and ``msa-skip``'s), for the whole time limit, with no agent games
    and no policy ordering the moves."""
    t0 = time.perf_counter()
    order = msa_order(problem)
    instance = problem.instance(order)
    starts = [best_fit_line(instance, "msa")]
    skip = skip_line(instance, starts[0].ret)
    if skip is not None:
        starts.append(skip)
    seed = int(rng.integers(0, 2**31 - 1))
    budget = 1.0 if time_limit is None else float(time_limit)
    steps: dict[str, Any] = {}
    best, evaluations = improve(
        None, problem, order, starts, t0 + budget, seed, use_prior=False, stats=steps
    )
    return best.offsets, {
        "return": best.ret,
        "improve_evaluations": evaluations,
        "improve_steps": steps,
    }


register_solver("local-search", _local_search)
