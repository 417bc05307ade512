"""Shared by the fuzz tests: the real XLA dumps the XLA cases mutate (compiled once per
session when JAX is installed, else the checked-in dump alone)."""

from __future__ import annotations

import pytest

from tests.fuzz import harness, strategies


@pytest.fixture(scope="session")
def xla_bases() -> dict[str, dict[str, bytes]]:
    return strategies.base_dumps(compile_jax=True)


@pytest.fixture(scope="session", autouse=True)
def _scratch():
    yield
    harness.cleanup()
