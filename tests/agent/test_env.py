import itertools

import numpy as np
import pytest

from agent.env import BatchedEnv, KnapsackEnv, check_env, random_legal_actions


def test_reference_env_follows_the_protocol():
    env = KnapsackEnv(8, num_items=5, seed=3)
    assert isinstance(env, BatchedEnv)
    check_env(env, num_steps=100)


def test_dp_optimum_matches_brute_force_and_bounds_the_greedy_baseline():
    env = KnapsackEnv(20, num_items=6, seed=1)
    opt = env.optimal_return()
    for i in range(env.num_envs):
        w, v, cap = env.weights[i], env.values[i], env.capacity[i]
        best = max(
            v[list(s)].sum()
            for r in range(7)
            for s in itertools.combinations(range(6), r)
            if w[list(s)].sum() <= cap
        )
        assert opt[i] == pytest.approx(best / v.sum())
    assert (env.baseline_return() <= opt + 1e-6).all()


def test_random_play_respects_moves_left_and_auto_resets():
    env = KnapsackEnv(64, num_items=6, seed=2)
    rng = np.random.default_rng(0)
    obs, legal = env.reset()
    bound = env.moves_left().copy()
    opt = env.optimal_return()
    moves = np.zeros(64, int)
    ret = np.zeros(64)
    finished = np.zeros(64, bool)
    while not finished.all():
        obs, legal, reward, done = env.step(random_legal_actions(rng, legal))
        live = ~finished
        moves += live
        ret += np.where(live, reward, 0.0)
        finished |= done
    assert (moves <= bound).all()
    assert (ret <= opt + 1e-6).all()
    assert (env.taken.sum(axis=1) <= env.num_items).all()
    assert legal.any(axis=1).all()


def test_illegal_action_is_refused():
    env = KnapsackEnv(2, num_items=3, seed=0)
    env.reset()
    env.taken[:, 0] = True
    with pytest.raises(ValueError, match="illegal"):
        env.step(np.array([0, 3]))
