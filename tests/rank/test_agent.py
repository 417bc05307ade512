"""RankEnv (the rank game as the agent's BatchedEnv) and the agent rank solver, on synthetic
tables (the models' real FLOP tables, synthetic energies, sensitivities and losses)."""

from __future__ import annotations

import inspect
import time

import numpy as np
import pytest

from agent.env import check_env, random_legal_actions
from mallocgame.rank.env import (
    CHOICE_FEATURES,
    PART_FEATURES,
    RankEnv,
    RankTask,
    filled_sens,
    game_inputs,
    uniform_choice,
)
from mallocgame.rank.tables import DEFAULT_CHOICES, RankTables, cost_table

GAMMA = 0.5  # weight of the non-additive term of the synthetic loss


def synthetic_tables(model: str = "minilm", seed: int = 0, seq_len: int = 128) -> RankTables:
    """Real per-part FLOPs; energy ``1 - (1 - r/hd)^d`` with a per-part decay ``d``; part
    weights ``w`` log-uniform over two decades; ``sens = w * (1 - energy)``, ``fisher = w``."""
    choices = DEFAULT_CHOICES[model]
    P = cost_table(model, choices, seq_len)[0].shape[0]
    rng = np.random.default_rng(seed)
    r = np.asarray(choices, np.float64) / choices[-1]
    energy = 1.0 - (1.0 - r[None, :]) ** rng.uniform(1.0, 4.0, size=(P, 1))
    w = np.exp(rng.uniform(np.log(0.01), np.log(1.0), size=P))
    sens = w[:, None] * (1.0 - energy)
    return RankTables(model, "synthetic", seq_len, "whitened", choices, energy, sens, w)


class SyntheticLoss:
    """``loss = 1 + sum_p w_p (1 - e[p, c_p]) + GAMMA * sum_layers sqrt(w_qk w_v) lost_qk lost_v``:
    the per-part sensitivities plus an interaction of the two parts of each layer. Records
    every config it measures."""

    def __init__(self, tables: RankTables, gamma: float = GAMMA):
        self.tables = tables
        self.w = np.asarray(tables.fisher, np.float64)
        self.gamma = gamma
        self.measured: list[tuple[int, ...]] = []

    def loss(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(np.asarray(idx, np.int64))
        P = self.tables.num_parts
        lost = 1.0 - np.asarray(self.tables.energy)[np.arange(P), idx]
        pair = np.sqrt(self.w[0::2] * self.w[1::2]) * lost[:, 0::2] * lost[:, 1::2]
        return 1.0 + (self.w * lost).sum(axis=1) + self.gamma * pair.sum(axis=1)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        assert idx.dtype == np.int64 and idx.ndim == 2
        self.measured.extend(tuple(row) for row in idx.tolist())
        return self.loss(idx)


def optimum(tables: RankTables, loss: SyntheticLoss, fraction: float) -> tuple[np.ndarray, float]:
    """The exact best config of the synthetic loss: a knapsack DP over layers, each choosing a
    (qk, v) pair (the loss is additive over layers); costs in units of their common divisor."""
    cost = np.asarray(tables.cost)
    P, C = cost.shape
    unit = np.gcd.reduce(np.round(cost).astype(np.int64).ravel())
    units = np.round(cost / unit).astype(np.int64)
    assert np.array_equal(units * unit, cost), "the FLOP costs are whole multiples of the unit"
    cap = int(np.floor(fraction * tables.full_cost / unit + 1e-9))
    best = np.full(cap + 1, np.inf)
    best[0] = 0.0
    picks = []
    pairs = [(a, b) for a in range(C) for b in range(C)]
    for layer in range(P // 2):
        new = np.full(cap + 1, np.inf)
        pick = np.full((cap + 1, 2), -1)
        for a, b in pairs:
            value = _layer_value(loss, layer, a, b)
            u = int(units[2 * layer, a] + units[2 * layer + 1, b])
            if u > cap:
                continue
            cand = best[: cap + 1 - u] + value
            better = cand < new[u:]
            new[u:][better] = cand[better]
            pick[u:][better] = (a, b)
        picks.append(pick)
        best = new
    at = int(np.argmin(best))
    config = np.zeros(P, np.int64)
    for layer in range(P // 2 - 1, -1, -1):
        a, b = picks[layer][at]
        config[2 * layer], config[2 * layer + 1] = a, b
        at -= int(units[2 * layer, a] + units[2 * layer + 1, b])
    return config, float(loss.loss(config)[0])


def _layer_value(loss: SyntheticLoss, layer: int, a: int, b: int) -> float:
    """The loss share of one layer at choices (a, b), without the constant 1."""
    e = np.asarray(loss.tables.energy)
    q, v = 2 * layer, 2 * layer + 1
    lq, lv = 1.0 - e[q, a], 1.0 - e[v, b]
    return float(
        loss.w[q] * lq + loss.w[v] * lv + loss.gamma * np.sqrt(loss.w[q] * loss.w[v]) * lq * lv
    )


@pytest.fixture(scope="module")
def minilm_tables() -> RankTables:
    return synthetic_tables("minilm")


# ---------------------------------------------------------------------- tables -> game
def test_game_inputs(minilm_tables):
    t = minilm_tables
    t.sens[3, :2] = np.nan  # unmeasured entries
    try:
        g = game_inputs(t)
    finally:
        t.sens[3, :2] = t.fisher[3] * (1.0 - t.energy[3, :2])
    P, C = t.cost.shape
    assert g["features"].shape == (P, C, len(CHOICE_FEATURES))
    assert g["part_features"].shape == (P, len(PART_FEATURES))
    assert np.isfinite(g["features"]).all() and np.isfinite(g["part_features"]).all()
    assert np.abs(g["features"]).max() <= 2.0 and np.abs(g["part_features"]).max() <= 2.0
    assert np.isfinite(g["sens"]).all()
    # energy kept, and the cost share: the full config's shares sum to P
    np.testing.assert_allclose(g["features"][..., 0], t.energy, rtol=1e-6)
    np.testing.assert_allclose(g["features"][:, -1, 3].sum(), P, rtol=1e-5)
    # part kinds alternate qk, v
    assert g["part_features"][:, 1].tolist() == [1.0, 0.0] * (P // 2)
    # a NaN sens is filled from the energy lost, scaled like the measured ones (here exactly)
    t2 = synthetic_tables("minilm", seed=1)
    t2.sens[0, 0] = np.nan
    np.testing.assert_allclose(filled_sens(t2)[0], t2.fisher[0] * (1.0 - t2.energy[0]), rtol=1.0)


def test_additive_surrogate(minilm_tables):
    from mallocgame.rank.env import additive_surrogate

    t = minilm_tables
    P = t.num_parts
    around = np.full(P, 3)
    f = additive_surrogate(t, around, 2.0)
    assert f(around[None])[0] == pytest.approx(2.0)
    idx = np.array([np.arange(P) % 7, np.full(P, 6)])
    expected = 2.0 + t.sens[np.arange(P), idx].sum(axis=1) - t.sens[np.arange(P), around].sum()
    np.testing.assert_allclose(f(idx), expected)


def test_uniform_choice():
    cost, full = cost_table("minilm", DEFAULT_CHOICES["minilm"], 128)
    assert uniform_choice(cost, 0.5 * full).tolist() == [3] * 12  # rank 16 of 32 = half
    assert uniform_choice(cost, 0.49 * full).tolist() == [2] * 12
    assert uniform_choice(cost, full).tolist() == [6] * 12
    odd = np.array([[1.0, 5.0], [4.0, 2.0]])  # no uniform index fits 3.5: each part's cheapest
    assert uniform_choice(odd, 3.5).tolist() == [0, 1]


# ---------------------------------------------------------------------- env
def test_env_protocol_single_and_pool(minilm_tables):
    loss = SyntheticLoss(minilm_tables)
    env = RankEnv(minilm_tables, 0.5, evaluator=loss, num_envs=8, seed=1)
    check_env(env, num_steps=60)
    assert env.games == 8 * 5 and env.observation_size == env.pool[0].instance.observation_size
    # a pool: two budgets of MiniLM (12 parts) and SmolLM2 (60 parts) with its own evaluator
    smol = synthetic_tables("smollm2", seed=2, seq_len=512)
    pool = [
        (minilm_tables, 0.4),
        RankTask(minilm_tables, 0.7, weight=2.0),
        (smol, 0.5, SyntheticLoss(smol)),
    ]
    env = RankEnv(pool, evaluator=loss, num_envs=6, seed=0)
    check_env(env, num_steps=200)
    tasks = {k for k, _, _ in env.finished}
    assert tasks == {0, 1, 2}
    for k in range(3):
        for key, value in env.seen[k].items():
            p = env.task(k)
            assert p.cost[np.arange(p.num_parts), list(key)].sum() <= p.instance.limit
            assert value == pytest.approx(float(p.evaluator.loss(np.array(key))[0]))


@pytest.mark.parametrize("shaping", [True, False])
def test_returns_are_the_measured_loss(minilm_tables, shaping):
    loss = SyntheticLoss(minilm_tables)
    n = 5
    env = RankEnv(minilm_tables, 0.45, evaluator=loss, num_envs=n, seed=3, shaping=shaping)
    task = env.task(0)
    np.testing.assert_array_equal(env.baseline_return(), 0.0)
    assert task.uniform_loss == pytest.approx(float(loss.loss(task.uniform)[0]))
    assert task.offset == task.uniform_loss
    # scale: one over the proxy (sum of sens) of the uniform config
    P = minilm_tables.num_parts
    assert task.scale == pytest.approx(1.0 / minilm_tables.sens[np.arange(P), task.uniform].sum())
    rng = np.random.default_rng(0)
    obs, legal = env.reset()
    played: list[list[int]] = [[] for _ in range(n)]
    rewards: list[list[float]] = [[] for _ in range(n)]
    finished = 0
    while finished < 12:
        np.testing.assert_array_equal(env.moves_left(), P - np.array([len(p) for p in played]))
        a = random_legal_actions(rng, legal)
        obs, legal, r, done = env.step(a)
        for i in range(n):
            t = len(played[i])
            played[i].append(int(a[i]))
            rewards[i].append(float(r[i]))
            if not done[i]:
                proxy = -task.scale * minilm_tables.sens[t, a[i]] if shaping else 0.0
                assert r[i] == np.float32(proxy)
                continue
            measured = float(loss.loss(np.array(played[i]))[0])
            expected = -task.scale * (measured - task.uniform_loss)
            assert sum(rewards[i]) == pytest.approx(expected, rel=1e-5, abs=1e-5)
            assert env.seen[0][tuple(played[i])] == measured
            played[i], rewards[i] = [], []
            finished += 1
    # every distinct config was measured exactly once (the uniform one at construction)
    assert len(loss.measured) == len(set(loss.measured)) == env.evaluations
    best, best_loss = env.best(0)
    assert best_loss == min(env.seen[0].values()) and env.seen[0][tuple(best)] == best_loss


def test_env_evaluate_memo_and_errors(minilm_tables):
    loss = SyntheticLoss(minilm_tables)
    env = RankEnv(minilm_tables, 0.5, evaluator=loss, num_envs=2)
    P = minilm_tables.num_parts
    configs = np.array([[0] * P, [1] * P, [0] * P])
    got = env.evaluate(0, configs)
    np.testing.assert_allclose(got, loss.loss(configs))
    env.evaluate(0, configs[:2])
    assert len(loss.measured) == 3  # uniform + 2 distinct configs
    assert env.best(0)[0].tolist() == [1] * P
    with pytest.raises(ValueError, match="over the budget"):
        env.evaluate(0, np.full((1, P), 6))
    with pytest.raises(ValueError, match="shape"):
        env.evaluate(0, np.zeros((1, P + 1), np.int64))
    with pytest.raises(ValueError, match="choice indices"):
        env.evaluate(0, np.full((1, P), 7))
    with pytest.raises(IndexError):
        env.evaluate(1, configs)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="returned shape"):
        RankEnv(minilm_tables, 0.5, evaluator=lambda idx: np.zeros(len(idx) + 1))
    with pytest.raises(ValueError, match="returned nan"):
        RankEnv(minilm_tables, 0.5, evaluator=lambda idx: np.full(len(idx), np.nan))
    with pytest.raises(ValueError, match="no evaluator"):
        RankEnv(minilm_tables, 0.5)
    with pytest.raises(ValueError, match="budget="):
        RankEnv(minilm_tables, evaluator=loss)
    with pytest.raises(ValueError, match="positive fraction"):
        RankEnv(minilm_tables, -0.5, evaluator=loss)
    with pytest.raises(ValueError, match="below the minimum"):
        RankEnv(minilm_tables, 0.05, evaluator=loss)
    with pytest.raises(ValueError, match="offset"):
        RankEnv(minilm_tables, 0.5, evaluator=loss, offset="median")
    five = synthetic_tables("minilm")
    five.choices = five.choices[:4] + (32,)  # the costs follow the choices
    five.energy, five.sens = five.energy[:, [0, 1, 2, 3, 6]], five.sens[:, [0, 1, 2, 3, 6]]
    with pytest.raises(ValueError, match="number of choices"):
        RankEnv([(minilm_tables, 0.5), (five, 0.5)], evaluator=loss)


# ---------------------------------------------------------------------- agent solver
def test_solve_signature_is_the_registry_contract():
    from mallocgame.rank.agent import solve

    params = inspect.signature(solve).parameters
    assert list(params)[:2] == ["tables", "budget"]
    assert params["evaluator"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["seed"].default == 0 and params["time_limit"].default is None
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@pytest.mark.slow
def test_agent_solver_beats_uniform(minilm_tables):
    """A fixed amount of learning (200 updates, whatever the machine's load): the returned
    config fits the budget, is the best measured, beats the uniform config, and the agent's own
    greedy line after training beats it too."""
    from mallocgame.rank.agent import train_and_play

    t = minilm_tables
    loss = SyntheticLoss(t)
    best_config, best_loss = optimum(t, loss, 0.5)
    assert t.fraction(best_config) <= 0.5
    start = time.perf_counter()
    r = train_and_play(
        t,
        0.5,
        evaluator=loss,
        seed=0,
        time_limit=1.0,
        min_updates=200,
        max_updates=200,
        hidden_size=64,
        latent_size=32,
    )
    wall = time.perf_counter() - start
    P = t.num_parts
    assert r.choice.dtype == np.int64 and r.choice.shape == (P,)
    assert t.fraction(r.choice) <= 0.5 * (1 + 1e-9)
    assert r.updates == 200
    assert r.loss == pytest.approx(float(loss.loss(r.choice)[0]))
    measured = {c: float(loss.loss(np.array(c))[0]) for c in set(loss.measured)}
    assert r.loss == min(measured.values()), "the best config measured is returned"
    assert r.uniform_loss > r.agent_loss >= best_loss - 1e-12
    assert r.greedy_loss < r.uniform_loss, "the trained agent's greedy line beats uniform ranks"
    # through the rank solvers' registry (same network sizes: the compiled code is reused),
    # training on a pool of two budgets
    solvers = pytest.importorskip("mallocgame.rank.solvers")
    idx = solvers.solve(
        t,
        0.5,
        "agent",
        evaluator=SyntheticLoss(t),
        seed=1,
        time_limit=1.0,
        min_updates=10,
        max_updates=10,
        extra_budgets=(0.4,),
        hidden_size=64,
        latent_size=32,
    )
    assert idx.shape == (P,) and t.fraction(idx) <= 0.5
    assert float(loss.loss(idx)[0]) <= r.uniform_loss
    # training on the additive surrogate only: the evaluator measures the uniform config and
    # the one round of play, nothing else
    counted = SyntheticLoss(t)
    s = train_and_play(
        t,
        0.5,
        evaluator=counted,
        seed=2,
        time_limit=60.0,
        train_fraction=1.0,
        surrogate_fraction=1.0,
        max_updates=10,
        max_rounds=1,
        hidden_size=64,
        latent_size=32,
    )
    assert s.updates == 10 and s.surrogate_games >= 16 and s.rounds == 1
    assert len(counted.measured) == s.evaluations <= 1 + 16
    assert s.loss <= s.uniform_loss and t.fraction(s.choice) <= 0.5
    print(
        f"\nagent solver ({wall:.1f} s, {r.updates} updates, {r.evaluations} configs measured): "
        f"best {r.loss:.4f}, greedy {r.greedy_loss:.4f}, uniform {r.uniform_loss:.4f}, "
        f"optimum {best_loss:.4f}"
    )


@pytest.mark.parametrize("on_ray", [False, True], ids=["in-process", "ray"])
def test_agent_surrogate_training_on_workers(minilm_tables, on_ray, request):
    """The surrogate part of training on two self-play workers sharing the learner (in this
    process, or as Ray actors: the tables and the surrogate travel), then the measured part
    here: a valid config, no worse than uniform, the evaluator never called by a worker."""
    from mallocgame.rank.agent import train_and_play

    if on_ray:
        request.getfixturevalue("ray_cluster")
    t = minilm_tables
    counted = SyntheticLoss(t)
    r = train_and_play(
        t,
        0.5,
        evaluator=counted,
        seed=3,
        time_limit=60.0,
        train_fraction=1.0,
        surrogate_fraction=1.0,
        min_updates=20,
        max_updates=20,
        max_rounds=1,
        hidden_size=64,
        latent_size=32,
        workers=2,
        ray=on_ray,
    )
    assert r.updates == 20 and r.surrogate_games >= 16 and r.rounds == 1
    assert len(counted.measured) == r.evaluations <= 1 + 16  # uniform + one round, here
    assert r.loss <= r.uniform_loss and t.fraction(r.choice) <= 0.5
