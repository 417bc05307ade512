import jax
import numpy as np

from agent.learner import init_train_state, make_update_fn
from agent.replay import Episode, ReplayBuffer

from .conftest import TINY, B, K, make_env


def test_update_fits_a_fixed_batch(networks, params):
    """A few updates on one batch of real trajectories reduce every loss."""
    env = make_env()
    rb = ReplayBuffer(env.observation_size, env.num_actions, TINY.replay)
    rng = np.random.default_rng(0)
    obs, legal = env.reset()
    for _ in range(6):
        p = rng.random(legal.shape) * legal
        p /= p.sum(1, keepdims=True)
        actions = p.argmax(1)
        nxt, nlegal, reward, done = env.step(actions)
        for i in range(env.num_envs):
            rb.add(
                Episode(
                    obs[i : i + 1],
                    legal[i : i + 1],
                    actions[i : i + 1].astype(np.int32),
                    reward[i : i + 1],
                    p[i : i + 1].astype(np.float32),
                    np.zeros(1, np.float32),
                    np.ones(1, np.int32),
                )
            )
        obs, legal = nxt, nlegal
    batch = rb.sample(B, K, None)
    state = init_train_state(params, TINY.train)
    update = make_update_fn(networks, TINY.train)
    first = None
    for _ in range(60):
        state, metrics, priorities = update(state, batch._replace(indices=None))
        first = first or jax.device_get(metrics)
    last = jax.device_get(metrics)
    assert int(state.step) == 60
    assert priorities.shape == (B,)
    assert last["loss"] < 0.5 * first["loss"]
    assert last["value_loss"] < first["value_loss"]
    assert last["reward_loss"] < first["reward_loss"]
    assert last["policy_loss"] < first["policy_loss"]
    assert np.isfinite(last["grad_norm"])
