"""The rank game as an :class:`agent.env.BatchedEnv`: N native rank games stepped together.

Each of the ``N`` slots plays one *task* (a :class:`~mallocgame.rank.tables.RankTables` and a
budget, as a fraction of the full attention FLOPs) drawn from a pool; a finished game is
replaced at once by a fresh game of a newly drawn task. The moves, the legal mask and the
observation are the native :class:`mallocgame._native.RankGame`'s (docs/game.md, "The rank
game"); this module builds its inputs from the tables (:func:`game_inputs`) and adds the
terminal reward, the measured calibration loss.

Rewards. Move ``t`` earns the dense proxy ``-scale * sens[t, c]`` (the loss increase measured
with part ``t`` alone lowered; ``shaping=False`` turns it off). When a game ends, its config is
measured by the task's **evaluator** (``evaluator(choice_idx int64[k, P]) -> float64[k]``,
calibration loss, lower is better) and the last move's reward is corrected so that the game's
return is exactly ``-scale * (loss - offset)``: the proxy only spreads credit over the moves,
the objective stays the measured loss. ``offset`` is the loss of the task's *uniform* config
(the same choice for every part, the largest that fits the budget), so a return above 0 beats
it; that config's return (0) is :meth:`RankEnv.baseline_return`. ``scale`` defaults to one over
the proxy's estimate of the uniform config's loss increase, which puts returns at order 1.

Every evaluation is memoised per (tables, evaluator), and every finished config is recorded per
task with its loss (:attr:`RankEnv.seen`, :meth:`RankEnv.best`), so the best config ever played
can be returned by a solver.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mallocgame.rank.tables import PART_KINDS, RankTables

Evaluator = Callable[[np.ndarray], np.ndarray]  # int64[k, P] -> float64[k]

#: per-choice features (F) and per-part features (K) of :func:`game_inputs`
CHOICE_FEATURES = ("energy", "sens", "cost_in_part", "cost_share")
PART_FEATURES = ("layer", "is_qk", "is_v", "fisher", "cost_share", "sens_mean")


def filled_sens(tables: RankTables) -> np.ndarray:
    """float64[P, C]: ``sens`` with unmeasured (NaN) entries filled from the energy lost.

    A NaN entry becomes ``(1 - energy) * ratio``, ``ratio`` being the median of ``sens / (1 -
    energy)`` over the measured entries with energy < 1 (1 when there are none)."""
    sens = np.asarray(tables.sens, np.float64)
    lost = 1.0 - np.clip(np.asarray(tables.energy, np.float64), 0.0, 1.0)
    known = np.isfinite(sens)
    use = known & (lost > 1e-6)
    ratio = float(np.median(sens[use] / lost[use])) if use.any() else 1.0
    if not np.isfinite(ratio):
        ratio = 1.0
    return np.where(known, sens, lost * ratio)


def game_inputs(tables: RankTables) -> dict[str, np.ndarray]:
    """The native game's tables: ``cost`` float64[P, C], ``features`` float32[P, C, F],
    ``part_features`` float32[P, K] and ``sens`` float64[P, C] (filled, unscaled).

    Features are of order 1 and comparable across models: ``energy`` kept; ``sens`` over the
    largest positive sens of the model; the choice's cost over the part's dearest choice; the
    choice's cost times P over the full cost (1 = an average part at full rank). Per part: the
    layer's position in [0, 1], the kind one-hot, Fisher over its maximum, the part's dearest
    cost times P over the full cost, the part's mean normalised sens.
    """
    cost = np.asarray(tables.cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"tables.cost must be 2-D (parts, choices), got shape {cost.shape}")
    P, C = cost.shape
    if P != tables.num_parts or C != len(tables.choices):
        raise ValueError(
            f"tables.cost has shape {cost.shape}, "
            f"expected ({tables.num_parts}, {len(tables.choices)})"
        )
    for name in ("energy", "sens"):
        shape = np.shape(getattr(tables, name))
        if shape != (P, C):
            raise ValueError(f"tables.{name} has shape {shape}, expected {(P, C)}")
    if np.shape(tables.fisher) != (P,):
        raise ValueError(f"tables.fisher has shape {np.shape(tables.fisher)}, expected ({P},)")
    full = float(tables.full_cost) if tables.full_cost > 0 else float(cost.max(axis=1).sum() or 1.0)
    energy = np.nan_to_num(np.clip(np.asarray(tables.energy, np.float64), 0.0, 1.0), nan=0.0)
    sens = filled_sens(tables)
    pos = sens[sens > 0]
    sens_norm = np.clip(sens / (float(pos.max()) if pos.size else 1.0), -1.0, 1.0)
    part_max = cost.max(axis=1, keepdims=True)
    in_part = np.divide(cost, part_max, out=np.zeros_like(cost), where=part_max > 0)
    features = np.stack([energy, sens_norm, in_part, cost * P / full], axis=-1)

    layers = np.array([layer for layer, _ in tables.parts], np.float64)
    kinds = [kind for _, kind in tables.parts]
    fisher = np.nan_to_num(np.asarray(tables.fisher, np.float64), nan=0.0)
    fmax = float(np.abs(fisher).max()) if fisher.size else 0.0
    part_features = np.stack(
        [
            layers / max(float(layers.max()), 1.0),
            np.array([k == PART_KINDS[0] for k in kinds], np.float64),
            np.array([k == PART_KINDS[1] for k in kinds], np.float64),
            fisher / fmax if fmax > 0 else np.zeros(P),
            part_max[:, 0] * P / full,
            sens_norm.mean(axis=1),
        ],
        axis=-1,
    )
    return {
        "cost": cost,
        "features": features.astype(np.float32),
        "part_features": part_features.astype(np.float32),
        "sens": sens,
    }


def additive_surrogate(tables: RankTables, around: np.ndarray, loss: float) -> Evaluator:
    """A free stand-in for an evaluator: ``loss + sum_p sens[p, c_p] - sum_p sens[p, around_p]``
    (the one-part-at-a-time sensitivities added up, anchored at a measured config ``around``
    whose loss is ``loss``). Unmeasured entries as in :func:`filled_sens`."""
    sens = filled_sens(tables)
    rows = np.arange(sens.shape[0])
    anchor = np.asarray(around, np.int64)
    base = float(loss) - float(sens[rows, anchor].sum())

    def surrogate(choice_idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(choice_idx, np.int64)
        return base + sens[rows, idx].sum(axis=1)

    return surrogate


def uniform_choice(cost: np.ndarray, limit: float) -> np.ndarray:
    """int64[P]: the same choice index for every part, the largest whose total fits ``limit``;
    if none fits, each part's cheapest choice."""
    cost = np.asarray(cost, np.float64)
    P, C = cost.shape
    for c in range(C - 1, -1, -1):
        if float(cost[:, c].sum()) <= limit:
            return np.full(P, c, np.int64)
    return cost.argmin(axis=1).astype(np.int64)


@dataclasses.dataclass
class RankTask:
    """One (tables, budget fraction) pair of the pool, with its own evaluator if given."""

    tables: RankTables
    budget: float
    evaluator: Evaluator | None = None
    weight: float = 1.0


class _Prepared:
    """A task with its native instance, its uniform config and that config's loss."""

    def __init__(
        self,
        task: RankTask,
        evaluator: Evaluator,
        shaping: bool,
        scale: float | None,
        tolerance: float,
    ):
        from mallocgame import _native

        self.task = task
        self.tables = task.tables
        self.evaluator = evaluator
        self.budget_fraction = float(task.budget)
        if not np.isfinite(self.budget_fraction) or self.budget_fraction <= 0:
            raise ValueError(
                f"budget must be a positive fraction of the full cost, got {task.budget}"
            )
        inputs = game_inputs(task.tables)
        self.cost = inputs["cost"]
        self.budget_flops = self.budget_fraction * float(task.tables.full_cost)
        probe = _native.RankInstance(
            self.cost,
            inputs["features"],
            inputs["part_features"],
            self.budget_flops,
            tolerance=tolerance,
        )
        self.uniform = uniform_choice(self.cost, probe.limit)
        self.sens = inputs["sens"]
        proxy = float(self.sens[np.arange(len(self.uniform)), self.uniform].sum())
        if scale is not None:
            self.scale = float(scale)
        else:
            self.scale = 1.0 / proxy if proxy > 1e-12 and np.isfinite(proxy) else 1.0
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"scale must be a positive number, got {scale}")
        penalty = (self.scale * self.sens).astype(np.float32) if shaping else None
        self.instance = _native.RankInstance(
            self.cost,
            inputs["features"],
            inputs["part_features"],
            self.budget_flops,
            penalty,
            tolerance=tolerance,
        )
        self.num_parts = self.instance.num_parts
        self.uniform_loss = float("nan")
        self.offset = 0.0

    def new_game(self):
        from mallocgame import _native

        return _native.RankGame(self.instance)


class RankEnv:
    """``num_envs`` rank games over a pool of tasks (see the module doc).

    Args:
      tables: one :class:`RankTables` (with ``budget``), or a list of :class:`RankTask` /
        ``(tables, budget)`` / ``(tables, budget, evaluator)`` items.
      budget: the budget as a fraction of the full attention FLOPs (with a single ``tables``).
      evaluator: ``evaluator(choice_idx int64[k, P]) -> float64[k]``, the calibration loss of
        each config; the default for tasks that bring none.
      num_envs: games stepped together.
      seed: seeds the task draws.
      scale: return = ``-scale * (loss - offset)``; default per task, see the module doc.
      offset: ``"uniform"`` (the uniform config's loss, default) or a number.
      shaping: dense ``-scale * sens`` move rewards, refunded at the end.
      tolerance: the game's relative budget tolerance (default 1e-12, as the rank solvers'
        check ``fraction <= budget + 1e-12``).
    """

    def __init__(
        self,
        tables: RankTables | Sequence[Any],
        budget: float | None = None,
        *,
        evaluator: Evaluator | None = None,
        num_envs: int = 16,
        seed: int = 0,
        scale: float | None = None,
        offset: str | float = "uniform",
        shaping: bool = True,
        tolerance: float = 1e-12,
    ) -> None:
        tasks = _tasks(tables, budget)
        self.num_envs = int(num_envs)
        if self.num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.pool: list[_Prepared] = []
        for i, task in enumerate(tasks):
            ev = task.evaluator if task.evaluator is not None else evaluator
            if ev is None or not callable(ev):
                raise ValueError(f"task {i} has no evaluator: pass evaluator=... (a callable)")
            self.pool.append(_Prepared(task, ev, shaping, scale, tolerance))
        sizes = {(p.instance.observation_size, p.instance.num_actions) for p in self.pool}
        if len(sizes) != 1:
            raise ValueError(
                f"tasks differ in observation size / number of choices: {sorted(sizes)} "
                "(use the same number of rank choices)"
            )
        ((self.observation_size, self.num_actions),) = sizes
        w = np.array([t.weight for t in tasks], np.float64)
        if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(f"task weights must be >= 0 with a positive sum, got {w.tolist()}")
        self.weights = w / w.sum()
        self.rng = np.random.default_rng(seed)
        self._memo: dict[tuple[int, int], dict[tuple[int, ...], float]] = {}
        #: per task: every config played to the end (and every config passed to
        #: :meth:`evaluate` with ``record=True``) -> its loss
        self.seen: list[dict[tuple[int, ...], float]] = [{} for _ in self.pool]
        self.evaluations = 0  # configs measured by an evaluator (memo misses)
        self.games = 0  # games finished
        for k, p in enumerate(self.pool):
            p.uniform_loss = float(self.evaluate(k, p.uniform[None, :], record=False)[0])
            if offset == "uniform":
                p.offset = p.uniform_loss
            elif isinstance(offset, (int, float)) and np.isfinite(offset):
                p.offset = float(offset)
            else:
                raise ValueError(f"offset must be 'uniform' or a finite number, got {offset!r}")
        n = self.num_envs
        self._obs = np.zeros((n, self.observation_size), np.float32)
        self._legal = np.zeros((n, self.num_actions), np.bool_)
        self._reward = np.zeros(n, np.float32)
        self._done = np.zeros(n, np.bool_)
        self._proxy = np.zeros(n, np.float64)  # dense rewards of the current game so far
        self._slot_task = np.zeros(n, np.int64)
        self._baseline = np.zeros(n, np.float32)
        self._games: list[Any] = [None] * n
        self._batch: Any = None
        #: (task, loss, return) of every finished game, in order
        self.finished: list[tuple[int, float, float]] = []

    # ------------------------------------------------------------------ protocol
    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        for i in range(self.num_envs):
            self._new_game(i)
        self._rebatch()
        return self._obs.copy(), self._legal.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._batch is None:
            raise RuntimeError("call reset() before step()")
        actions = np.ascontiguousarray(actions, dtype=np.int32)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        self._batch.step(actions, self._obs, self._legal, self._reward, self._done)
        reward = self._reward.astype(np.float64)
        self._proxy += reward
        done = self._done.copy()
        ended = np.flatnonzero(done)
        if ended.size:
            choices = self._batch.choices()
            losses = np.zeros(ended.size)
            for k in np.unique(self._slot_task[ended]).tolist():
                rows = np.flatnonzero(self._slot_task[ended] == k)
                p = self.pool[k].num_parts
                losses[rows] = self.evaluate(k, choices[ended[rows], :p])
            for j, i in enumerate(ended.tolist()):
                task = self.pool[int(self._slot_task[i])]
                ret = -task.scale * (losses[j] - task.offset)
                # the last move's reward makes the game's return exactly `ret`
                reward[i] += ret - self._proxy[i]
                self.finished.append((int(self._slot_task[i]), float(losses[j]), float(ret)))
                self.games += 1
            rebatch = False
            for i in ended.tolist():
                rebatch |= self._new_game(i)
            if rebatch:
                self._rebatch()
            else:
                self._batch.observe(self._obs, self._legal, self._done)
        return self._obs.copy(), self._legal.copy(), reward.astype(np.float32), done

    def moves_left(self) -> np.ndarray:
        return np.maximum(self._batch.moves_left(), 1).astype(np.int32)

    def baseline_return(self) -> np.ndarray:
        return self._baseline.copy()

    # ------------------------------------------------------------------ measurements
    def evaluate(self, task: int, choice_idx: np.ndarray, record: bool = True) -> np.ndarray:
        """float64[k]: the losses of configs ``int64[k, P]`` of ``task`` (memoised; the
        configs must fit the task's budget). ``record`` adds them to :attr:`seen`."""
        if not 0 <= task < len(self.pool):
            raise IndexError(f"task {task} out of range [0, {len(self.pool)})")
        p = self.pool[task]
        idx = np.asarray(choice_idx, np.int64)
        if idx.ndim != 2 or idx.shape[1] != p.num_parts:
            raise ValueError(f"configs must have shape (k, {p.num_parts}), got {idx.shape}")
        C = p.cost.shape[1]
        if idx.size and (idx.min() < 0 or idx.max() >= C):
            raise ValueError(f"choice indices must be in [0, {C}), got {idx.min()}..{idx.max()}")
        spent = p.cost[np.arange(p.num_parts), idx].sum(axis=1)
        over = np.flatnonzero(spent > p.instance.limit)
        if over.size:
            raise ValueError(
                f"config {idx[over[0]].tolist()} costs {spent[over[0]]:.6g} FLOPs, over the "
                f"budget {p.budget_flops:.6g} of task {task}"
            )
        memo = self._memo.setdefault((id(p.evaluator), id(p.tables)), {})
        keys = [tuple(row) for row in idx.tolist()]
        missing = list(dict.fromkeys(k for k in keys if k not in memo))
        if missing:
            got = np.asarray(p.evaluator(np.array(missing, np.int64)), np.float64)
            if got.shape != (len(missing),):
                raise ValueError(
                    f"the evaluator returned shape {got.shape} for {len(missing)} configs"
                )
            if not np.isfinite(got).all():
                bad = int(np.flatnonzero(~np.isfinite(got))[0])
                raise ValueError(
                    f"the evaluator returned {got[bad]} for config {list(missing[bad])}"
                )
            memo.update(zip(missing, got.tolist(), strict=True))
            self.evaluations += len(missing)
        out = np.array([memo[k] for k in keys], np.float64)
        if record:
            self.seen[task].update(zip(keys, out.tolist(), strict=True))
        return out

    def best(self, task: int = 0) -> tuple[np.ndarray, float]:
        """The best config recorded for ``task`` and its loss (the uniform config if none)."""
        p = self.pool[task]
        if not self.seen[task]:
            return p.uniform.copy(), p.uniform_loss
        key = min(self.seen[task], key=self.seen[task].__getitem__)
        return np.array(key, np.int64), self.seen[task][key]

    def task(self, k: int) -> _Prepared:
        return self.pool[k]

    # ------------------------------------------------------------------ internals
    def _new_game(self, i: int) -> bool:
        """Starts a new game in slot i; True when the slot needs a new game object."""
        k = int(self.rng.choice(len(self.pool), p=self.weights)) if len(self.pool) > 1 else 0
        fresh = self._games[i] is None or int(self._slot_task[i]) != k
        self._slot_task[i] = k
        if fresh:
            self._games[i] = self.pool[k].new_game()
        else:
            self._games[i].reset()
        self._proxy[i] = 0.0
        p = self.pool[k]
        self._baseline[i] = -p.scale * (p.uniform_loss - p.offset)
        return fresh

    def _rebatch(self) -> None:
        from mallocgame import _native

        self._batch = _native.BatchedRankGames(self._games)
        self._batch.observe(self._obs, self._legal, self._done)


def _tasks(tables: Any, budget: float | None) -> list[RankTask]:
    if isinstance(tables, RankTables):
        if budget is None:
            raise ValueError("pass budget= (a fraction of the full attention FLOPs)")
        return [RankTask(tables, float(budget))]
    if budget is not None:
        raise ValueError("budget= goes with a single RankTables; a pool carries its own budgets")
    out = []
    for item in tables:
        if isinstance(item, RankTask):
            out.append(item)
        elif isinstance(item, tuple) and 2 <= len(item) <= 3 and isinstance(item[0], RankTables):
            out.append(RankTask(item[0], float(item[1]), item[2] if len(item) == 3 else None))
        else:
            raise ValueError(
                f"a pool item must be a RankTask or (tables, budget[, evaluator]), got {item!r}"
            )
    if not out:
        raise ValueError("RankEnv needs at least one task")
    return out
