import numpy as np
import pytest

from agent.config import ReplayConfig
from agent.replay import Episode, ReplayBuffer, discounted_returns

A = 3


def episode(rewards, values=None, first_obs=0.0):
    t = len(rewards)
    values = np.zeros(t) if values is None else values
    return Episode(
        obs=(first_obs + np.arange(t, dtype=np.float32))[:, None].repeat(2, 1),
        legal=np.ones((t, A), bool),
        action=(np.arange(t) % A).astype(np.int32),
        reward=np.asarray(rewards, np.float32),
        policy=np.tile(np.array([0.2, 0.3, 0.5], np.float32), (t, 1)),
        root_value=np.asarray(values, np.float32),
        moves_left=np.arange(t, 0, -1).astype(np.int32),
    )


def buffer(capacity=100, **kw):
    return ReplayBuffer(2, A, ReplayConfig(capacity=capacity, min_size=1, **kw), seed=0)


def test_monte_carlo_and_n_step_targets():
    rb = buffer()
    rb.add(episode([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]))
    slots = np.array([0, 1, 2])
    mc = rb.make_batch(slots, unroll_steps=2, td_steps=None)
    np.testing.assert_allclose(mc.target_value, [[6, 5, 3], [5, 3, 0], [3, 0, 0]])
    np.testing.assert_allclose(mc.target_reward, [[1, 2], [2, 3], [3, 0]])
    np.testing.assert_allclose(mc.policy_mask, [[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(mc.target_policy[2, 1], [1 / 3] * 3)
    np.testing.assert_array_equal(mc.actions[0], [0, 1])
    np.testing.assert_allclose(mc.obs[:, 0], [0, 1, 2])
    one = rb.make_batch(slots, unroll_steps=2, td_steps=1)
    np.testing.assert_allclose(one.target_value, [[21, 32, 3], [32, 3, 0], [3, 0, 0]])
    two = rb.make_batch(slots, unroll_steps=0, td_steps=2)
    np.testing.assert_allclose(two.target_value[:, 0], [33, 5, 3])


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 1.0, 1.0]), 0.5), [1.75, 1.5, 1.0])
    rb = ReplayBuffer(2, A, ReplayConfig(capacity=10), discount=0.5)
    rb.add(episode([1.0, 1.0, 1.0], [4.0, 4.0, 4.0]))
    b = rb.make_batch(np.array([0]), unroll_steps=0, td_steps=1)
    assert b.target_value[0, 0] == pytest.approx(1.0 + 0.5 * 4.0)


def test_whole_episodes_are_evicted_and_wrapping_is_read_back():
    rb = buffer(capacity=10)
    rb.add(episode([1, 1, 1, 1], first_obs=0))
    rb.add(episode([2, 2, 2, 2], first_obs=10))
    rb.add(episode([3, 3, 3, 3], first_obs=20))  # evicts the first, wraps around the ring
    assert len(rb) == 8 and len(rb.episodes) == 2
    assert (rb.priority[rb.position < 0] == 0).all()
    live = np.flatnonzero(rb.position >= 0)
    assert sorted(rb.obs[live, 0]) == [10, 11, 12, 13, 20, 21, 22, 23]
    slot = int(np.flatnonzero(rb.obs[:, 0] == 20)[0])
    b = rb.make_batch(np.array([slot]), unroll_steps=4, td_steps=None)
    np.testing.assert_allclose(b.target_value[0], [12, 9, 6, 3, 0])
    with pytest.raises(ValueError):
        rb.add(episode([0] * 11))


def test_sampling_is_proportional_with_importance_weights():
    rb = buffer(capacity=10, alpha=1.0, beta=1.0, epsilon=0.0)
    rb.add(episode([0, 0, 0, 0]))
    rb.update_priorities(np.arange(4), np.array([1.0, 1.0, 1.0, 3.0]))
    counts = np.zeros(4)
    for _ in range(200):
        slots, _ = rb.sample_slots(12)
        counts += np.bincount(slots, minlength=10)[:4]
    assert counts[3] / counts[:3].mean() == pytest.approx(3.0, rel=0.15)
    b = rb.sample(64, unroll_steps=1)
    assert b.weights.max() == pytest.approx(1.0)
    assert (b.weights[b.indices == 3] < b.weights[b.indices == 0].min()).all()


def test_state_dict_round_trip_reproduces_sampling():
    rb = buffer(capacity=20)
    for i in range(6):
        rb.add(episode(np.arange(3) + i, np.arange(3) * 2.0, first_obs=i))
    rb.update_priorities(np.arange(5), np.arange(5) + 1.0)
    other = buffer(capacity=20)
    other.load_state_dict(rb.state_dict())
    other.rng.bit_generator.state = rb.rng.bit_generator.state
    a, b = rb.sample(8, 2, 1), other.sample(8, 2, 1)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
