"""Scale-free categorical supports for values and rewards.

MuZero (Schrittwieser et al. 2020, appendix F) represents a scalar ``x`` as a categorical
distribution over a fixed support after the invertible transform

    h(x) = sign(x) * (sqrt(|x| + 1) - 1) + eps * x,

which compresses large magnitudes, and encodes ``h(x)`` "two-hot" (its probability mass is
split between the two nearest atoms so that the expectation is exact). Networks output logits
over the atoms; the scalar is ``h^-1(E[atoms])``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from agent.config import SupportConfig


def h_transform(x: jax.Array, eps: float = 1e-3) -> jax.Array:
    """h(x) = sign(x) (sqrt(|x|+1) - 1) + eps x, elementwise."""
    return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def h_inverse(y: jax.Array, eps: float = 1e-3) -> jax.Array:
    """Exact inverse of :func:`h_transform`, elementwise."""
    inner = jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0
    return jnp.sign(y) * ((inner / (2.0 * eps)) ** 2 - 1.0)


class Support(NamedTuple):
    """A support built from a :class:`SupportConfig`; hashable, so usable as a static arg."""

    bound: float
    num_bins: int
    use_h_transform: bool
    epsilon: float

    @classmethod
    def from_config(cls, c: SupportConfig) -> Support:
        return cls(float(c.bound), int(c.num_bins), bool(c.use_h_transform), float(c.epsilon))

    @property
    def step(self) -> float:
        return 2.0 * self.bound / (self.num_bins - 1)

    def atoms(self) -> jax.Array:
        """float32[num_bins], evenly spaced over [-bound, bound]."""
        return jnp.linspace(-self.bound, self.bound, self.num_bins, dtype=jnp.float32)

    def scalar_to_probs(self, x: jax.Array) -> jax.Array:
        """Two-hot encoding: float[...] -> float32[..., num_bins]."""
        x = jnp.asarray(x, jnp.float32)
        y = h_transform(x, self.epsilon) if self.use_h_transform else x
        y = jnp.clip(y, -self.bound, self.bound)
        pos = (y + self.bound) / self.step  # in [0, num_bins - 1]
        low = jnp.clip(jnp.floor(pos), 0, self.num_bins - 2)
        frac = pos - low
        low_i = low.astype(jnp.int32)
        return (
            jax.nn.one_hot(low_i, self.num_bins) * (1.0 - frac)[..., None]
            + jax.nn.one_hot(low_i + 1, self.num_bins) * frac[..., None]
        )

    def probs_to_scalar(self, probs: jax.Array) -> jax.Array:
        """float[..., num_bins] (a distribution) -> float32[...]."""
        y = jnp.sum(probs * self.atoms(), axis=-1)
        return h_inverse(y, self.epsilon) if self.use_h_transform else y

    def logits_to_scalar(self, logits: jax.Array) -> jax.Array:
        """float[..., num_bins] (logits) -> float32[...]."""
        return self.probs_to_scalar(jax.nn.softmax(logits, axis=-1))

    def max_value(self) -> float:
        """The largest scalar the support can represent."""
        b = jnp.asarray(self.bound, jnp.float32)
        return float(h_inverse(b, self.epsilon) if self.use_h_transform else b)


def cross_entropy(logits: jax.Array, target_probs: jax.Array) -> jax.Array:
    """Categorical cross-entropy over the last axis: [..., C], [..., C] -> [...]."""
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
