"""Asynchronous self-play and learning: :class:`AsyncTrainer`, in one process or on Ray.

The roles are the plain classes of :mod:`agent.roles`: ``W`` :class:`~agent.roles.SelfPlayWorker` s
play chunks of ``moves_per_task`` batched moves, one :class:`~agent.roles.Learner` (in the
driver's process) owns the replay buffer and the optimizer. A launcher runs the workers:

- :class:`LocalLauncher`: in this process, one chunk at a time, between the learner's updates
  (what ``Trainer`` does, with the roles apart; for a laptop, tests and reference figures);
- :class:`RayLauncher`: each worker a Ray actor (``num_cpus`` CPUs, ``JAX_PLATFORMS=cpu``,
  ``max_restarts``) on whatever cluster ``ray.init`` joined; the chunks run while the driver
  learns.

The driver's loop: collect the finished rollouts (``ray.wait``), put their games in the replay,
learn ``updates_per_actor_step`` updates per batched move played (the same ratio as ``Trainer``:
a worker whose chunk comes back while the learner owes more than two chunks' worth of updates
per worker waits before its next chunk), publish the parameters (a numpy
:class:`~agent.roles.ParamsSnapshot`, ``ray.put`` once) every ``publish_every`` updates, and
give each worker whose chunk came back the newest snapshot for its next chunk. So a worker's
parameters are at most the publications made during one of its chunks old; a rollout played with
parameters more than ``max_staleness`` publications behind the newest is dropped
(``stale_dropped``; its moves earn no updates).

Faults: a worker that dies (killed, out of memory, a crash in the env) loses only its chunk in
flight: the driver records it (``worker_failures``) and sends the next chunk to the restarted
actor (Ray restarts it, ``max_restarts``; locally the worker is rebuilt). Checkpoints have the
format and fields of :meth:`agent.trainer.Trainer.save` (kind ``trainer``, the replay
included by default), written atomically; :meth:`AsyncTrainer.resume` (or ``Trainer.resume``)
continues a killed driver's run from one, with new games.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

from agent.checkpoint import (
    read_checkpoint,
    remove_stale_temps,
)
from agent.config import Config
from agent.networks import Networks
from agent.roles import EnvFactory, Learner, ParamsSnapshot, Rollout, SelfPlayWorker
from agent.runbook import RunBook
from agent.selfplay import game_stats

Callback = Callable[[dict[str, Any]], Any]  # called with each curve record; True stops

#: environment of a Ray worker: JAX on the CPU, one thread for XLA's own pool per worker
WORKER_ENV = {
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


class WorkerFailure(NamedTuple):
    """A chunk that did not come back: the worker died (or its env raised)."""

    message: str

    def __str__(self) -> str:
        return self.message


class Launcher(Protocol):
    """Starts the workers and runs their chunks."""

    def start(self, env_factory: EnvFactory, config: Config, seeds: list[int]) -> None: ...

    def sizes(self) -> tuple[int, int]: ...

    def publish(self, snapshot: ParamsSnapshot) -> Any: ...

    def submit(self, worker: int, published: Any, batched_moves: int, key_seed: int) -> None: ...

    def wait(self, block: bool) -> list[tuple[int, Rollout | WorkerFailure]]: ...

    def drain(self) -> list[tuple[int, Rollout | WorkerFailure]]: ...

    def abandon(self) -> None: ...

    def pids(self) -> list[int]: ...

    def close(self) -> None: ...


class LocalLauncher:
    """The workers in this process: a submitted chunk runs when the driver waits for it, with
    the newest parameters published by then (so its parameters are never stale)."""

    name = "local"

    def __init__(self) -> None:
        self.workers: list[SelfPlayWorker] = []
        self._queue: deque[tuple[int, int, int]] = deque()
        self._latest: ParamsSnapshot | None = None
        self._args: tuple[EnvFactory, Config, list[int]] | None = None

    def start(self, env_factory: EnvFactory, config: Config, seeds: list[int]) -> None:
        self._args = (env_factory, config, seeds)
        self.workers = [SelfPlayWorker(env_factory, config, s, i) for i, s in enumerate(seeds)]

    def sizes(self) -> tuple[int, int]:
        return self.workers[0].sizes()

    def publish(self, snapshot: ParamsSnapshot) -> ParamsSnapshot:
        self._latest = snapshot
        return snapshot

    def submit(self, worker: int, published: Any, batched_moves: int, key_seed: int) -> None:
        self._queue.append((worker, batched_moves, key_seed))

    def wait(self, block: bool) -> list[tuple[int, Rollout | WorkerFailure]]:
        if not block or not self._queue or self._latest is None:
            return []
        worker, moves, key_seed = self._queue.popleft()
        try:
            return [(worker, self.workers[worker].play(self._latest, moves, key_seed))]
        except Exception as e:  # the env raised: rebuild the worker, as Ray would restart it
            env_factory, config, seeds = self._args  # type: ignore[misc]
            self.workers[worker] = SelfPlayWorker(env_factory, config, seeds[worker], worker)
            return [(worker, WorkerFailure(f"{type(e).__name__}: {e}"))]

    def drain(self) -> list[tuple[int, Rollout | WorkerFailure]]:
        """Nothing runs meanwhile here: the chunks not played yet are dropped."""
        self._queue.clear()
        return []

    def abandon(self) -> None:
        self._queue.clear()

    def pids(self) -> list[int]:
        return [os.getpid()] * len(self.workers)

    def close(self) -> None:
        self._queue.clear()


class RayLauncher:
    """Each worker a Ray actor. ``ray.init`` must have run (the caller joins the cluster).

    Args:
      num_cpus: CPUs each worker asks for.
      max_restarts: restarts of a dead worker (-1: no limit); its chunk in flight is lost.
      env_vars: the workers' environment (default :data:`WORKER_ENV`).
    """

    name = "ray"

    def __init__(
        self, num_cpus: float = 1.0, max_restarts: int = -1, env_vars: dict | None = None
    ) -> None:
        import ray  # deferred: optional, and heavy

        if not ray.is_initialized():
            raise RuntimeError("RayLauncher: call ray.init (join a cluster) first")
        self.ray = ray
        self.num_cpus = float(num_cpus)
        self.max_restarts = int(max_restarts)
        self.env_vars = dict(WORKER_ENV if env_vars is None else env_vars)
        self.actors: list[Any] = []
        self._pending: dict[Any, int] = {}

    def start(self, env_factory: EnvFactory, config: Config, seeds: list[int]) -> None:
        cls = self.ray.remote(SelfPlayWorker).options(
            num_cpus=self.num_cpus,
            max_restarts=self.max_restarts,
            max_task_retries=0,
            runtime_env={"env_vars": self.env_vars},
        )
        # the constructor's arguments put once and held here, so that a restart finds them
        self._args = (self.ray.put(env_factory), self.ray.put(config))
        self.actors = [cls.remote(*self._args, s, i) for i, s in enumerate(seeds)]

    def sizes(self) -> tuple[int, int]:
        return tuple(self.ray.get(self.actors[0].sizes.remote()))  # type: ignore[return-value]

    def publish(self, snapshot: ParamsSnapshot) -> Any:
        return self.ray.put(snapshot)

    def submit(self, worker: int, published: Any, batched_moves: int, key_seed: int) -> None:
        ref = self.actors[worker].play.remote(published, batched_moves, key_seed)
        self._pending[ref] = worker

    def wait(self, block: bool) -> list[tuple[int, Rollout | WorkerFailure]]:
        if not self._pending:
            return []
        ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=None if block else 0.0)
        if ready:  # everything else that is ready too, without waiting
            more, _ = self.ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
            ready = list(dict.fromkeys([*ready, *more]))
        out: list[tuple[int, Rollout | WorkerFailure]] = []
        for ref in ready:
            worker = self._pending.pop(ref)
            try:
                out.append((worker, self.ray.get(ref)))
            except self.ray.exceptions.RayError as e:  # died: Ray restarts it (max_restarts)
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                out.append((worker, WorkerFailure(f"{type(e).__name__}: {first}")))
        return out

    def drain(self) -> list[tuple[int, Rollout | WorkerFailure]]:
        """Waits for every chunk in flight."""
        out: list[tuple[int, Rollout | WorkerFailure]] = []
        while self._pending:
            out += self.wait(block=True)
        return out

    def abandon(self) -> None:
        """Forgets the chunks in flight (their results are never read)."""
        self._pending = {}

    def pids(self, timeout: float = 120.0) -> list[int]:
        """The workers' process ids; waits for a worker that is restarting."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return [int(p) for p in self.ray.get([a.pid.remote() for a in self.actors])]
            except self.ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors, self._pending = [], {}


class AsyncTrainer(RunBook):
    """MuZero training with ``workers`` self-play workers and one learner (see the module).

    Args:
      env_factory: ``env_factory(num_envs, seed)``; picklable for the Ray launcher (it is
        called in the workers' processes).
      config: the full :class:`~agent.config.Config` (``train.num_envs`` games per worker).
      seed: seeds the network init, the replay sampling, the workers' envs and searches.
      workers: self-play workers.
      launcher: :class:`LocalLauncher` (default) or :class:`RayLauncher`.
      moves_per_task: batched moves in a worker's chunk.
      publish_every: learner updates between publications of the parameters.
      max_staleness: publications a rollout's parameters may be behind; older ones are dropped.
      learner: a :class:`~agent.roles.Learner` to train (e.g. a ``Trainer``'s, to share its
        replay and parameters); by default a new one.
    """

    def __init__(
        self,
        env_factory: EnvFactory,
        config: Config | None = None,
        seed: int = 0,
        workers: int = 2,
        launcher: Launcher | None = None,
        moves_per_task: int = 8,
        publish_every: int = 10,
        max_staleness: int = 4,
        resumes: int = 0,
        learner: Learner | None = None,
    ) -> None:
        if workers < 1 or moves_per_task < 1 or publish_every < 1 or max_staleness < 0:
            raise ValueError(
                f"AsyncTrainer needs workers, moves_per_task, publish_every >= 1 and "
                f"max_staleness >= 0, got {workers}, {moves_per_task}, {publish_every}, "
                f"{max_staleness}"
            )
        self.config = config = config or Config()
        self.seed = int(seed)
        self.num_workers = int(workers)
        self.moves_per_task = int(moves_per_task)
        self.publish_every = int(publish_every)
        self.max_staleness = int(max_staleness)
        self.resumes = int(resumes)
        self.launcher: Launcher = launcher or LocalLauncher()
        # worker i's env seed: distinct per worker and per resume (fresh games after a resume)
        seeds = [self.seed + 7919 * (i + 1) + 1_000_003 * self.resumes for i in range(workers)]
        self.launcher.start(env_factory, config, seeds)
        self.observation_size, self.num_actions = self.launcher.sizes()
        key, init_key = jax.random.split(jax.random.PRNGKey(self.seed))
        self.rng = key
        if learner is None:
            learner = Learner(self.observation_size, self.num_actions, config, self.seed, init_key)
        elif learner.networks.observation_size != self.observation_size or (
            learner.networks.num_actions != self.num_actions
        ):
            self.launcher.close()
            raise ValueError("the learner's observation/action sizes differ from the env's")
        self.learner = learner
        self.networks: Networks = self.learner.networks
        self.version = 0
        self._init_book()
        self._moves = 0  # single-game moves of the rollouts booked
        self._games = 0
        self.worker_failures = 0
        self.stale_dropped = 0
        self.failures: list[str] = []  # the last few failures' messages
        self._finished: deque[dict[str, float]] = deque(maxlen=1024)
        self._lags: list[int] = []
        self._published: Any = None
        self._parked: list[int] = []  # workers waiting for the learner to catch up
        self._task = 0

    # -- state ----------------------------------------------------------------------------
    @property
    def moves(self) -> int:
        """Single-game moves of the rollouts the learner booked."""
        return self._moves

    @property
    def games(self) -> int:
        """Games the learner booked."""
        return self._games

    def worker_pids(self) -> list[int]:
        return self.launcher.pids()

    # -- the loop -------------------------------------------------------------------------
    def _publish(self) -> None:
        self._published = self.launcher.publish(self.learner.snapshot(self.version))

    def _submit(self, worker: int) -> None:
        self._task += 1
        key_seed = (self.seed * 1_000_003 + 7919 * self.resumes + self._task) & 0x7FFFFFFF
        self.launcher.submit(worker, self._published, self.moves_per_task, key_seed)

    @property
    def max_credit(self) -> float:
        """Updates owed beyond which a worker whose chunk came back waits for the learner:
        two chunks' worth per worker, so that the replay ratio stays the configured one."""
        per_chunk = self.config.train.updates_per_actor_step * self.moves_per_task
        # at least one update: a parked worker then always has an update to wait for
        return max(2.0 * per_chunk * self.num_workers, 1.0)

    def _resubmit(self, worker: int) -> None:
        if self._credit >= self.max_credit:
            self._parked.append(worker)
        else:
            self._submit(worker)

    def _take(self, worker: int, result: Rollout | WorkerFailure) -> None:
        if isinstance(result, WorkerFailure):
            self.worker_failures += 1
            self.failures = [*self.failures[-4:], f"worker {worker}: {result}"]
            return
        lag = self.version - result.version
        if lag > self.max_staleness:
            self.stale_dropped += 1
            return
        self._lags.append(lag)
        self.learner.add(result.episodes)
        self._finished.extend(result.games)
        self._moves += result.moves
        self._games += len(result.games)
        if self.learner.ready():  # as Trainer: no debt of updates while the replay fills
            self._credit += self.config.train.updates_per_actor_step * result.batched_moves

    def train(
        self, num_steps: int, callback: Callback | None = None, deadline: float | None = None
    ) -> list[dict[str, Any]]:
        """Runs ``num_steps`` learner updates while the workers play; records, callback and
        checkpoints as :meth:`agent.trainer.Trainer.train`; stops early at ``deadline`` (a
        ``time.perf_counter()`` time) if given, without waiting for the chunks in flight (their
        games are lost). Returns the records it added."""
        t = self.config.train
        target, first_record, start = self._begin(num_steps)
        self._publish()
        self._parked = []
        for worker in range(self.num_workers):
            self._resubmit(worker)
        stop = late = False
        try:
            while self.updates < target and not stop:
                if deadline is not None and time.perf_counter() >= deadline:
                    late = True
                    break
                can_learn = self._credit >= 1.0 and self.learner.ready()
                for worker, result in self.launcher.wait(block=not can_learn):
                    self._take(worker, result)
                    self._resubmit(worker)
                if not (self._credit >= 1.0 and self.learner.ready()):
                    continue
                self._credit -= 1.0
                while self._parked and self._credit < self.max_credit:
                    self._submit(self._parked.pop(0))
                self._metrics.append(self.learner.update())
                u = self.updates
                if u % self.publish_every == 0:
                    self.version += 1
                    self._publish()
                if t.reanalyse_every and u % t.reanalyse_every == 0:
                    self.rng, key = jax.random.split(self.rng)
                    self.learner.reanalyse(key, t.num_envs)
                if t.log_every and u % t.log_every == 0:
                    self.wall_time += time.perf_counter() - start
                    start = time.perf_counter()
                    record = self._record()
                    if callback is not None and callback(record) is True:
                        stop = True
                if t.checkpoint_every and u % t.checkpoint_every == 0 and t.checkpoint_path:
                    self.save(t.checkpoint_path)
        finally:
            self.wall_time += time.perf_counter() - start
            if late:  # at the deadline: no waiting for chunks in flight (their games are lost)
                self.launcher.abandon()
            else:
                self._drain()
        if t.checkpoint_path:
            self.save(t.checkpoint_path)
        return self.curves[first_record:]

    def _drain(self) -> None:
        """Books the chunks in flight (their games go to the replay), so that none is left
        pending between two calls of :meth:`train`."""
        for worker, result in self.launcher.drain():
            self._take(worker, result)

    def _extra_record(self) -> dict[str, Any]:
        lags, self._lags = self._lags, []
        return {
            "workers": self.num_workers,
            "params_version": self.version,
            "param_lag": float(np.mean(lags)) if lags else float("nan"),
            "worker_failures": self.worker_failures,
            "stale_dropped": self.stale_dropped,
        }

    def _game_stats(self) -> dict[str, float]:
        ranked = self.config.train.reward_mode == "ranked"
        return game_stats(list(self._finished)[-256:], ranked)

    def close(self) -> None:
        """Stops the workers."""
        self.launcher.close()

    # -- checkpoints ----------------------------------------------------------------------
    def _extra_meta(self) -> dict[str, Any]:
        return {
            "params_version": self.version,
            "workers": self.num_workers,
            "worker_failures": self.worker_failures,
            "stale_dropped": self.stale_dropped,
        }

    @classmethod
    def resume(
        cls,
        path: str | os.PathLike,
        env_factory: EnvFactory,
        workers: int | None = None,
        launcher: Launcher | None = None,
        **kw: Any,
    ) -> AsyncTrainer:
        """Continues the run of a trainer checkpoint (this class's or ``Trainer``'s): params,
        optimizer state, replay (when saved), counters and curves; new workers with new games.
        ``workers`` defaults to the checkpoint's (1 for a ``Trainer``'s)."""
        remove_stale_temps(path)
        arrays, meta = read_checkpoint(path)
        if meta.get("kind") != "trainer":
            raise ValueError(f"{path}: a {meta.get('kind')!r} checkpoint cannot be resumed")
        config = Config.from_dict(meta["config"])
        trainer = cls(
            env_factory,
            config,
            int(meta["seed"]),
            workers=int(workers or meta.get("workers", 1)),
            launcher=launcher,
            resumes=int(meta.get("resumes", 0)) + 1,
            **kw,
        )
        try:
            trainer._restore(arrays, meta)
        except ValueError:
            trainer.close()
            raise
        trainer._moves = int(meta["env_moves"])
        trainer._games = int(meta["games"])
        trainer.version = int(meta.get("params_version", 0))
        trainer.worker_failures = int(meta.get("worker_failures", 0))
        trainer.stale_dropped = int(meta.get("stale_dropped", 0))
        return trainer
