"""Compiling a JAX function straight to a workload."""

from __future__ import annotations

import pytest

from mallocgame.memory import xla

from .conftest import K, M, N, check_matmul_tanh

jax = pytest.importorskip("jax")


def test_workload_from_jax():
    jnp = jax.numpy
    x, w = jax.ShapeDtypeStruct((M, K), jnp.float32), jax.ShapeDtypeStruct((K, N), jnp.float32)
    wl = xla.workload_from_jax(lambda a, b: jnp.tanh(a @ b), x, w, name="mm")
    check_matmul_tanh(wl)
    assert wl.name == "mm" and wl.source["folder"] == "(temporary, deleted)"
    assert all("/" not in f for f in wl.source["files"].values())
    assert wl.source["compile_seconds"] >= 0
