"""MuZero networks in dm-haiku: representation, dynamics, prediction.

Shapes: ``B`` batch, ``O`` observation size, ``A`` actions, ``H`` latent size, ``V``/``R``
value/reward support bins.

- representation: obs float32[B, O] -> latent float32[B, H]
- dynamics: (latent[B, H], action int32[B]) -> (next latent[B, H], reward logits[B, R])
- prediction: latent[B, H] -> (policy logits[B, A], value logits[B, V])

Latents are squashed to [-1, 1] by tanh (MuZero's per-example min-max scaling learned markedly
slower in our tests); the dynamics sees the action both as a one-hot input and as a
multiplicative gate. The output heads are zero-initialised so that an untrained network
predicts a uniform policy and a zero value and reward.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from agent.config import NetworkConfig
from agent.transforms import Support

Params = Any  # a haiku params mapping


class InitialOutput(NamedTuple):
    latent: jax.Array  # [B, H]
    policy_logits: jax.Array  # [B, A]
    value_logits: jax.Array  # [B, V]


class RecurrentOutput(NamedTuple):
    latent: jax.Array  # [B, H] (the next state)
    reward_logits: jax.Array  # [B, R]
    policy_logits: jax.Array  # [B, A] (at the next state)
    value_logits: jax.Array  # [B, V] (at the next state)


class Networks(NamedTuple):
    """Pure functions of the network; hashable, so they can be closed over by ``jax.jit``."""

    init: Any  # (rng, obs[B, O]) -> params
    initial_inference: Any  # (params, obs[B, O]) -> InitialOutput
    recurrent_inference: Any  # (params, latent[B, H], action[B]) -> RecurrentOutput
    observation_size: int
    num_actions: int
    config: NetworkConfig

    @property
    def value_support(self) -> Support:
        return Support.from_config(self.config.value_support)

    @property
    def reward_support(self) -> Support:
        return Support.from_config(self.config.reward_support)


class _ResBlock(hk.Module):
    def __init__(self, size: int, name: str | None = None) -> None:
        super().__init__(name=name)
        self._size = size

    def __call__(self, x: jax.Array) -> jax.Array:
        y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(x)
        y = hk.Linear(self._size)(jax.nn.relu(y))
        y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(y)
        y = hk.Linear(self._size, w_init=jnp.zeros)(jax.nn.relu(y))  # identity at init
        return x + y


class _Trunk(hk.Module):
    """Linear (+ optional action gate) -> residual blocks -> LayerNorm -> ReLU: [B, hidden]."""

    def __init__(self, c: NetworkConfig, num_actions: int = 0, name: str | None = None) -> None:
        super().__init__(name=name)
        self._c = c
        self._num_actions = num_actions

    def __call__(self, x: jax.Array, action: jax.Array | None = None) -> jax.Array:
        size = self._c.hidden_size
        if action is not None:
            # Concatenated one-hot action plus a multiplicative gate: an action embedding
            # scales a projection of the state, so "the feature of the slot this action
            # names" is one product away instead of a hard-to-learn MLP interaction.
            one_hot = jax.nn.one_hot(action, self._num_actions, dtype=x.dtype)
            gate = hk.Embed(self._num_actions, size, name="action_embed")(action)
            h = hk.Linear(size, name="in")(jnp.concatenate([x, one_hot], axis=-1))
            h = h + hk.Linear(size, with_bias=False, name="gated")(x) * gate
        else:
            h = hk.Linear(size, name="in")(x)
        h = jax.nn.relu(h)
        for i in range(self._c.num_blocks):
            h = _ResBlock(size, name=f"block{i}")(h)
        return jax.nn.relu(hk.LayerNorm(-1, True, True, name="out_norm")(h))


def _zeros_linear(size: int, name: str) -> hk.Linear:
    return hk.Linear(size, w_init=jnp.zeros, b_init=jnp.zeros, name=name)


@functools.lru_cache(maxsize=32)
def make_networks(observation_size: int, num_actions: int, config: NetworkConfig) -> Networks:
    """Builds the three networks; cached so equal configs share jitted code."""
    c = config
    v_bins = c.value_support.num_bins
    r_bins = c.reward_support.num_bins

    def forward() -> tuple[Any, Any]:
        # Modules are built once here so that every use shares the same parameters.
        repr_trunk = _Trunk(c, name="representation")
        repr_out = hk.Linear(c.latent_size, name="representation_latent")
        pred_trunk = _Trunk(c, name="prediction")
        policy_head = _zeros_linear(num_actions, "policy_head")
        value_head = _zeros_linear(v_bins, "value_head")
        dyn_trunk = _Trunk(c, num_actions, name="dynamics")
        dyn_out = hk.Linear(c.latent_size, name="dynamics_latent")
        reward_head = _zeros_linear(r_bins, "reward_head")

        def representation(obs: jax.Array) -> jax.Array:
            return jnp.tanh(repr_out(repr_trunk(obs)))

        def prediction(latent: jax.Array) -> tuple[jax.Array, jax.Array]:
            x = pred_trunk(latent)
            return policy_head(x), value_head(x)

        def dynamics(latent: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
            x = dyn_trunk(latent, action)
            return jnp.tanh(dyn_out(x)), reward_head(x)

        def initial(obs: jax.Array) -> InitialOutput:
            latent = representation(obs)
            pol, val = prediction(latent)
            return InitialOutput(latent, pol, val)

        def recurrent(latent: jax.Array, action: jax.Array) -> RecurrentOutput:
            nxt, rew = dynamics(latent, action)
            pol, val = prediction(nxt)
            return RecurrentOutput(nxt, rew, pol, val)

        def init(obs: jax.Array) -> None:
            out = initial(obs)
            recurrent(out.latent, jnp.zeros(obs.shape[:1], jnp.int32))

        return init, (initial, recurrent)

    transformed = hk.without_apply_rng(hk.multi_transform(forward))
    initial_fn, recurrent_fn = transformed.apply

    return Networks(
        init=transformed.init,
        initial_inference=initial_fn,
        recurrent_inference=recurrent_fn,
        observation_size=int(observation_size),
        num_actions=int(num_actions),
        config=c,
    )


def init_params(networks: Networks, rng: jax.Array) -> Params:
    """Initialises the parameters for the three networks."""
    return networks.init(rng, jnp.zeros((1, networks.observation_size), jnp.float32))


def num_params(params: Params) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))
