"""The Python API (:mod:`mallocgame.api`) from a jitted function, next to the CLI tests."""


def test_python_api_from_jitted_function():
    import jax.numpy as jnp

    from mallocgame import api

    def step(x, w):
        return jnp.tanh(x @ w).sum()

    wl = api.workload_from_jax(step, jnp.ones((64, 128)), jnp.ones((128, 256)))
    sol = api.solve(wl, capacity="25%", solver="msa")
    assert sol.check().valid
    assert sol.summary()["speedup_vs_all_slow"] >= 1.0
