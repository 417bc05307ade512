import jax
import jax.numpy as jnp
import numpy as np

from agent.networks import num_params

from .conftest import TINY, make_env


def test_shapes_and_untrained_outputs(networks, params):
    env = make_env()
    obs, _ = env.reset()
    out = networks.initial_inference(params, obs)
    h, a, v = TINY.network.latent_size, env.num_actions, TINY.network.value_support.num_bins
    assert out.latent.shape == (len(obs), h)
    assert out.policy_logits.shape == (len(obs), a)
    assert out.value_logits.shape == (len(obs), v)
    assert float(out.latent.min()) >= -1.0 and float(out.latent.max()) <= 1.0 + 1e-6
    # zero-initialised heads: uniform policy, value 0
    np.testing.assert_allclose(out.policy_logits, 0.0)
    np.testing.assert_allclose(
        networks.value_support.logits_to_scalar(out.value_logits), 0.0, atol=1e-4
    )
    rec = networks.recurrent_inference(params, out.latent, jnp.arange(len(obs)) % a)
    assert rec.latent.shape == out.latent.shape
    assert rec.reward_logits.shape == (len(obs), TINY.network.reward_support.num_bins)


def test_network_is_small(params):
    assert num_params(params) * 4 < 1_000_000
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
