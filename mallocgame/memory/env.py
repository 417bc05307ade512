"""The mallocGame as an :class:`agent.env.BatchedEnv`: many native games stepped in one call.

Each of the ``N`` slots plays one problem (workload x capacity x target) drawn from a pool; a
finished game is replaced at once by a fresh game of a newly drawn problem. Observations,
masks and rewards are written by the native core straight into numpy arrays that this object
owns; the only Python work per move is bookkeeping of the slots whose games just ended.

The baseline return of a game is the return of XLA's heuristic (``msa``: best fit in the
memory-boundedness order) on the same problem, for the agent's ranked-reward mode.
"""

from __future__ import annotations

import numpy as np

from mallocgame import _native
from mallocgame.memory.order import msa_order
from mallocgame.memory.problem import Problem


class PreparedProblem:
    """A problem with its native instance (in ``msa`` order) and the heuristic's return."""

    def __init__(self, problem: Problem, grid: int = 16):
        self.problem = problem
        self.order = msa_order(problem)
        self.instance = problem.instance(self.order)
        self.msa_return = float(_native.Game(self.instance).play_best_fit())

    def new_game(self):
        return _native.Game(self.instance)


def new_batch(games: list[_native.Game], observation_size: int, num_actions: int) -> tuple:
    """One native batch of ``games`` and its arrays, observed: ``(batch, obs float32[N, O],
    legal bool[N, A], reward float32[N], done bool[N])``."""
    n = len(games)
    batch = _native.BatchedGames(games)
    obs = np.zeros((n, observation_size), np.float32)
    legal = np.zeros((n, num_actions), np.bool_)
    reward = np.zeros(n, np.float32)
    done = np.zeros(n, np.bool_)
    batch.observe(obs, legal, done)
    return batch, obs, legal, reward, done


class MallocEnv:
    """``num_envs`` mallocGames over a pool of problems (see module doc).

    Shapes: ``obs float32[N, O]``, ``legal bool[N, K + 1]``, ``reward float32[N]``,
    ``done bool[N]``; ``O`` and ``K`` are the same for every problem of the pool.
    """

    def __init__(
        self,
        problems: list[Problem] | list[PreparedProblem],
        num_envs: int,
        seed: int = 0,
        weights: np.ndarray | None = None,
    ):
        if not problems:
            raise ValueError("MallocEnv needs at least one problem")
        self.pool = [p if isinstance(p, PreparedProblem) else PreparedProblem(p) for p in problems]
        sizes = {(p.instance.observation_size, p.instance.num_actions) for p in self.pool}
        if len(sizes) != 1:
            raise ValueError(
                f"problems differ in observation size / number of actions: {sorted(sizes)}"
            )
        ((self.observation_size, self.num_actions),) = sizes
        self.num_envs = int(num_envs)
        self.rng = np.random.default_rng(seed)
        w = np.ones(len(self.pool)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        n = self.num_envs
        self._obs = np.zeros((n, self.observation_size), np.float32)
        self._legal = np.zeros((n, self.num_actions), np.bool_)
        self._reward = np.zeros(n, np.float32)
        self._done = np.zeros(n, np.bool_)
        self._slot_problem = np.zeros(n, np.int64)
        self._moves_left = np.zeros(n, np.int32)
        self._baseline = np.zeros(n, np.float32)
        self._games: list = [None] * n
        self._batch = None
        self.finished_returns: list[tuple[int, float, float]] = []  # (problem, return, msa return)
        self._returns = np.zeros(n, np.float64)

    # ------------------------------------------------------------------ protocol
    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        for i in range(self.num_envs):
            self._new_game(i)
        self._rebatch()
        return self._obs.copy(), self._legal.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        actions = np.ascontiguousarray(actions, dtype=np.int32)
        self._batch.step(actions, self._obs, self._legal, self._reward, self._done)
        self._moves_left -= 1
        self._returns += self._reward
        reward, done = self._reward.copy(), self._done.copy()
        ended = np.flatnonzero(done)
        if ended.size:
            for i in ended.tolist():
                k = int(self._slot_problem[i])
                self.finished_returns.append((k, float(self._returns[i]), self.pool[k].msa_return))
                self._new_game(i)
            self._rebatch()
        return self._obs.copy(), self._legal.copy(), reward, done

    def moves_left(self) -> np.ndarray:
        return np.maximum(self._moves_left, 1)

    def baseline_return(self) -> np.ndarray:
        return self._baseline.copy()

    # ------------------------------------------------------------------ internals
    def _new_game(self, i: int) -> None:
        k = int(self.rng.choice(len(self.pool), p=self.weights))
        self._slot_problem[i] = k
        self._games[i] = self.pool[k].new_game()
        self._moves_left[i] = self.pool[k].instance.num_buffers
        self._baseline[i] = self.pool[k].msa_return
        self._returns[i] = 0.0

    def _rebatch(self) -> None:
        self._batch = _native.BatchedGames(self._games)
        self._batch.observe(self._obs, self._legal, self._done)
        self._done[:] = False
