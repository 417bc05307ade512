import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agent.config import SearchConfig
from agent.search import Embedding, make_recurrent_fn, make_search_fn

from .conftest import TINY, N, make_env, random_legal


def _inputs(seed: int = 0):
    env = make_env()
    obs, _ = env.reset()
    rng = np.random.default_rng(seed)
    legal = random_legal(rng, N, env.num_actions)
    moves_left = rng.integers(1, 6, N).astype(np.int32)
    return obs, legal, moves_left


def test_gumbel_search_respects_the_legal_mask(networks, params):
    search = make_search_fn(networks, TINY.search)
    obs, legal, moves_left = _inputs()
    for seed in range(3):
        out = jax.device_get(search(params, jax.random.PRNGKey(seed), obs, legal, moves_left))
        assert out.action.shape == (N,) and out.action_weights.shape == legal.shape
        assert out.root_value.shape == (N,)
        assert legal[np.arange(N), out.action].all()
        np.testing.assert_allclose(out.action_weights.sum(-1), 1.0, atol=1e-5)
        assert (out.action_weights[~legal] < 1e-6).all()


def test_greedy_search_ignores_the_rng(networks, params):
    search = make_search_fn(networks, TINY.search)
    obs, legal, moves_left = _inputs(1)
    a = search(params, jax.random.PRNGKey(0), obs, legal, moves_left, greedy=True)
    b = search(params, jax.random.PRNGKey(7), obs, legal, moves_left, greedy=True)
    np.testing.assert_array_equal(a.action, b.action)


def test_muzero_policy_is_selectable(networks, params):
    search = make_search_fn(networks, SearchConfig(policy="muzero", num_simulations=8))
    obs, legal, moves_left = _inputs(2)
    out = jax.device_get(search(params, jax.random.PRNGKey(0), obs, legal, moves_left))
    assert legal[np.arange(N), out.action].all()
    assert (out.action_weights[~legal] == 0).all()
    greedy = jax.device_get(search(params, jax.random.PRNGKey(0), obs, legal, moves_left, True))
    assert legal[np.arange(N), greedy.action].all()


def test_moves_left_counter_makes_nodes_terminal(networks, params):
    """A move that uses the last move left ends the game: discount 0, value 0; moves below a
    terminal node earn nothing."""
    recurrent = make_recurrent_fn(networks, discount=1.0)
    latent = jnp.full((3, TINY.network.latent_size), 0.5)
    # give the value/reward heads a non-zero output so that masking is visible
    p = jax.tree.map(lambda x: x, params)
    p["value_head"] = {
        "w": p["value_head"]["w"],
        "b": jnp.arange(p["value_head"]["b"].size, dtype=jnp.float32),
    }
    p["reward_head"] = {
        "w": p["reward_head"]["w"],
        "b": jnp.arange(p["reward_head"]["b"].size, dtype=jnp.float32),
    }
    emb = Embedding(latent, jnp.array([3, 1, 0], jnp.int32))
    out, nxt = recurrent(p, jax.random.PRNGKey(0), jnp.zeros(3, jnp.int32), emb)
    np.testing.assert_array_equal(nxt.moves_left, [2, 0, 0])
    np.testing.assert_array_equal(out.discount, [1.0, 0.0, 0.0])
    assert float(out.value[0]) > 0.1 and float(out.value[1]) == 0.0 and float(out.value[2]) == 0.0
    assert float(out.reward[0]) > 0.1 and float(out.reward[1]) > 0.1 and float(out.reward[2]) == 0.0


@pytest.mark.parametrize("policy", ["gumbel", "muzero"])
def test_per_game_greedy_flags(networks, params, policy):
    """greedy may be bool[N]: with the same key, the greedy games play exactly as in an
    all-greedy search, the others sample; a plain bool still works."""
    search = make_search_fn(networks, SearchConfig(policy=policy, num_simulations=8))
    obs, legal, moves_left = _inputs(3)
    legal[:] = True  # many legal moves, so that sampled games differ between keys
    mask = np.zeros(N, bool)
    mask[::2] = True
    all_greedy = jax.device_get(search(params, jax.random.PRNGKey(0), obs, legal, moves_left, True))
    np.testing.assert_array_equal(
        all_greedy.action,
        search(params, jax.random.PRNGKey(0), obs, legal, moves_left, np.ones(N, bool)).action,
    )
    sampled_actions = []
    for seed in range(6):
        key = jax.random.PRNGKey(seed)
        out = jax.device_get(search(params, key, obs, legal, moves_left, mask))
        ref = jax.device_get(search(params, key, obs, legal, moves_left, True))
        np.testing.assert_array_equal(out.action[mask], ref.action[mask])
        sampled_actions.append(out.action[~mask])
    assert any((a != sampled_actions[0]).any() for a in sampled_actions[1:])
    with pytest.raises(ValueError, match="one per game"):
        search(params, jax.random.PRNGKey(0), obs, legal, moves_left, np.ones(N - 1, bool))
    with pytest.raises(ValueError, match="bool"):
        search(params, jax.random.PRNGKey(0), obs, legal, moves_left, np.ones(N, np.int32))


def test_policy_search_takes_a_bool_or_one_flag_per_game(networks, params):
    from agent.trainer import Policy

    policy = Policy(networks, params, TINY.search)
    obs, legal, moves_left = _inputs(4)
    legal[:] = True
    greedy = policy.search(obs, legal, moves_left)  # the old call: greedy=True
    np.testing.assert_array_equal(greedy.action, policy.act(obs, legal, moves_left, greedy=True))
    mask = np.arange(N) < 3
    for seed in range(3):
        out = policy.search(obs, legal, moves_left, greedy=mask, seed=seed)
        np.testing.assert_array_equal(out.action[:3], greedy.action[:3])
        assert legal[np.arange(N), out.action].all()
    sampled = [policy.act(obs, legal, moves_left, greedy=False, seed=s) for s in range(4)]
    assert any((a != sampled[0]).any() for a in sampled[1:])
