"""The environment protocol the agent plays, and a small pure-numpy reference game.

The agent knows a game only through :class:`BatchedEnv`: ``N`` single-player games stepped
together, with fixed-size float32 observations, a discrete action space of size ``A`` with a
legal-action mask, dense per-move rewards and automatic reset. Nothing else (no game import,
no state copying): the agent plans with its learned model.

:class:`KnapsackEnv` is the reference implementation used by tests, docs and benchmarks: a
vectorised 0/1 knapsack with a known optimum (dynamic programming).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class BatchedEnv(Protocol):
    """``num_envs`` games stepped together.

    Shapes: ``N = num_envs``, ``O = observation_size``, ``A = num_actions``.
    """

    num_envs: int
    observation_size: int
    num_actions: int

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """Starts N new games; returns ``(obs float32[N, O], legal bool[N, A])``.

        Every row of ``legal`` must have at least one True entry.
        """
        ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Plays ``actions int32[N]`` (each legal) in each game.

        Returns ``(obs float32[N, O], legal bool[N, A], reward float32[N], done bool[N])``.
        ``reward[i]`` and ``done[i]`` belong to the move just played; a game that finished is
        reset by the env, so ``obs[i]`` / ``legal[i]`` are those of the next game.
        """
        ...

    def moves_left(self) -> np.ndarray:
        """int32[N]: an upper bound (>= 1) on the moves left in each current game."""
        ...

    def baseline_return(self) -> np.ndarray:
        """float32[N]: a reference return for each current game (e.g. a heuristic's), or NaN."""
        ...


def check_env(env: BatchedEnv, num_steps: int = 50, seed: int = 0) -> None:
    """Plays random legal moves and asserts the protocol's shapes, dtypes and invariants."""
    rng = np.random.default_rng(seed)
    n, o, a = env.num_envs, env.observation_size, env.num_actions
    obs, legal = env.reset()
    for _ in range(num_steps):
        assert obs.shape == (n, o) and obs.dtype == np.float32, (obs.shape, obs.dtype)
        assert legal.shape == (n, a) and legal.dtype == np.bool_, (legal.shape, legal.dtype)
        assert legal.any(axis=1).all(), "every game needs a legal action"
        ml = env.moves_left()
        assert ml.shape == (n,) and (ml >= 1).all(), ml
        assert env.baseline_return().shape == (n,)
        obs, legal, reward, done = env.step(random_legal_actions(rng, legal))
        assert reward.shape == (n,) and reward.dtype == np.float32
        assert done.shape == (n,) and done.dtype == np.bool_


def random_legal_actions(rng: np.random.Generator, legal: np.ndarray) -> np.ndarray:
    """Uniformly random legal action per row: bool[N, A] -> int32[N]."""
    scores = rng.random(legal.shape) * legal
    scores[~legal] = -1.0
    return scores.argmax(axis=1).astype(np.int32)


class KnapsackEnv:
    """N independent 0/1 knapsack games, vectorised in numpy.

    Each game draws ``num_items`` items with integer weights in ``[1, max_weight]`` and values
    in ``[1, max_value]``; the capacity is ``capacity_fraction`` of the total weight. A move
    picks a remaining item that fits (actions ``0..num_items-1``) or stops (action
    ``num_items``, always legal). The reward of taking an item is its value divided by the
    game's total value, so a return lies in [0, 1]. A game ends when the player stops or
    nothing more fits.

    ``moves_left`` is the number of remaining items that fit (each move takes one or ends the
    game), ``baseline_return`` is the greedy-by-value-density return, and
    :meth:`optimal_return` solves each current game exactly by dynamic programming.

    Observation (float32[5 * num_items + 1], features of order 1): per item weight/capacity,
    value/mean value, value density/max density, taken flag, fits-now flag; then remaining
    capacity/capacity.
    """

    def __init__(
        self,
        num_envs: int,
        num_items: int = 8,
        seed: int = 0,
        max_weight: int = 10,
        max_value: int = 10,
        capacity_fraction: float = 0.4,
    ) -> None:
        self.num_envs = int(num_envs)
        self.num_items = int(num_items)
        self.num_actions = self.num_items + 1
        self.observation_size = 5 * self.num_items + 1
        self._max_weight = int(max_weight)
        self._max_value = int(max_value)
        self._capacity_fraction = float(capacity_fraction)
        # one stream per slot: slot i's k-th game is the same whatever the policy, so that
        # two policies evaluated on equal seeds play the same instances
        self._rngs = [np.random.default_rng([seed, i]) for i in range(self.num_envs)]
        n, m = self.num_envs, self.num_items
        self.weights = np.zeros((n, m), np.int64)
        self.values = np.zeros((n, m), np.int64)
        self.capacity = np.zeros(n, np.int64)
        self.cap_left = np.zeros(n, np.int64)
        self.taken = np.zeros((n, m), bool)
        self._baseline = np.zeros(n, np.float32)
        self._new_games(np.ones(n, bool))

    # -- protocol -------------------------------------------------------------------------
    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        self._new_games(np.ones(self.num_envs, bool))
        return self._observe(), self._legal()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions, np.int64)
        legal = self._legal()
        rows = np.arange(self.num_envs)
        if not legal[rows, actions].all():
            bad = np.flatnonzero(~legal[rows, actions])
            raise ValueError(f"illegal actions in games {bad.tolist()}: {actions[bad].tolist()}")
        take = actions < self.num_items
        item = np.where(take, actions, 0)
        w = np.where(take, self.weights[rows, item], 0)
        v = np.where(take, self.values[rows, item], 0)
        self.taken[rows[take], item[take]] = True
        self.cap_left -= w
        reward = (v / self.values.sum(axis=1)).astype(np.float32)
        done = ~take | ~self._fits().any(axis=1)
        if done.any():
            self._new_games(done)
        return self._observe(), self._legal(), reward, done

    def moves_left(self) -> np.ndarray:
        return np.maximum(self._fits().sum(axis=1), 1).astype(np.int32)

    def baseline_return(self) -> np.ndarray:
        return self._baseline.copy()

    # -- extras ---------------------------------------------------------------------------
    def optimal_return(self) -> np.ndarray:
        """float32[N]: the best return of each current game (from its start), by DP."""
        out = np.zeros(self.num_envs, np.float32)
        for i in range(self.num_envs):
            best = np.zeros(self.capacity[i] + 1, np.int64)
            for w, v in zip(self.weights[i], self.values[i], strict=True):
                if w <= self.capacity[i]:
                    best[w:] = np.maximum(best[w:], best[:-w] + v)  # RHS uses the old row: 0/1
            out[i] = best[-1] / self.values[i].sum()
        return out

    def _fits(self) -> np.ndarray:
        return ~self.taken & (self.weights <= self.cap_left[:, None])

    def _legal(self) -> np.ndarray:
        return np.concatenate([self._fits(), np.ones((self.num_envs, 1), bool)], axis=1)

    def _observe(self) -> np.ndarray:
        cap = self.capacity[:, None].astype(np.float32)
        mean_value = self.values.mean(axis=1, keepdims=True).astype(np.float32)
        density = self.values / self.weights
        return np.concatenate(
            [
                self.weights / cap,
                self.values / mean_value,
                density / density.max(axis=1, keepdims=True),
                self.taken,
                self._fits(),
                self.cap_left[:, None] / cap,
            ],
            axis=1,
            dtype=np.float32,
        )

    def _new_games(self, mask: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        m = self.num_items
        w = np.stack([self._rngs[i].integers(1, self._max_weight + 1, size=m) for i in rows])
        v = np.stack([self._rngs[i].integers(1, self._max_value + 1, size=m) for i in rows])
        cap = np.maximum(np.floor(self._capacity_fraction * w.sum(axis=1)), w.min(axis=1))
        self.weights[rows] = w
        self.values[rows] = v
        self.capacity[rows] = cap.astype(np.int64)
        self.cap_left[rows] = cap.astype(np.int64)
        self.taken[rows] = False
        self._baseline[rows] = _greedy_return(w, v, cap.astype(np.int64))


def _greedy_return(w: np.ndarray, v: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Greedy by value density (take each item in density order if it fits): float32[k]."""
    order = np.argsort(-(v / w), axis=1, kind="stable")
    ws = np.take_along_axis(w, order, axis=1)
    vs = np.take_along_axis(v, order, axis=1)
    left = cap.copy()
    got = np.zeros(len(cap), np.int64)
    for j in range(w.shape[1]):
        fit = ws[:, j] <= left
        left = left - np.where(fit, ws[:, j], 0)
        got = got + np.where(fit, vs[:, j], 0)
    return (got / v.sum(axis=1)).astype(np.float32)
