import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

from agent import Trainer, evaluate, load_policy, random_act_fn, write_curves_csv
from agent.checkpoint import arrays_to_params, read_checkpoint
from agent.env import random_legal_actions

from .conftest import TINY, N, make_env


def env_factory(num_envs, seed):
    return make_env(num_envs, seed)


def _tree_equal(a, b):
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def no_stop_act_fn(seed=0):
    """Random among the items that fit; stops only when forced: the trivial improvement."""
    rng = np.random.default_rng(seed)

    def act(obs, legal, moves_left):
        items = legal.copy()
        items[:, -1] = ~legal[:, :-1].any(axis=1)
        return random_legal_actions(rng, items)

    return act


def test_training_beats_random_play(tmp_path):
    """A tiny agent, a few hundred updates: clearly better than random on held-out games
    (the env's per-slot streams make all three policies play the same instances)."""
    records = []
    trainer = Trainer(env_factory, TINY, seed=0)
    trainer.train(300, callback=records.append)
    assert trainer.updates == 300 and len(records) == 300 // TINY.train.log_every
    assert records[-1]["step"] == 300 and np.isfinite(records[-1]["loss"])
    test_env = make_env(N, seed=12345)
    agent = evaluate(test_env, lambda o, legal, m: trainer.act(o, legal, m), games_per_env=4)
    rand = evaluate(make_env(N, seed=12345), random_act_fn(0), games_per_env=4)
    no_stop = evaluate(make_env(N, seed=12345), no_stop_act_fn(0), games_per_env=4)
    print(
        f"agent {agent['return'].mean():.3f} random {rand['return'].mean():.3f} "
        f"no-stop {no_stop['return'].mean():.3f} greedy {agent['baseline'].mean():.3f}"
    )
    np.testing.assert_array_equal(agent["baseline"], rand["baseline"])  # same instances
    assert agent["return"].mean() > rand["return"].mean() + 0.15
    assert agent["return"].mean() > no_stop["return"].mean() + 0.03

    # checkpoint -> resume gives back the exact state and keeps training; a temporary left by
    # a writer that was killed (a pid that is no longer running) is removed on resume
    path = trainer.save(tmp_path / "ck.npz")
    stale = tmp_path / f".ck.npz.{_dead_pid()}-k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    (tmp_path / "mine.tmp").write_bytes(b"not ours")
    resumed = Trainer.resume(path, env_factory)
    assert not stale.exists() and (tmp_path / "mine.tmp").exists()
    assert resumed.updates == trainer.updates and resumed.actor.games == trainer.actor.games
    assert _tree_equal(resumed.state.params, trainer.state.params)
    assert _tree_equal(resumed.state.opt_state, trainer.state.opt_state)
    assert np.array_equal(resumed.rng, trainer.rng)
    assert len(resumed.replay) == len(trainer.replay)
    assert np.array_equal(resumed.replay.priority, trainer.replay.priority)
    assert resumed.curves == trainer.curves
    resumed.train(10)
    assert resumed.updates == 310 and int(resumed.state.step) == 310

    # policy files are small and act like the trainer; loading one also clears stale temps
    small = trainer.save_policy(tmp_path / "policy.npz")
    assert small.stat().st_size < 1_000_000
    stale = tmp_path / f".policy.npz.{_dead_pid()}-k1ll3d.tmp"
    stale.write_bytes(b"half a policy")
    policy = load_policy(small)
    assert not stale.exists()
    obs, legal = test_env.reset()
    moves_left = test_env.moves_left()
    np.testing.assert_array_equal(
        policy.act(obs, legal, moves_left), trainer.act(obs, legal, moves_left)
    )
    arrays, meta = read_checkpoint(small)
    assert meta["kind"] == "policy" and _tree_equal(arrays_to_params(arrays), trainer.state.params)

    csv = write_curves_csv(trainer.curves, tmp_path / "curves.csv")
    assert csv.read_text().splitlines()[0].startswith("step,")


def test_ranked_mode_checkpoints_and_early_stop(tmp_path):
    cfg = TINY.replace(
        train__reward_mode="ranked",
        train__checkpoint_every=10,
        train__checkpoint_path=str(tmp_path / "ck.npz"),
        train__checkpoint_replay=False,
        train__log_every=5,
        train__reanalyse_every=5,
    )
    trainer = Trainer(env_factory, cfg, seed=1)
    trainer.train(40, callback=lambda record: record["step"] >= 15)
    assert trainer.updates == 15  # the callback asked to stop at 15
    assert {"ranked_reward", "return", "win_rate"} <= set(trainer.curves[-1])
    resumed = Trainer.resume(tmp_path / "ck.npz", env_factory)
    assert resumed.updates == 15 and len(resumed.replay) == 0
    assert len(resumed.actor.ranked.recent) == len(trainer.actor.ranked.recent) > 0


def test_same_seed_same_training():
    a = Trainer(env_factory, TINY.replace(replay__min_size=100), seed=3)
    b = Trainer(env_factory, TINY.replace(replay__min_size=100), seed=3)
    a.train(5)
    b.train(5)
    assert _tree_equal(a.state.params, b.state.params)
    assert a.actor.moves == b.actor.moves and np.array_equal(a.rng, b.rng)


def test_learning_starts_when_the_replay_is_full_below_min_size():
    """A replay whose capacity is below min_size (or so close to it that evicting whole
    episodes keeps it under) used to make train() collect forever; it now learns once the
    ring has wrapped. updates_per_actor_step <= 0 is refused instead of looping."""
    cfg = TINY.replace(replay__capacity=120, replay__min_size=500)
    trainer = Trainer(env_factory, cfg, seed=2)
    worker = threading.Thread(target=trainer.train, args=(3,), daemon=True)
    worker.start()
    worker.join(timeout=300)
    assert not worker.is_alive(), "train() never started learning"
    assert trainer.updates == 3 and len(trainer.replay) <= 120
    bad = Trainer(env_factory, TINY.replace(train__updates_per_actor_step=0.0), seed=2)
    with pytest.raises(ValueError, match="updates_per_actor_step"):
        bad.train(1)
