"""The large programs (workloads/large.py): registered in the zoo, their builders' code paths
run at tiny sizes, the layer norm's closed-form backward is JAX's, and the smallest full-size
entry extracts."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("haiku")

import jax.numpy as jnp  # noqa: E402

from workloads import large  # noqa: E402
from workloads.zoo import ENTRIES, ZOO, build, extract, list_zoo  # noqa: E402

# Skips LLVM optimisation only: HLO, schedule and buffer assignment are unchanged (see xla.py).
FAST = {"xla_backend_optimization_level": 0}


def test_registered_in_the_zoo():
    assert set(large.LARGE) <= set(ENTRIES) and not set(large.LARGE) & set(ZOO)
    descriptions = dict(list_zoo())
    for name in large.LARGE:
        assert name.endswith("_large")
        assert descriptions[name].startswith("LARGE (~") and "buffers" in descriptions[name]


def _buffers(name: str, **sizes: int) -> int:
    wl = extract(name, compile_options=FAST, small=True, **sizes)
    wl.check()
    assert wl.source["zoo_overrides"] == {"small": True, **sizes}
    return wl.num_buffers


def test_depth_adds_buffers_layer_by_layer():
    """Every unrolled layer adds the same number of buffers (no fusion across layers)."""
    one, two, three = (_buffers("gpt_train_large", n_layers=n) for n in (1, 2, 3))
    assert 0 < two - one == three - two


@pytest.mark.parametrize(
    ("name", "sizes"),
    [("gpt_accum_large", {"micro_batches": 1}), ("encdec_train_large", {"dec_layers": 1})],
)
def test_size_overrides_shrink_the_program(name, sizes):
    assert 0 < _buffers(name, **sizes) < _buffers(name)


def test_unknown_size_override():
    with pytest.raises(TypeError, match="unknown gpt_accum_large size override"):
        build("gpt_accum_large", small=True, batch=2)


def test_normalize_backward_is_autodiffs():
    def reference(x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + 1e-5)

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 16)) * 2.0 + 1.0
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 5, 16))
    np.testing.assert_allclose(large._normalize(x), reference(x), rtol=1e-5, atol=1e-5)
    got = jax.grad(lambda x: jnp.sum(large._normalize(x) * w))(x)
    want = jax.grad(lambda x: jnp.sum(reference(x) * w))(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_smallest_entry_extracts_at_full_size():
    """vit_train_large at full size: 5.4k buffers, about 15 s on two idle cores."""
    wl = extract("vit_train_large", compile_options=FAST)
    wl.check()
    assert 4_000 < wl.num_buffers < 10_000
    assert wl.ends.max() <= wl.num_instructions
    assert wl.peak_live_bytes() > 0
