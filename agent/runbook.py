"""What :class:`agent.trainer.Trainer` and :class:`agent.distributed.AsyncTrainer` keep alike:
the learner's state behind properties, the training-curve records, the checkpoint's ``meta``
and arrays, and restoring them. A trainer sets ``config``, ``seed``, ``learner``, ``rng``,
``resumes`` and calls :meth:`RunBook._init_book`; it provides ``moves``, ``games``,
``observation_size``, ``num_actions`` and may add to :meth:`_extra_meta` / :meth:`_extra_arrays`
/ :meth:`_extra_record`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agent.checkpoint import params_to_arrays, write_checkpoint
from agent.config import Config
from agent.learner import TrainState
from agent.networks import Params
from agent.replay import ReplayBuffer
from agent.roles import Learner


class RunBook:
    config: Config
    seed: int
    learner: Learner
    rng: jax.Array
    resumes: int

    def _init_book(self) -> None:
        self.curves: list[dict[str, Any]] = []
        self.wall_time = 0.0  # seconds spent in train(), summed over resumes
        self._credit = 0.0
        self._metrics: list[dict[str, Any]] = []
        self._mark = (time.perf_counter(), 0, 0)  # (time, moves, updates) at the last record

    # -- provided by the trainer ----------------------------------------------------------
    @property
    def moves(self) -> int:  # single-game moves played in total
        raise NotImplementedError

    @property
    def games(self) -> int:  # games finished in total
        raise NotImplementedError

    observation_size: int
    num_actions: int

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _extra_record(self) -> dict[str, Any]:
        return {}

    def _game_stats(self) -> dict[str, float]:
        raise NotImplementedError

    # -- the learner's state --------------------------------------------------------------
    @property
    def params(self) -> Params:
        return self.learner.state.params

    @property
    def state(self) -> TrainState:
        return self.learner.state

    @state.setter
    def state(self, value: TrainState) -> None:
        self.learner.state = value

    @property
    def updates(self) -> int:
        return self.learner.updates

    @property
    def replay(self) -> ReplayBuffer:
        return self.learner.replay

    # -- training -------------------------------------------------------------------------
    def _begin(self, num_steps: int) -> tuple[int, int, float]:
        """Checks that training can finish; ``(target updates, first new record, start)``."""
        t = self.config.train
        if t.updates_per_actor_step <= 0 and num_steps > 0:
            raise ValueError(
                f"TrainConfig.updates_per_actor_step must be > 0 to learn, got "
                f"{t.updates_per_actor_step} (train() would never finish)"
            )
        start = time.perf_counter()
        self._mark = (start, self.moves, self.updates)
        return self.updates + int(num_steps), len(self.curves), start

    def _record(self) -> dict[str, Any]:
        """A training-curve record since the last one: counters, rates, recent games' stats,
        the trainer's own fields and the mean of the learner's metrics; appended to ``curves``."""
        now = time.perf_counter()
        t0, moves0, updates0 = self._mark
        dt = max(now - t0, 1e-9)
        metrics = jax.device_get(self._metrics)
        self._metrics = []
        record: dict[str, Any] = {
            "step": self.updates,
            "env_moves": self.moves,
            "games": self.games,
            "wall_time": round(self.wall_time, 3),
            "moves_per_s": (self.moves - moves0) / dt,
            "updates_per_s": (self.updates - updates0) / dt,
            "replay_size": len(self.replay),
            **self._extra_record(),
            **self._game_stats(),
        }
        if metrics:
            for key in metrics[0]:
                record[key] = float(np.mean([m[key] for m in metrics]))
        self.curves.append(record)
        self._mark = (now, self.moves, self.updates)
        return record

    # -- checkpoints ----------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "kind": "trainer",
            "config": self.config.to_dict(),
            "seed": self.seed,
            "observation_size": self.observation_size,
            "num_actions": self.num_actions,
            "updates": self.updates,
            "env_moves": self.moves,
            "games": self.games,
            "wall_time": self.wall_time,
            "credit": self._credit,
            "resumes": self.resumes,
            "replay_rng": self.replay.rng.bit_generator.state,
            "replay_included": False,
            "curves": self.curves,
            **self._extra_meta(),
        }

    def save(self, path: str | os.PathLike, include_replay: bool | None = None) -> Path:
        """Atomically writes everything needed to resume: params, optimizer state, RNG,
        counters, curves and, when ``include_replay`` (default ``train.checkpoint_replay``),
        the replay buffer. Games in progress are not saved: a resumed run starts new games."""
        if include_replay is None:
            include_replay = self.config.train.checkpoint_replay
        meta = self._meta()
        meta["replay_included"] = bool(include_replay)
        arrays = self.learner.state_arrays(bool(include_replay))
        arrays["rng"] = np.asarray(jax.device_get(self.rng))
        arrays.update(self._extra_arrays())
        return write_checkpoint(path, arrays, meta)

    def save_policy(self, path: str | os.PathLike) -> Path:
        """Writes only what inference needs (params + config): small enough to ship."""
        meta = self._meta()
        meta.update(kind="policy", curves=[], replay_included=False)
        return write_checkpoint(path, params_to_arrays(self.params), meta)

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """The learner's state, RNG, wall time, credit and curves of a checkpoint (the
        trainer restores its moves and games)."""
        if (self.observation_size, self.num_actions) != (
            meta["observation_size"],
            meta["num_actions"],
        ):
            raise ValueError("the env's observation/action sizes differ from the checkpoint's")
        self.learner.load_state_arrays(arrays, meta)
        self.rng = jnp.asarray(arrays["rng"])
        self.wall_time = float(meta["wall_time"])
        self._credit = float(meta["credit"])
        self.curves = list(meta["curves"])
