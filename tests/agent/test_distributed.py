"""Asynchronous training (agent/distributed.py, agent/roles.py) on the knapsack game: the roles
in one process and as Ray actors, versioned parameters, stale rollouts dropped, a worker killed
with SIGKILL mid-run, checkpoints that either trainer resumes."""

from __future__ import annotations

import dataclasses
import os
import signal

import jax
import numpy as np
import pytest

from agent.checkpoint import read_checkpoint
from agent.distributed import AsyncTrainer, LocalLauncher, RayLauncher, WorkerFailure
from agent.roles import Rollout, SelfPlayWorker
from agent.trainer import Trainer
from tests.agent.conftest import TINY, make_env

CONFIG = dataclasses.replace(
    TINY, train=dataclasses.replace(TINY.train, updates_per_actor_step=0.5, log_every=10)
)


def _leaves(params) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(params)]


def test_local_workers_train_and_publish_versions(tmp_path):
    trainer = AsyncTrainer(make_env, CONFIG, seed=0, workers=2, publish_every=5)
    before = _leaves(trainer.params)
    records = trainer.train(40)
    assert trainer.updates == 40 and len(records) == 4
    assert trainer.version == 40 // 5
    assert trainer.games > 0 and trainer.moves > 0 and len(trainer.replay) > 0
    last = records[-1]
    assert last["workers"] == 2 and last["worker_failures"] == 0 and last["stale_dropped"] == 0
    assert last["param_lag"] == 0.0  # in one process a chunk takes the newest parameters
    assert last["moves_per_s"] > 0 and last["updates_per_s"] > 0
    assert np.isfinite(last["loss"]) and not np.isnan(last["return"])
    after = _leaves(trainer.params)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # learning keeps the replay ratio of the one-process trainer: 0.5 updates per batched move
    moves_booked = trainer.moves / CONFIG.train.num_envs
    assert trainer.updates <= 0.5 * moves_booked + 1


def test_a_rollout_played_with_stale_parameters_is_dropped():
    config = dataclasses.replace(CONFIG, replay=dataclasses.replace(CONFIG.replay, min_size=1))
    trainer = AsyncTrainer(make_env, config, seed=0, workers=1, max_staleness=2)
    worker = trainer.launcher.workers[0]
    rollout = worker.play(trainer.learner.snapshot(0), 3, key_seed=1)
    assert isinstance(rollout, Rollout) and rollout.moves == 3 * CONFIG.train.num_envs
    trainer.version = 3  # three publications since: more than max_staleness
    trainer._take(0, rollout)
    assert trainer.stale_dropped == 1 and trainer.moves == 0 and trainer._credit == 0.0
    trainer.version = 2
    trainer._take(0, rollout)
    assert trainer.stale_dropped == 1 and trainer.moves == rollout.moves
    assert trainer._credit == 0.5 * 3


def test_a_worker_whose_env_raises_is_rebuilt_and_training_goes_on():
    calls = {"n": 0}

    class Flaky:
        def __init__(self, num_envs, seed):
            self.env = make_env(num_envs, seed)
            self.num_envs, self.observation_size = num_envs, self.env.observation_size
            self.num_actions = self.env.num_actions

        def __getattr__(self, name):
            return getattr(self.env, name)

        def step(self, actions):
            calls["n"] += 1
            if calls["n"] == 30:
                raise RuntimeError("the env broke")
            return self.env.step(actions)

    trainer = AsyncTrainer(Flaky, CONFIG, seed=0, workers=2)
    trainer.train(20)
    assert trainer.updates == 20 and trainer.worker_failures == 1
    assert "the env broke" in trainer.failures[0]


def test_checkpoints_resume_in_either_trainer(tmp_path):
    path = tmp_path / "ckpt.npz"
    trainer = AsyncTrainer(make_env, CONFIG, seed=3, workers=2)
    trainer.train(20)
    trainer.save(path)
    arrays, meta = read_checkpoint(path)
    assert meta["kind"] == "trainer" and meta["workers"] == 2 and meta["replay_included"]
    resumed = AsyncTrainer.resume(path, make_env)
    assert resumed.num_workers == 2 and resumed.resumes == 1
    assert resumed.updates == 20 and resumed.games == trainer.games
    assert len(resumed.replay) == len(trainer.replay)
    for a, b in zip(_leaves(trainer.params), _leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(a, b)
    resumed.train(10)
    assert resumed.updates == 30
    one = Trainer.resume(path, make_env)  # the one-process trainer reads it too
    assert one.updates == 20 and len(one.replay) == len(trainer.replay)
    one.save(tmp_path / "one.npz")
    back = AsyncTrainer.resume(tmp_path / "one.npz", make_env, workers=1)
    assert back.updates == 20 and back.num_workers == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="workers"):
        AsyncTrainer(make_env, CONFIG, workers=0)
    with pytest.raises(RuntimeError, match="ray.init"):
        pytest.importorskip("ray")
        import ray

        if ray.is_initialized():
            pytest.skip("Ray is running in this process")
        RayLauncher()


def test_worker_failure_is_a_value():
    f = WorkerFailure("worker died")
    assert str(f) == "worker died"
    assert isinstance(LocalLauncher().drain(), list)
    assert SelfPlayWorker(make_env, CONFIG, 0).sizes() == (
        make_env().observation_size,
        make_env().num_actions,
    )


@pytest.mark.slow
def test_ray_workers_survive_a_sigkill_mid_run(ray_cluster):
    trainer = AsyncTrainer(make_env, CONFIG, seed=0, workers=2, launcher=RayLauncher())
    try:
        pids = trainer.worker_pids()
        assert len(set(pids)) == 2 and os.getpid() not in pids
        killed = []

        def kill_one(record):
            if not killed:
                os.kill(pids[0], signal.SIGKILL)  # mid-run: its chunk in flight is lost
                killed.append(record["step"])

        trainer.train(60, kill_one)
        assert trainer.updates == 60
        assert trainer.worker_failures >= 1, trainer.failures
        new = trainer.worker_pids()  # restarted by Ray (max_restarts)
        assert new[0] != pids[0] and new[1] == pids[1]
        records = trainer.curves
        assert records[-1]["env_moves"] > records[0]["env_moves"]
        assert records[-1]["params_version"] == trainer.version == 60 // trainer.publish_every
    finally:
        trainer.close()


def test_training_stops_at_its_deadline_without_draining():
    import time

    trainer = AsyncTrainer(make_env, CONFIG, seed=1, workers=2)
    trainer.train(20)  # compiled, the replay ready
    t0 = time.perf_counter()
    trainer.train(10**6, deadline=t0 + 1.0)
    assert time.perf_counter() - t0 < 5.0 and 20 < trainer.updates < 10**6
    assert not trainer.launcher._queue  # nothing left in flight
