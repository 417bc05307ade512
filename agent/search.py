"""Batched MuZero tree search with mctx over the learned model.

The search embedding carries a moves-left counter next to the latent state: the root gets the
env's upper bound on the moves left in each game, each simulated move decrements it, and a
move that uses up the last one leads to a terminal node (discount 0, value 0). Moves
simulated below a terminal node earn no reward. So the depth that contributes to any value
is bounded per game by its moves left, while mctx's static ``max_depth`` caps the tree.

Shapes: ``B`` games, ``O`` observation size, ``A`` actions.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mctx
import numpy as np

from agent.config import SearchConfig
from agent.networks import Networks, Params


class SearchOutput(NamedTuple):
    action: jax.Array  # int32[B]: the move to play
    action_weights: jax.Array  # float32[B, A]: the improved policy (training target)
    root_value: jax.Array  # float32[B]: the search's value of the root


class Embedding(NamedTuple):
    latent: jax.Array  # float32[B, H]
    moves_left: jax.Array  # int32[B]: moves left before this state is terminal


def make_recurrent_fn(networks: Networks, discount: float) -> Any:
    """Returns an mctx ``recurrent_fn(params, rng, action[B], Embedding) -> (out, Embedding)``."""
    value_support = networks.value_support
    reward_support = networks.reward_support

    def recurrent_fn(
        params: Params, rng: jax.Array, action: jax.Array, embedding: Embedding
    ) -> tuple[mctx.RecurrentFnOutput, Embedding]:
        del rng
        out = networks.recurrent_inference(params, embedding.latent, action)
        alive = embedding.moves_left > 0  # this move is a real move of the game
        left = embedding.moves_left - 1
        nonterminal = left > 0  # the next state still has moves to play
        reward = jnp.where(alive, reward_support.logits_to_scalar(out.reward_logits), 0.0)
        value = jnp.where(nonterminal, value_support.logits_to_scalar(out.value_logits), 0.0)
        output = mctx.RecurrentFnOutput(
            reward=reward,
            discount=jnp.where(nonterminal, discount, 0.0).astype(jnp.float32),
            prior_logits=out.policy_logits,
            value=value,
        )
        return output, Embedding(out.latent, jnp.maximum(left, 0))

    return recurrent_fn


def run_search(
    networks: Networks,
    params: Params,
    rng: jax.Array,
    obs: jax.Array,
    legal: jax.Array,
    moves_left: jax.Array,
    config: SearchConfig,
    greedy: jax.Array | np.ndarray | bool = False,
) -> SearchOutput:
    """One search per game for a batch (pure; jit it, or use :func:`make_search_fn`).

    Args:
      obs: float32[B, O]; legal: bool[B, A] (the root's legal mask, at least one True per row);
      moves_left: int32[B] (>= 1, an upper bound on the moves left in each game).
      greedy: act without exploration noise (evaluation): Gumbel scale 0 / no Dirichlet noise,
        and the most visited move for ``muzero_policy``. One bool for the whole batch or a
        bool[B] per game (e.g. one greedy game among sampled ones); may be traced, so that
        acting and evaluating share one compiled search.
    """
    per_game = greedy_mask(greedy, obs.shape[0])
    root_out = networks.initial_inference(params, obs)
    value = networks.value_support.logits_to_scalar(root_out.value_logits)
    root = mctx.RootFnOutput(
        prior_logits=root_out.policy_logits,
        value=value,
        embedding=Embedding(root_out.latent, moves_left.astype(jnp.int32)),
    )
    invalid = jnp.logical_not(legal)
    recurrent_fn = make_recurrent_fn(networks, config.discount)
    if config.policy == "gumbel":
        out = mctx.gumbel_muzero_policy(
            params,
            rng,
            root,
            recurrent_fn,
            num_simulations=config.num_simulations,
            invalid_actions=invalid,
            max_depth=config.max_depth,
            qtransform=mctx.qtransform_completed_by_mix_value,
            max_num_considered_actions=config.considered_actions,
            gumbel_scale=jnp.where(per_game, 0.0, config.gumbel_scale)[:, None],
        )
        action = out.action
    elif config.policy == "muzero":
        out = mctx.muzero_policy(
            params,
            rng,
            root,
            recurrent_fn,
            num_simulations=config.num_simulations,
            invalid_actions=invalid,
            max_depth=config.max_depth,
            qtransform=mctx.qtransform_by_parent_and_siblings,
            dirichlet_fraction=jnp.where(per_game, 0.0, config.dirichlet_fraction)[:, None],
            dirichlet_alpha=config.dirichlet_alpha,
            pb_c_init=config.pb_c_init,
            pb_c_base=config.pb_c_base,
            temperature=config.temperature,
        )
        most_visited = jnp.argmax(jnp.where(legal, out.action_weights, -1.0), axis=-1)
        action = jnp.where(per_game, most_visited, out.action)
    else:
        raise ValueError(f"unknown search policy {config.policy!r} (gumbel | muzero)")
    root_value = out.search_tree.node_values[:, out.search_tree.ROOT_INDEX]
    return SearchOutput(action.astype(jnp.int32), out.action_weights, root_value)


def greedy_mask(greedy: Any, batch: int) -> jax.Array:
    """``greedy`` (a bool, or bool[batch]) as bool[batch]; ``ValueError`` for other shapes.

    A Python or NumPy bool becomes a host array (no device op on the hot path: the jitted
    search takes it with its other inputs)."""
    if isinstance(greedy, (bool, np.bool_)):
        return np.full((batch,), bool(greedy))
    g = jnp.asarray(greedy)
    if g.dtype != jnp.bool_:
        raise ValueError(f"greedy must be a bool or a bool array, got dtype {g.dtype}")
    if g.ndim == 0:
        return jnp.broadcast_to(g, (batch,))
    if g.shape != (batch,):
        raise ValueError(
            f"greedy must be a bool or bool[{batch}] (one per game), got shape {g.shape}"
        )
    return g


@functools.lru_cache(maxsize=64)
def make_search_fn(networks: Networks, config: SearchConfig) -> Any:
    """Jitted ``search(params, rng, obs[B,O], legal[B,A], moves_left[B], greedy=False)``.

    Returns a :class:`SearchOutput` of device arrays. ``greedy`` (a bool or bool[B], one per
    game) is traced and always passed as bool[B], so both forms share one compiled search.
    Cached per (networks, config) so that equal setups share compiled code; one compile per
    batch size ``B``.
    """
    jitted = jax.jit(
        lambda params, rng, obs, legal, moves_left, greedy: run_search(
            networks, params, rng, obs, legal, moves_left, config, greedy
        )
    )

    def search(
        params: Params,
        rng: jax.Array,
        obs: jax.Array,
        legal: jax.Array,
        moves_left: jax.Array,
        greedy: Any = False,
    ) -> SearchOutput:
        return jitted(params, rng, obs, legal, moves_left, greedy_mask(greedy, np.shape(obs)[0]))

    return search
