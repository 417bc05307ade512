"""The two roles of MuZero training as plain classes: :class:`Learner` and :class:`SelfPlayWorker`.

They hold no reference to each other and exchange only plain data: the learner publishes
:class:`ParamsSnapshot` s (a version number and the parameters as numpy arrays), a worker plays
a chunk of batched moves with the newest snapshot it was given and returns a :class:`Rollout`
(the games that finished, as :class:`~agent.replay.Episode` records, and their stats). So the
same classes run in one process (:class:`agent.trainer.Trainer` owns a learner and an actor;
:class:`agent.distributed.AsyncTrainer` with the local launcher) or as Ray actors in other
processes and on other machines (``AsyncTrainer`` with the Ray launcher): the design of
LightZero's and EfficientZero's asynchronous pipelines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agent.checkpoint import (
    arrays_to_params,
    arrays_to_tree,
    params_to_arrays,
    prefixed,
    tree_to_arrays,
)
from agent.config import Config
from agent.env import BatchedEnv
from agent.learner import TrainState, init_train_state, make_update_fn
from agent.networks import Networks, Params, init_params, make_networks
from agent.replay import Episode, ReplayBuffer
from agent.search import make_search_fn
from agent.selfplay import Actor, reanalyse

EnvFactory = Callable[[int, int], BatchedEnv]  # (num_envs, seed) -> env


class ParamsSnapshot(NamedTuple):
    """Published parameters: ``version`` counts the learner's publications (0: the initial
    parameters); ``arrays`` are :func:`agent.checkpoint.params_to_arrays` of the params."""

    version: int
    updates: int  # learner updates behind these parameters
    arrays: dict[str, np.ndarray]


class Rollout(NamedTuple):
    """What a worker sends back after a chunk of moves."""

    worker: int
    version: int  # the snapshot version the chunk was played with
    moves: int  # single-game moves played (batched moves x games)
    batched_moves: int
    episodes: list[Episode]  # the games that finished in the chunk
    games: list[dict[str, float]]  # their stats (return, baseline, length, ...)
    seconds: float  # the chunk's wall time in the worker
    pid: int


class Learner:
    """Owns the replay buffer, the network parameters and the optimizer state.

    Args:
      observation_size, num_actions: the game's sizes.
      config: the full :class:`~agent.config.Config`.
      seed: seeds the replay's sampling.
      init_key: the PRNG key of the network initialisation.
    """

    def __init__(
        self,
        observation_size: int,
        num_actions: int,
        config: Config,
        seed: int,
        init_key: jax.Array,
    ) -> None:
        self.config = config
        self.networks: Networks = make_networks(observation_size, num_actions, config.network)
        self.state: TrainState = init_train_state(
            init_params(self.networks, init_key), config.train
        )
        self.replay = ReplayBuffer(
            observation_size,
            num_actions,
            config.replay,
            discount=config.train.discount,
            seed=seed,
        )
        self.search_fn = make_search_fn(self.networks, config.search)  # for reanalyse
        self.update_fn = make_update_fn(self.networks, config.train)
        self.updates = 0

    @property
    def params(self) -> Params:
        return self.state.params

    def add(self, episodes: list[Episode]) -> None:
        for episode in episodes:
            self.replay.add(episode)

    def ready(self) -> bool:
        """Whether learning may start: the replay holds ``replay.min_size`` positions, or it
        has wrapped (whole-episode eviction can keep it below a ``min_size`` close to, or
        above, its capacity forever)."""
        r = self.replay
        return len(r) >= self.config.replay.min_size or r.next_position > r.capacity

    def update(self) -> dict[str, Any]:
        """One update on a prioritised batch; returns its metrics (device arrays)."""
        t = self.config.train
        batch = self.replay.sample(t.batch_size, t.unroll_steps, t.td_steps)
        self.state, metrics, priorities = self.update_fn(self.state, batch._replace(indices=None))
        self.replay.update_priorities(batch.indices, np.asarray(priorities))
        self.updates += 1
        return metrics

    def reanalyse(self, key: jax.Array, count: int) -> None:
        """MuZero Reanalyse of ``count`` stored positions with the current parameters."""
        reanalyse(self.replay, self.search_fn, self.state.params, key, count)

    def snapshot(self, version: int) -> ParamsSnapshot:
        return ParamsSnapshot(int(version), self.updates, params_to_arrays(self.state.params))

    # -- checkpoints ----------------------------------------------------------------------
    def state_arrays(self, include_replay: bool) -> dict[str, np.ndarray]:
        """Params (``params/``), optimizer state (``opt/``), ``train_step`` and, when asked,
        the replay (``replay/``): the learner's part of a trainer checkpoint."""
        arrays = params_to_arrays(self.state.params)
        arrays.update(tree_to_arrays(self.state.opt_state, "opt/"))
        arrays["train_step"] = np.asarray(jax.device_get(self.state.step))
        if include_replay:
            arrays.update({f"replay/{k}": v for k, v in self.replay.state_dict().items()})
        return arrays

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_arrays`, with the counters and replay RNG of ``meta``."""
        params = jax.tree.map(np.asarray, arrays_to_params(arrays))
        if jax.tree.structure(params) != jax.tree.structure(self.state.params):
            raise ValueError("checkpoint params do not match the network config")
        opt_state = arrays_to_tree(arrays, "opt/", self.state.opt_state)
        self.state = TrainState(
            jax.tree.map(jnp.asarray, params),
            jax.tree.map(jnp.asarray, opt_state),
            jnp.asarray(arrays["train_step"]),
        )
        self.updates = int(meta["updates"])
        self.replay.rng.bit_generator.state = meta["replay_rng"]
        if meta.get("replay_included"):
            self.replay.load_state_dict(prefixed(arrays, "replay/"))


class _EpisodeList:
    """An :class:`~agent.selfplay.EpisodeSink` that keeps the episodes for the next rollout."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []

    def add(self, episode: Episode) -> None:
        self.episodes.append(episode)

    def take(self) -> list[Episode]:
        out, self.episodes = self.episodes, []
        return out


class SelfPlayWorker:
    """Plays ``config.train.num_envs`` games of the env ``env_factory`` builds, with a jitted
    batched search over the newest parameters it was given.

    Args:
      env_factory: ``env_factory(num_envs, seed)``; called here (in the worker's process).
      config: the full :class:`~agent.config.Config`.
      seed: the env's seed.
      worker: this worker's index (reported in its rollouts).
    """

    def __init__(self, env_factory: EnvFactory, config: Config, seed: int, worker: int = 0):
        self.worker = int(worker)
        self.config = config
        self.env = env_factory(config.train.num_envs, int(seed))
        self.networks = make_networks(
            self.env.observation_size, self.env.num_actions, config.network
        )
        self.search_fn = make_search_fn(self.networks, config.search)
        self._sink = _EpisodeList()
        self.actor = Actor(self.env, self.search_fn, self._sink, config.train)
        self.version = -1
        self.params: Params | None = None

    def sizes(self) -> tuple[int, int]:
        """``(observation_size, num_actions)`` of the worker's env."""
        return self.env.observation_size, self.env.num_actions

    def pid(self) -> int:
        return os.getpid()

    def play(self, snapshot: ParamsSnapshot, batched_moves: int, key_seed: int) -> Rollout:
        """Plays ``batched_moves`` moves in every game with ``snapshot`` 's parameters (the
        search keys drawn from ``key_seed``); returns the games that finished meanwhile
        (games still in progress carry over to the next call)."""
        t0 = time.perf_counter()
        if snapshot.version != self.version or self.params is None:
            self.params = jax.tree.map(jnp.asarray, arrays_to_params(snapshot.arrays))
            self.version = snapshot.version
        games0, moves0 = self.actor.games, self.actor.moves
        key = jax.random.PRNGKey(int(key_seed) & 0x7FFFFFFF)
        for _ in range(int(batched_moves)):
            key, sub = jax.random.split(key)
            self.actor.step(self.params, sub)
        self.actor.flush()
        finished = self.actor.games - games0
        games = list(self.actor.finished)[-finished:] if finished else []
        return Rollout(
            worker=self.worker,
            version=self.version,
            moves=self.actor.moves - moves0,
            batched_moves=int(batched_moves),
            episodes=self._sink.take(),
            games=games,
            seconds=time.perf_counter() - t0,
            pid=os.getpid(),
        )
