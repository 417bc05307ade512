import jax
import numpy as np
import pytest

from agent.config import TrainConfig
from agent.env import random_legal_actions
from agent.replay import ReplayBuffer
from agent.search import SearchOutput, make_search_fn
from agent.selfplay import Actor, RankedReward, evaluate, random_act_fn, reanalyse

from .conftest import TINY, N, make_env


def fake_search(seed=0):
    """A numpy stand-in for the jitted search (no compile): random legal move, uniform policy."""
    rng = np.random.default_rng(seed)

    def search(params, key, obs, legal, moves_left, greedy=False):
        w = legal / legal.sum(1, keepdims=True)
        return SearchOutput(
            random_legal_actions(rng, legal), w.astype(np.float32), moves_left * 0.1
        )

    return search


def test_actor_records_whole_games():
    env = make_env()
    rb = ReplayBuffer(env.observation_size, env.num_actions, TINY.replay)
    actor = Actor(env, fake_search(), rb, TINY.train, initial_length=2)  # forces buffer growth
    for _ in range(40):
        actor.step(None, None)
    assert actor.moves == 40 * N
    assert actor.games == len(rb.episodes) == rb.num_episodes_added > N
    stored = sum(t for _, t in rb.episodes)
    assert len(rb) == stored
    in_flight = actor._t.sum()
    assert stored + in_flight == actor.moves
    games = list(actor.finished)
    for (start, t), g in zip(rb.episodes, games, strict=True):
        slots = np.arange(start, start + t) % rb.capacity
        assert t == g["length"]
        assert rb.reward[slots].sum() == pytest.approx(g["return"], abs=1e-5)
        assert rb.legal[slots, rb.action[slots]].all()
        assert t <= rb.moves_left[slots[0]]
        assert (np.diff(rb.moves_left[slots]) <= 0).all()
        np.testing.assert_allclose(rb.policy[slots].sum(1), 1.0, rtol=1e-5)
        assert rb.obs[slots[0], 3 * env.num_items : 4 * env.num_items].sum() == 0  # nothing taken
    stats = actor.recent_stats()
    assert 0.0 < stats["return"] < 1.0 and 0.0 <= stats["win_rate"] <= 1.0


def test_actor_books_finished_games_while_the_next_search_runs():
    """The search is dispatched before the previous move's finished games are booked: at each
    search call the replay holds the games that ended up to two moves ago; step() reports the
    games that ended at once, and flush() books them."""
    env = make_env()
    rb = ReplayBuffer(env.observation_size, env.num_actions, TINY.replay)
    inner = fake_search()
    seen = []

    def search(params, key, obs, legal, moves_left, greedy=False):
        seen.append(rb.num_episodes_added)
        return inner(params, key, obs, legal, moves_left, greedy)

    actor = Actor(env, search, rb, TINY.train)
    ended = [actor.step(None, None) for _ in range(30)]
    assert sum(ended) > 0
    # at the search of move m, the games that ended at moves < m - 1 are booked, not those of m - 1
    for m in range(2, 30):
        assert seen[m] == sum(ended[: m - 1])
    assert actor.games == rb.num_episodes_added == sum(ended[:-1])
    actor.flush()
    assert actor.games == rb.num_episodes_added == sum(ended)
    actor.flush()  # nothing pending: no-op
    assert actor.games == sum(ended)


def test_ranked_reward_references():
    cfg = TrainConfig(ranked_quantile=0.5, ranked_window=4)
    rr = RankedReward(cfg)
    np.testing.assert_array_equal(rr(np.array([0.3]), np.array([np.nan])), [0.0])  # no reference
    rr.recent.extend([0.1, 0.2, 0.4])  # window now [0.3, 0.1, 0.2, 0.4] -> median 0.25
    np.testing.assert_array_equal(rr(np.array([0.5, 0.25, 0.2]), np.full(3, np.nan)), [1, 0, -1])
    assert len(rr.recent) == 4
    rr = RankedReward(TrainConfig(ranked_reference="baseline"))
    np.testing.assert_array_equal(
        rr(np.array([0.5, 0.5, 0.5]), np.array([0.4, 0.5, 0.6])), [1, 0, -1]
    )
    rr = RankedReward(TrainConfig(ranked_reference="max", ranked_quantile=1.0))
    rr.recent.extend([0.7])
    np.testing.assert_array_equal(rr(np.array([0.6, 0.8]), np.array([0.5, 0.5])), [-1, 1])


def test_actor_in_ranked_mode_writes_terminal_rewards():
    env = make_env()
    cfg = TrainConfig(reward_mode="ranked", ranked_reference="baseline")
    rb = ReplayBuffer(env.observation_size, env.num_actions, TINY.replay)
    actor = Actor(env, fake_search(1), rb, cfg)
    for _ in range(20):
        actor.step(None, None)
    for (start, t), g in zip(rb.episodes, actor.finished, strict=True):
        slots = np.arange(start, start + t) % rb.capacity
        assert (rb.reward[slots[:-1]] == 0).all()
        expected = (
            np.sign(g["return"] - g["baseline"]) if abs(g["return"] - g["baseline"]) > 1e-6 else 0
        )
        assert rb.reward[slots[-1]] == expected == g["ranked_reward"]


def test_evaluate_plays_an_exact_number_of_games():
    env = make_env(8, seed=5)
    res = evaluate(env, random_act_fn(0), games_per_env=3)
    assert res["return"].shape == res["baseline"].shape == (24,)
    assert (res["return"] <= 1.0).all() and (res["baseline"] > 0).all()


def test_reanalyse_refreshes_stored_policies(networks, params):
    env = make_env()
    rb = ReplayBuffer(env.observation_size, env.num_actions, TINY.replay)
    actor = Actor(env, fake_search(2), rb, TINY.train)
    for _ in range(10):
        actor.step(None, None)
    search = make_search_fn(networks, TINY.search)
    before = rb.policy.copy()
    slots = reanalyse(rb, search, params, jax.random.PRNGKey(0), N)
    assert slots.shape == (N,)
    assert (rb.position[slots] >= 0).all()
    np.testing.assert_allclose(rb.policy[slots].sum(1), 1.0, rtol=1e-5)
    assert (rb.policy[slots][~rb.legal[slots]] < 1e-6).all()
    assert not np.allclose(rb.policy[slots], before[slots])
