"""High-level entry points: :class:`Trainer` (self-play + learning + checkpoints) and
:func:`load_policy` (inference from a checkpoint).

A trainer step is one learner update. Between updates the actor plays batched moves so that
on average ``updates_per_actor_step`` updates follow each batched env step (after the replay
holds ``replay.min_size`` positions).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agent.checkpoint import (
    arrays_to_params,
    prefixed,
    read_checkpoint,
    remove_stale_temps,
)
from agent.config import Config, SearchConfig
from agent.env import BatchedEnv
from agent.networks import Networks, Params, make_networks
from agent.roles import Learner
from agent.runbook import RunBook
from agent.search import SearchOutput, make_search_fn
from agent.selfplay import Actor

EnvFactory = Callable[[int, int], BatchedEnv]  # (num_envs, seed) -> env
Callback = Callable[[dict[str, Any]], Any]  # called with each curve record; True stops
Greedy = bool | np.ndarray  # one flag for the batch, or bool[N] (one per game)


class Trainer(RunBook):
    """MuZero training on a :class:`~agent.env.BatchedEnv`.

    Args:
      env_factory: ``env_factory(num_envs, seed)`` builds the self-play env
        (``num_envs = config.train.num_envs``).
      config: the full :class:`~agent.config.Config`.
      seed: seeds the network init, search, replay sampling and the env.
    """

    def __init__(self, env_factory: EnvFactory, config: Config | None = None, seed: int = 0):
        self.config = config = config or Config()
        self.seed = int(seed)
        self.env_factory = env_factory
        self.resumes = 0
        self.env = env_factory(config.train.num_envs, self.seed)
        key, init_key = jax.random.split(jax.random.PRNGKey(self.seed))
        self.rng = key
        self.learner = Learner(
            self.env.observation_size, self.env.num_actions, config, self.seed, init_key
        )
        self.networks: Networks = self.learner.networks
        self.search_fn = self.learner.search_fn
        self.actor = Actor(self.env, self.search_fn, self.replay, config.train)
        self._init_book()

    # -- training -------------------------------------------------------------------------
    @property
    def moves(self) -> int:
        """Single-game moves played in total."""
        return self.actor.moves

    @property
    def games(self) -> int:
        """Games finished in total."""
        return self.actor.games

    @property
    def observation_size(self) -> int:
        return self.env.observation_size

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    def _game_stats(self) -> dict[str, float]:
        return self.actor.recent_stats()

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        if self.actor.ranked is None:
            return {}
        return {f"ranked/{k}": v for k, v in self.actor.ranked.state_dict().items()}

    def _next_key(self) -> jax.Array:
        self.rng, key = jax.random.split(self.rng)
        return key

    def collect(self, num_moves: int) -> None:
        """Plays ``num_moves`` batched moves (each moves all N games) without learning."""
        for _ in range(num_moves):
            self.actor.step(self.state.params, self._next_key())

    def learn_step(self) -> dict[str, Any]:
        """One learner update on a prioritised batch; returns its metrics (device arrays)."""
        return self.learner.update()

    def train(self, num_steps: int, callback: Callback | None = None) -> list[dict[str, Any]]:
        """Runs ``num_steps`` learner updates with self-play in between.

        ``callback(record)`` is called with each training-curve record (every
        ``train.log_every`` updates); returning True stops training early. Checkpoints are
        written every ``train.checkpoint_every`` updates to ``train.checkpoint_path`` (and at
        the end, when a path is set). Returns the records added by this call.
        """
        t = self.config.train
        target, first_record, start = self._begin(num_steps)
        stop = False
        try:
            while self.updates < target and not stop:
                self.actor.step(self.state.params, self._next_key())
                if not self.replay_ready():
                    continue
                self._credit += t.updates_per_actor_step
                while self._credit >= 1.0 and self.updates < target and not stop:
                    self._credit -= 1.0
                    self._metrics.append(self.learn_step())
                    if t.reanalyse_every and self.updates % t.reanalyse_every == 0:
                        self.learner.reanalyse(self._next_key(), t.num_envs)
                    if t.log_every and self.updates % t.log_every == 0:
                        self.wall_time += time.perf_counter() - start
                        start = time.perf_counter()
                        record = self._record()
                        if callback is not None and callback(record) is True:
                            stop = True
                    if t.checkpoint_every and self.updates % t.checkpoint_every == 0:
                        if t.checkpoint_path:
                            self.save(t.checkpoint_path)
        finally:
            self.wall_time += time.perf_counter() - start
        if t.checkpoint_path:
            self.save(t.checkpoint_path)
        return self.curves[first_record:]

    def replay_ready(self) -> bool:
        """Whether learning may start (see :meth:`agent.roles.Learner.ready`)."""
        return self.learner.ready()

    # -- acting ---------------------------------------------------------------------------
    def search(
        self, obs: np.ndarray, legal: np.ndarray, moves_left: np.ndarray, greedy: Greedy = True
    ) -> SearchOutput:
        """Searches with the current params; returns numpy ``SearchOutput``.

        ``greedy``: one bool for the batch or bool[N], one per game."""
        return _search_numpy(
            self.search_fn, self.state.params, self._next_key(), obs, legal, moves_left, greedy
        )

    def act(
        self, obs: np.ndarray, legal: np.ndarray, moves_left: np.ndarray, greedy: Greedy = True
    ) -> np.ndarray:
        """Actions int32[N] for a batch of positions (greedy = no exploration noise)."""
        return np.asarray(self.search(obs, legal, moves_left, greedy).action, np.int32)

    # -- checkpoints ----------------------------------------------------------------------
    @classmethod
    def resume(cls, path: str | os.PathLike, env_factory: EnvFactory) -> Trainer:
        """Rebuilds a trainer from :meth:`save` output and continues where it stopped.

        Params, optimizer state, counters, RNG key, curves, ranked-reward window and (when
        saved) the replay buffer are restored; the env is rebuilt with a new seed derived from
        the original one, so the resumed run does not replay the same games.
        """
        remove_stale_temps(path)  # left by a process killed while writing this checkpoint
        arrays, meta = read_checkpoint(path)
        if meta.get("kind") != "trainer":
            raise ValueError(f"{path}: a {meta.get('kind')!r} checkpoint cannot be resumed")
        config = Config.from_dict(meta["config"])
        seed = int(meta["seed"])
        resumes = int(meta.get("resumes", 0)) + 1

        def factory(num_envs: int, env_seed: int) -> BatchedEnv:
            return env_factory(num_envs, env_seed + 1_000_003 * resumes)

        trainer = cls(factory, config, seed)
        trainer.env_factory = env_factory
        trainer.resumes = resumes
        trainer._restore(arrays, meta)
        trainer.actor.moves = int(meta["env_moves"])
        trainer.actor.games = int(meta["games"])
        if trainer.actor.ranked is not None and "ranked/recent" in arrays:
            trainer.actor.ranked.load_state_dict(prefixed(arrays, "ranked/"))
        return trainer

    def write_curves_csv(self, path: str | os.PathLike) -> Path:
        return write_curves_csv(self.curves, path)


def write_curves_csv(curves: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Writes training-curve records as CSV (union of keys, in first-seen order)."""
    path = Path(path)
    keys: list[str] = []
    for record in curves:
        keys.extend(k for k in record if k not in keys)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(curves)
    return path


def _search_numpy(
    search_fn: Callable[..., Any],
    params: Params,
    key: jax.Array,
    obs: np.ndarray,
    legal: np.ndarray,
    moves_left: np.ndarray,
    greedy: Greedy,
) -> SearchOutput:
    """Runs a jitted search on numpy inputs (cast to its dtypes); returns numpy SearchOutput."""
    out = search_fn(
        params,
        key,
        np.asarray(obs, np.float32),
        np.asarray(legal, bool),
        np.asarray(moves_left, np.int32),
        np.asarray(greedy, bool),
    )
    return SearchOutput(*jax.device_get(out))


class Policy:
    """Inference with a trained network: batched search over the learned model."""

    def __init__(
        self,
        networks: Networks,
        params: Params,
        search_config: SearchConfig,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.networks = networks
        self.params = params
        self.search_config = search_config
        self.meta = meta or {}
        self.observation_size = networks.observation_size
        self.num_actions = networks.num_actions
        self._search = make_search_fn(networks, search_config)

    def search(
        self,
        obs: np.ndarray,
        legal: np.ndarray,
        moves_left: np.ndarray,
        greedy: Greedy = True,
        seed: int = 0,
    ) -> SearchOutput:
        """obs float32[N,O], legal bool[N,A], moves_left int32[N] -> numpy SearchOutput.

        ``greedy``: one bool for the whole batch, or bool[N] (one per game: e.g. one greedy
        game among sampled ones, in one search call)."""
        return _search_numpy(
            self._search, self.params, jax.random.PRNGKey(seed), obs, legal, moves_left, greedy
        )

    def act(
        self,
        obs: np.ndarray,
        legal: np.ndarray,
        moves_left: np.ndarray,
        greedy: Greedy = True,
        seed: int = 0,
    ) -> np.ndarray:
        return np.asarray(self.search(obs, legal, moves_left, greedy, seed).action, np.int32)


def load_policy(
    path: str | os.PathLike, num_simulations: int | None = None, policy: str | None = None
) -> Policy:
    """Loads a trainer or policy checkpoint for inference.

    ``num_simulations`` / ``policy`` ("gumbel" | "muzero") override the trained search config.
    Stale temporaries of killed writers beside ``path`` are removed (see
    :func:`agent.checkpoint.remove_stale_temps`).
    """
    remove_stale_temps(path)
    arrays, meta = read_checkpoint(path)
    config = Config.from_dict(meta["config"])
    search = config.search
    if num_simulations is not None:
        n = int(num_simulations)
        m = search.max_num_considered_actions
        # fewer simulations than the trained width: consider at most n actions (mctx would)
        search = dataclasses.replace(
            search, num_simulations=n, max_num_considered_actions=None if m is None else min(m, n)
        )
    if policy is not None:
        search = dataclasses.replace(search, policy=policy)
    networks = make_networks(
        int(meta["observation_size"]), int(meta["num_actions"]), config.network
    )
    params = jax.tree.map(jnp.asarray, arrays_to_params(arrays))
    return Policy(networks, params, search, meta)
