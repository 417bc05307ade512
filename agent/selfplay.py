"""Self-play: N games stepped together, one jitted search per move for the whole batch.

The :class:`Actor` keeps per-game trajectory buffers shaped ``[N, T, ...]`` and writes each
move's data with one vectorised assignment; only when games finish does it slice their rows
out (cheap numpy) into :class:`~agent.replay.Episode` records for the replay buffer.

Rewards are either the env's dense rewards or Ranked Reward (Laterre et al. 2018,
arXiv:1807.01672): the whole game earns a single terminal reward of +1 / -1 / 0 when its
return is above / below / equal to a reference -- the ``ranked_quantile`` of the recent games'
returns (``"quantile"``), the env's per-game baseline return (``"baseline"``, e.g. a
heuristic's), or the larger of both (``"max"``). A NaN baseline falls back to the quantile.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import jax
import numpy as np

from agent.config import TrainConfig
from agent.env import BatchedEnv, random_legal_actions
from agent.networks import Params
from agent.replay import Episode, ReplayBuffer

SearchFn = Callable[..., Any]  # (params, rng, obs, legal, moves_left) -> SearchOutput
ActFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class EpisodeSink(Protocol):
    """Where an :class:`Actor` books finished games: a :class:`~agent.replay.ReplayBuffer`,
    or a worker's list of episodes to ship to the learner."""

    def add(self, episode: Episode) -> None: ...


class RankedReward:
    """Turns game returns into ranked terminal rewards against a reference."""

    def __init__(self, config: TrainConfig) -> None:
        self.quantile = float(config.ranked_quantile)
        self.reference_kind = config.ranked_reference
        self.tolerance = float(config.ranked_tie_tolerance)
        self.recent: deque[float] = deque(maxlen=int(config.ranked_window))

    def references(self, baselines: np.ndarray) -> np.ndarray:
        """float32[k] reference returns for games with the given baselines (NaN = none)."""
        baselines = np.asarray(baselines, np.float64)
        q = float(np.quantile(np.asarray(self.recent), self.quantile)) if self.recent else np.nan
        if self.reference_kind == "baseline":
            ref = np.where(np.isnan(baselines), q, baselines)
        elif self.reference_kind == "quantile":
            ref = np.full_like(baselines, q)
        elif self.reference_kind == "max":
            ref = np.where(np.isnan(baselines), q, np.fmax(baselines, q))
        else:
            raise ValueError(f"unknown ranked_reference {self.reference_kind!r}")
        return ref

    def __call__(self, returns: np.ndarray, baselines: np.ndarray) -> np.ndarray:
        """Ranked rewards float32[k] in {-1, 0, +1} (0 when no reference exists yet)."""
        returns = np.asarray(returns, np.float64)
        ref = self.references(baselines)
        diff = np.where(np.isnan(ref), 0.0, returns - np.nan_to_num(ref))
        ranked = np.where(diff > self.tolerance, 1.0, np.where(diff < -self.tolerance, -1.0, 0.0))
        self.recent.extend(returns.tolist())
        return ranked.astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"recent": np.asarray(self.recent, np.float64)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.recent.clear()
        self.recent.extend(np.asarray(state["recent"]).tolist())


class Actor:
    """Plays a :class:`BatchedEnv` with batched search and fills a replay buffer."""

    def __init__(
        self,
        env: BatchedEnv,
        search_fn: SearchFn,
        replay: EpisodeSink | None,
        config: TrainConfig,
        initial_length: int = 64,
    ) -> None:
        self.env = env
        self.search_fn = search_fn
        self.replay = replay
        self.config = config
        self.ranked = RankedReward(config) if config.reward_mode == "ranked" else None
        n, o, a = env.num_envs, env.observation_size, env.num_actions
        self._obs, self._legal = env.reset()
        self._baseline = np.asarray(env.baseline_return(), np.float32).copy()
        self._t = np.zeros(n, np.int64)
        self._rows = np.arange(n)
        cap = int(initial_length)
        self._buf = {
            "obs": np.zeros((n, cap, o), np.float32),
            "legal": np.zeros((n, cap, a), bool),
            "action": np.zeros((n, cap), np.int32),
            "reward": np.zeros((n, cap), np.float32),
            "policy": np.zeros((n, cap, a), np.float32),
            "root_value": np.zeros((n, cap), np.float32),
            "moves_left": np.zeros((n, cap), np.int32),
        }
        self.moves = 0  # moves played in total
        self.games = 0  # games finished in total
        self.finished: deque[dict[str, float]] = deque(maxlen=1024)  # recent games' stats
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # finished, not yet booked

    def _grow(self) -> None:
        for key, arr in self._buf.items():
            pad = np.zeros_like(arr)
            self._buf[key] = np.concatenate([arr, pad], axis=1)

    def step(self, params: Params, rng: jax.Array) -> int:
        """Plays one move in every game; returns the number of games that finished.

        The search is dispatched first and runs (asynchronously, on the accelerator) while the
        host books the games that finished at the previous move into the replay buffer
        (:meth:`flush`) and records this move's observations; the host waits only for the
        actions. So a finished game reaches the replay buffer (and ``games``/``finished``) at
        the next ``step`` or ``flush``; until then it counts as in flight.
        """
        moves_left = np.asarray(self.env.moves_left(), np.int32)
        out = self.search_fn(params, rng, self._obs, self._legal, moves_left)
        self.flush()
        if int(self._t.max()) >= self._buf["action"].shape[1]:
            self._grow()
        at = (self._rows, self._t)
        b = self._buf
        b["obs"][at] = self._obs
        b["legal"][at] = self._legal
        b["moves_left"][at] = moves_left
        action, policy, root_value = jax.device_get(out)
        b["action"][at] = action
        b["policy"][at] = policy
        b["root_value"][at] = root_value
        self._obs, self._legal, reward, done = self.env.step(np.asarray(action, np.int32))
        b["reward"][at] = reward
        self._t += 1
        self.moves += len(self._rows)
        if not done.any():
            return 0
        ids = np.flatnonzero(done)
        self._pending = (ids, self._baseline[ids].copy())
        new_baseline = np.asarray(self.env.baseline_return(), np.float32)
        self._baseline[ids] = new_baseline[ids]
        return len(ids)

    def flush(self) -> None:
        """Books the games that finished at the last move (replay, stats, ``games``)."""
        if self._pending is not None:
            ids, baselines = self._pending
            self._pending = None
            self._finish(ids, baselines)

    def _finish(self, ids: np.ndarray, baselines: np.ndarray) -> None:
        b = self._buf
        lengths = self._t[ids]
        returns = np.array([b["reward"][i, : lengths[j]].sum() for j, i in enumerate(ids)])
        ranked = self.ranked(returns, baselines) if self.ranked is not None else None
        for j, i in enumerate(ids):
            t = int(lengths[j])
            reward = b["reward"][i, :t].copy()
            if ranked is not None:
                reward[:] = 0.0
                reward[-1] = ranked[j]
            if self.replay is not None:
                self.replay.add(
                    Episode(
                        obs=b["obs"][i, :t].copy(),
                        legal=b["legal"][i, :t].copy(),
                        action=b["action"][i, :t].copy(),
                        reward=reward,
                        policy=b["policy"][i, :t].copy(),
                        root_value=b["root_value"][i, :t].copy(),
                        moves_left=b["moves_left"][i, :t].copy(),
                    )
                )
            stats = {"return": float(returns[j]), "baseline": float(baselines[j]), "length": t}
            if ranked is not None:
                stats["ranked_reward"] = float(ranked[j])
            self.finished.append(stats)
        self._t[ids] = 0
        self.games += len(ids)

    def recent_stats(self, count: int = 256) -> dict[str, float]:
        """Means over the last ``count`` finished games (NaN when none)."""
        self.flush()
        return game_stats(list(self.finished)[-count:], self.ranked is not None)


def game_stats(games: list[dict[str, float]], ranked: bool = False) -> dict[str, float]:
    """Means over finished games' stats (``return``, ``baseline``, ``length``, optionally
    ``ranked_reward``, as :class:`Actor` books them): NaN when there is none."""
    if not games:
        return {"return": float("nan"), "baseline": float("nan"), "win_rate": float("nan")}
    ret = np.array([g["return"] for g in games])
    base = np.array([g["baseline"] for g in games])
    has = ~np.isnan(base)
    out = {
        "return": float(ret.mean()),
        "return_std": float(ret.std()),
        "length": float(np.mean([g["length"] for g in games])),
        "baseline": float(base[has].mean()) if has.any() else float("nan"),
        "win_rate": float((ret[has] > base[has] + 1e-9).mean()) if has.any() else float("nan"),
        "not_worse_rate": float((ret[has] >= base[has] - 1e-9).mean())
        if has.any()
        else float("nan"),
    }
    if ranked:
        out["ranked_reward"] = float(np.mean([g.get("ranked_reward", 0.0) for g in games]))
    return out


def reanalyse(
    replay: ReplayBuffer,
    search_fn: SearchFn,
    params: Params,
    rng: jax.Array,
    count: int,
) -> np.ndarray:
    """Re-runs the search on ``count`` random stored positions with the given params and
    overwrites their search policy and root value (MuZero Reanalyse). Returns the slots."""
    if len(replay) == 0:
        return np.zeros(0, np.int64)
    slots = replay.sample_positions(count)
    out = search_fn(
        params, rng, replay.obs[slots], replay.legal[slots], np.maximum(replay.moves_left[slots], 1)
    )
    _, policy, root_value = jax.device_get(out)
    replay.policy[slots] = policy
    replay.root_value[slots] = root_value
    return slots


def evaluate(env: BatchedEnv, act_fn: ActFn, games_per_env: int = 1) -> dict[str, np.ndarray]:
    """Plays exactly ``games_per_env`` games in each of the env's slots with ``act_fn``.

    ``act_fn(obs float32[N,O], legal bool[N,A], moves_left int32[N]) -> actions int32[N]``.
    Returns ``{"return": float32[G], "baseline": float32[G]}`` with ``G = N * games_per_env``,
    ordered by slot, then by game within the slot (so that two policies evaluated on envs
    whose slots replay the same instances line up game by game).
    """
    n, g = env.num_envs, int(games_per_env)
    obs, legal = env.reset()
    baseline = np.asarray(env.baseline_return(), np.float32).copy()
    acc = np.zeros(n, np.float64)
    count = np.zeros(n, np.int64)
    returns = np.zeros((n, g), np.float32)
    baselines = np.zeros((n, g), np.float32)
    while (count < g).any():
        actions = np.asarray(act_fn(obs, legal, env.moves_left()), np.int32)
        obs, legal, reward, done = env.step(actions)
        acc += reward
        keep = np.flatnonzero(done & (count < g))
        returns[keep, count[keep]] = acc[keep]
        baselines[keep, count[keep]] = baseline[keep]
        count += done
        acc[done] = 0.0
        if done.any():
            baseline[done] = np.asarray(env.baseline_return(), np.float32)[done]
    return {"return": returns.reshape(-1), "baseline": baselines.reshape(-1)}


def random_act_fn(seed: int = 0) -> ActFn:
    """A uniformly random legal policy (the usual floor to beat)."""
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray, legal: np.ndarray, moves_left: np.ndarray) -> np.ndarray:
        del obs, moves_left
        return random_legal_actions(rng, legal)

    return act
