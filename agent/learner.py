"""The MuZero learner: K-step unrolled losses and a jitted optax update.

For a batch of unrolls starting at observations ``o_t`` with actions ``a_t..a_{t+K-1}``:

- step 0: ``s_0 = representation(o_t)``, policy/value predicted at ``s_0``;
- step k: ``s_k, r_k = dynamics(s_{k-1}, a_{t+k-1})``, policy/value predicted at ``s_k``.

Losses are cross-entropies against the search policy, and against the two-hot encodings of the
value and reward targets; steps 1..K are weighted by ``1/K`` and the gradient through the
latent is halved at each step (as in MuZero). Per-example losses are scaled by the replay's
importance weights; new priorities are ``|value(s_0) - z_t|``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from agent.config import TrainConfig
from agent.networks import Networks, Params
from agent.replay import Batch
from agent.transforms import cross_entropy


class TrainState(NamedTuple):
    params: Params
    opt_state: Any
    step: jax.Array  # int32[] learner updates done


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam(W) with global-norm clipping and a linear warm-up."""
    schedule = optax.linear_schedule(
        init_value=0.0 if config.warmup_steps > 0 else config.learning_rate,
        end_value=config.learning_rate,
        transition_steps=max(config.warmup_steps, 1),
    )
    # optax.flatten runs the optimizer on one concatenated vector: far fewer XLA kernels to
    # compile on CPU than one set per parameter array, same arithmetic.
    return optax.flatten(
        optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.adamw(schedule, weight_decay=config.weight_decay),
        )
    )


def init_train_state(params: Params, config: TrainConfig) -> TrainState:
    return TrainState(params, make_optimizer(config).init(params), jnp.zeros((), jnp.int32))


def _scale_gradient(x: jax.Array, scale: float) -> jax.Array:
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def loss_fn(
    params: Params, batch: Batch, networks: Networks, config: TrainConfig
) -> tuple[jax.Array, tuple[dict[str, jax.Array], jax.Array]]:
    """Returns ``(loss, (metrics, priorities float32[B]))``."""
    vs, rs = networks.value_support, networks.reward_support
    k_steps = batch.actions.shape[1]
    out = networks.initial_inference(params, batch.obs)
    latent, policy_logits, value_logits = out.latent, out.policy_logits, out.value_logits
    value0 = vs.logits_to_scalar(value_logits)

    policy_loss = cross_entropy(policy_logits, batch.target_policy[:, 0]) * batch.policy_mask[:, 0]
    value_loss = cross_entropy(value_logits, vs.scalar_to_probs(batch.target_value[:, 0]))
    reward_loss = jnp.zeros_like(value_loss)
    if k_steps > 0:

        def unroll(latent: jax.Array, xs: tuple[jax.Array, ...]) -> tuple[jax.Array, tuple]:
            action, t_policy, p_mask, t_value, t_reward = xs
            rec = networks.recurrent_inference(params, _scale_gradient(latent, 0.5), action)
            losses = (
                p_mask * cross_entropy(rec.policy_logits, t_policy),
                cross_entropy(rec.value_logits, vs.scalar_to_probs(t_value)),
                cross_entropy(rec.reward_logits, rs.scalar_to_probs(t_reward)),
            )
            return rec.latent, losses

        xs = (
            batch.actions.T,  # [K, B]
            jnp.swapaxes(batch.target_policy[:, 1:], 0, 1),  # [K, B, A]
            batch.policy_mask[:, 1:].T,
            batch.target_value[:, 1:].T,
            batch.target_reward.T,
        )
        _, (p_k, v_k, r_k) = jax.lax.scan(unroll, latent, xs)  # each [K, B]
        policy_loss += p_k.mean(axis=0)  # steps 1..K weighted 1/K
        value_loss += v_k.mean(axis=0)
        reward_loss += r_k.mean(axis=0)

    per_example = (
        config.policy_loss_weight * policy_loss
        + config.value_loss_weight * value_loss
        + config.reward_loss_weight * reward_loss
    )
    loss = jnp.mean(batch.weights * per_example)
    priorities = jnp.abs(value0 - batch.target_value[:, 0])
    metrics = {
        "loss": loss,
        "policy_loss": jnp.mean(policy_loss),
        "value_loss": jnp.mean(value_loss),
        "reward_loss": jnp.mean(reward_loss),
        "value_error": jnp.mean(priorities),
        "policy_entropy": jnp.mean(
            -jnp.sum(jax.nn.softmax(out.policy_logits) * jax.nn.log_softmax(out.policy_logits), -1)
        ),
    }
    return loss, (metrics, priorities)


_LEARNER_FIELDS = (
    "learning_rate",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "value_loss_weight",
    "reward_loss_weight",
    "policy_loss_weight",
)


def make_update_fn(networks: Networks, config: TrainConfig) -> Any:
    """Jitted ``update(state, batch) -> (state, metrics, priorities float32[B])``.

    Compiled code is shared between configs that differ only in fields the update does not
    read (actor, replay and bookkeeping settings). ``batch.indices`` must be None.
    """
    learner_only = TrainConfig(**{f: getattr(config, f) for f in _LEARNER_FIELDS})
    return _make_update_fn(networks, learner_only)


@functools.lru_cache(maxsize=32)
def _make_update_fn(networks: Networks, config: TrainConfig) -> Any:
    optimizer = make_optimizer(config)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def update(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array], Any]:
        (_, (metrics, priorities)), grads = grad_fn(state.params, batch, networks, config)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
        return TrainState(params, opt_state, state.step + 1), metrics, priorities

    return update
