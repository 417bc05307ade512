"""Shared tiny setup: every test that compiles uses these sizes, so the search (batch N) and
the update (batch B, K) compile once per test session."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from agent.config import Config, NetworkConfig, ReplayConfig, SearchConfig, TrainConfig
from agent.env import KnapsackEnv
from agent.networks import init_params, make_networks

N = 16  # games per batched env (= search batch)
B = 32  # learner batch
K = 3  # unroll steps
ITEMS = 6

TINY = Config(
    network=NetworkConfig(hidden_size=256, latent_size=64),
    search=SearchConfig(num_simulations=8),
    replay=ReplayConfig(capacity=8_000, min_size=300),
    train=TrainConfig(
        num_envs=N,
        batch_size=B,
        unroll_steps=K,
        learning_rate=3e-3,
        warmup_steps=20,
        log_every=25,
    ),
)


def make_env(num_envs: int = N, seed: int = 0) -> KnapsackEnv:
    return KnapsackEnv(num_envs, num_items=ITEMS, seed=seed)


@pytest.fixture(scope="session")
def networks():
    env = make_env()
    return make_networks(env.observation_size, env.num_actions, TINY.network)


@pytest.fixture(scope="session")
def params(networks):
    return init_params(networks, jax.random.PRNGKey(0))


def random_legal(rng: np.random.Generator, n: int, a: int) -> np.ndarray:
    legal = rng.random((n, a)) < 0.5
    legal[np.arange(n), rng.integers(0, a, n)] = True
    return legal
