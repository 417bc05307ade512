import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import SupportConfig
from agent.transforms import Support, cross_entropy, h_inverse, h_transform


@settings(max_examples=50, deadline=None)
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_h_inverse_inverts_h(x):
    y = h_inverse(h_transform(jnp.float32(x)))
    np.testing.assert_allclose(float(y), x, rtol=1e-3, atol=1e-3)


def test_two_hot_round_trip_and_is_a_distribution():
    s = Support.from_config(SupportConfig(bound=5.0, num_bins=21))
    x = jnp.array([-20.0, -1.3, -0.01, 0.0, 0.37, 1.0, 7.5, 30.0])
    probs = s.scalar_to_probs(x)
    assert probs.shape == (8, 21)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert (probs >= 0).all() and ((probs > 0).sum(-1) <= 2).all()
    np.testing.assert_allclose(s.probs_to_scalar(probs), x, rtol=1e-4, atol=1e-4)


def test_two_hot_clips_beyond_the_support():
    s = Support.from_config(SupportConfig(bound=1.0, num_bins=11, use_h_transform=False))
    np.testing.assert_allclose(
        s.probs_to_scalar(s.scalar_to_probs(jnp.array([-3.0, 3.0]))), [-1, 1]
    )
    assert s.max_value() == 1.0


def test_zero_logits_decode_to_zero_and_ce_is_minimal_at_target():
    s = Support.from_config(SupportConfig())
    assert abs(float(s.logits_to_scalar(jnp.zeros(s.num_bins)))) < 1e-4
    target = s.scalar_to_probs(jnp.float32(0.4))
    good = cross_entropy(jnp.log(target + 1e-9), target)
    bad = cross_entropy(jnp.zeros(s.num_bins), target)
    assert good < bad
