"""Tests of the native rank game (RankInstance, RankGame, BatchedRankGames) against a plain-Python
reference of docs/game.md, "The rank game"."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mallocgame._native import BatchedRankGames, RankGame, RankInstance

from mallocgame.rank.tables import DEFAULT_CHOICES, cost_table

TOL = 1e-9


# ---------------------------------------------------------------------- reference
class RefRankGame:
    """The rules of docs/game.md in plain Python (floats summed in the documented order)."""

    def __init__(self, cost, features, part_features, budget, penalty=None, tolerance=TOL):
        self.cost = [[float(x) for x in row] for row in np.asarray(cost, np.float64)]
        self.P, self.C = len(self.cost), len(self.cost[0])
        self.features = np.asarray(features, np.float32).astype(np.float64)
        self.part_features = np.asarray(part_features, np.float32).astype(np.float64)
        pen = np.zeros((self.P, self.C)) if penalty is None else np.asarray(penalty, np.float32)
        self.penalty = [[float(x) for x in row] for row in pen]
        self.budget = float(budget)
        self.min = [min(row) for row in self.cost]
        self.max = [max(row) for row in self.cost]
        self.suffix_min = [0.0] * (self.P + 1)
        self.suffix_max = [0.0] * (self.P + 1)
        for p in range(self.P - 1, -1, -1):
            self.suffix_min[p] = self.min[p] + self.suffix_min[p + 1]
            self.suffix_max[p] = self.max[p] + self.suffix_max[p + 1]
        self.full_raw = self.suffix_max[0]
        self.full = self.full_raw if self.full_raw > 0 else 1.0
        self.limit = self.budget + tolerance * max(self.budget, self.full_raw)
        self.choices: list[int] = []
        self.spent = 0.0
        self.ret = 0.0

    @property
    def done(self) -> bool:
        return len(self.choices) == self.P

    def legal(self) -> list[bool]:
        if self.done:
            return [False] * self.C
        t = len(self.choices)
        return [
            self.cost[t][c] == self.min[t]
            or (self.spent + self.cost[t][c]) + self.suffix_min[t + 1] <= self.limit
            for c in range(self.C)
        ]

    def step(self, c: int) -> float:
        assert self.legal()[c]
        t = len(self.choices)
        self.spent += self.cost[t][c]
        r = -self.penalty[t][c]
        self.ret += r
        self.choices.append(c)
        return r

    def observe(self) -> np.ndarray:
        C, P = self.C, self.P
        F = self.features.shape[2]
        K = self.part_features.shape[1]
        t = len(self.choices)
        choices = np.zeros(C * F)
        legal = np.zeros(C)
        room = np.zeros(C)
        glob = np.zeros(7)
        part = np.zeros(K)
        rest_mean = np.zeros(K)
        rest_max = np.zeros(K)
        rest_choices = np.zeros(C * F)
        glob[0] = np.clip((self.budget - self.spent) / self.full, 0, 4)
        glob[1] = (P - t) / P
        if t > 0 and C > 1:
            glob[4] = self.choices[-1] / (C - 1)
            glob[5] = sum(self.choices) / (t * (C - 1))
        if not self.done:
            slack = self.budget - self.spent - self.suffix_min[t]
            spread = self.suffix_max[t] - self.suffix_min[t]
            glob[2] = np.clip(slack / self.full, 0, 4)
            glob[3] = np.clip(slack / spread, 0, 1) if spread > 0 else 1.0
            glob[6] = np.clip((self.max[t] - self.min[t]) / spread, 0, 1) if spread > 0 else 0.0
            choices = self.features[t].ravel()
            mask = self.legal()
            legal = np.array(mask, np.float64)
            rest_spread = self.suffix_max[t + 1] - self.suffix_min[t + 1]
            for c in range(C):
                left = self.budget - (self.spent + self.cost[t][c]) - self.suffix_min[t + 1]
                if rest_spread > 0:
                    room[c] = np.clip(left / rest_spread, -1, 1)
                else:
                    room[c] = 1.0 if mask[c] else -1.0
            part = self.part_features[t]
            if t + 1 < P:
                rest_mean = self.part_features[t + 1 :].mean(axis=0)
                rest_max = self.part_features[t + 1 :].max(axis=0)
                rest_choices = self.features[t + 1 :].mean(axis=0).ravel()
        return np.concatenate([choices, legal, room, glob, part, rest_mean, rest_max, rest_choices])


def random_tables(rng: np.random.Generator, P: int, C: int, F: int, K: int, u: float):
    """Costs with ties and zeros, features, penalties; a budget at fraction u of the way from
    the cheapest to 1.1x the dearest total."""
    cost = rng.integers(0, 6, (P, C)).astype(np.float64) * rng.choice([1.0, 0.5, 1e9])
    cost += rng.random((P, C)) * rng.choice([0.0, 1e-3])
    features = rng.normal(size=(P, C, F)).astype(np.float32)
    part_features = rng.normal(size=(P, K)).astype(np.float32)
    penalty = rng.random((P, C)).astype(np.float32)
    lo, hi = cost.min(axis=1).sum(), 1.1 * cost.max(axis=1).sum()
    budget = lo + u * (hi - lo)
    return cost, features, part_features, penalty, budget


def state(g: RankGame) -> tuple:
    return (
        g.turn,
        g.spent,
        g.return_so_far,
        g.choices().tolist(),
        g.legal_mask().tolist(),
        g.observe().tobytes(),
    )


# ---------------------------------------------------------------------- rules vs reference
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    P=st.integers(1, 7),
    C=st.integers(1, 5),
    F=st.integers(0, 3),
    K=st.integers(0, 3),
    u=st.sampled_from([0.0, 0.05, 0.3, 0.5, 0.8, 1.0]),
    data=st.data(),
)
def test_random_play_matches_reference(seed, P, C, F, K, u, data):
    rng = np.random.default_rng(seed)
    cost, features, part_features, penalty, budget = random_tables(rng, P, C, F, K, u)
    g = RankGame(cost, features, part_features, budget, penalty)
    ref = RefRankGame(cost, features, part_features, budget, penalty)
    assert g.instance.limit == ref.limit
    assert g.instance.observation_size == 2 * C * F + 2 * C + 7 + 3 * K
    moves = 0
    while not g.done:
        mask = g.legal_mask()
        assert mask.tolist() == ref.legal()
        assert mask.any(), "a game in progress always has a legal choice"
        np.testing.assert_allclose(g.observe(), ref.observe(), rtol=1e-5, atol=1e-6)
        assert g.spent == ref.spent
        assert g.moves_left == P - g.turn
        legal = np.flatnonzero(mask)
        c = int(legal[data.draw(st.integers(0, len(legal) - 1), label="choice")])
        before = state(g)
        if data.draw(st.booleans(), label="try undo"):
            g.step(c)
            g.undo()
            assert state(g) == before, "undo restores the state exactly"
        assert g.step(c) == ref.step(c)
        assert g.return_so_far == ref.ret
        moves += 1
    assert moves == P
    assert g.choices().tolist() == ref.choices
    assert g.spent == ref.spent
    total = float(cost[np.arange(P), g.choices()].sum())
    assert total <= ref.limit * (1 + 1e-12), "every finished config fits the budget"
    assert not g.legal_mask().any()
    np.testing.assert_allclose(g.observe(), ref.observe(), rtol=1e-5, atol=1e-6)
    for _ in range(P):
        g.undo()
    assert state(g) == state(RankGame(g.instance))


@pytest.mark.parametrize("model", ["minilm", "smollm2"])
@pytest.mark.parametrize("fraction", [0.2, 0.35, 0.5, 0.8, 1.0])
def test_real_cost_tables(model, fraction):
    """The per-part FLOP tables of the models: greedy-largest play stays within budget and ends
    with at least the uniform fraction's share spent; the all-cheapest total is the minimum."""
    choices = DEFAULT_CHOICES[model]
    cost, full = cost_table(model, choices, 512)
    P, C = cost.shape
    feats = np.zeros((P, C, 2), np.float32)
    parts = np.zeros((P, 3), np.float32)
    budget = fraction * full
    if cost.min(axis=1).sum() > budget * (1 + TOL):
        with pytest.raises(ValueError, match="below the minimum"):
            RankInstance(cost, feats, parts, budget)
        return
    inst = RankInstance(cost, feats, parts, budget)
    assert inst.full_cost == pytest.approx(full)
    g = RankGame(inst)
    ref = RefRankGame(cost, feats, parts, budget)
    while not g.done:
        mask = g.legal_mask()
        assert mask.tolist() == ref.legal()
        c = int(np.flatnonzero(mask)[-1])
        g.step(c)
        ref.step(c)
    assert g.spent <= inst.limit
    # greedy-largest leaves less unused budget than the cheapest increment of any part
    steps = np.diff(np.sort(cost, axis=1), axis=1)
    smallest = steps[steps > 0].min() if (steps > 0).any() else 0.0
    assert budget - g.spent < smallest or g.choices().tolist() == [
        int(cost[p].argmax()) for p in range(P)
    ]


def test_below_minimum_names_budget_and_minimum():
    cost = np.array([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"budget 3.5 FLOPs is below the minimum 4 FLOPs"):
        RankInstance(cost, np.zeros((2, 2, 1)), np.zeros((2, 1)), 3.5)
    inst = RankInstance(cost, np.zeros((2, 2, 1)), np.zeros((2, 1)), 4.0)  # exactly the minimum
    g = RankGame(inst)
    assert g.legal_mask().tolist() == [True, False]
    g.step(0)
    assert g.legal_mask().tolist() == [True, False]


def test_tolerance_and_cheapest_always_legal():
    cost = np.array([[0.1, 0.2], [0.2, 0.3]])
    # 0.1 + 0.2 == 0.30000000000000004 in floats: the tolerance admits it at budget 0.3
    g = RankGame(cost, np.zeros((2, 2, 0)), np.zeros((2, 0)), 0.3)
    assert g.legal_mask().tolist() == [True, False]
    g.step(0)
    assert g.legal_mask().tolist() == [True, False]
    with pytest.raises(
        ValueError, match=r"budget 0.3 FLOPs is below the minimum 0.30000000000000004"
    ):
        RankGame(cost, np.zeros((2, 2, 0)), np.zeros((2, 0)), 0.3, tolerance=0.0)
    # Rounding: the minimum sums from the end, 0.1 + (0.2 + 0.3) == 0.6, but play sums from the
    # start, (0.1 + 0.2) + 0.3 == 0.6000000000000001: the cheapest choice stays legal.
    cost = np.array([[0.1, 1.0], [0.2, 1.0], [0.3, 1.0]])
    g = RankGame(cost, np.zeros((3, 2, 0)), np.zeros((3, 0)), 0.6, tolerance=0.0)
    assert g.instance.min_total == 0.6
    g.step(0)
    assert (0.1 + 0.2) + 0.3 > 0.6
    assert g.legal_mask().tolist() == [True, False]
    g.step(0)
    assert g.legal_mask().tolist() == [True, False]
    g.step(0)
    assert g.done
    g3 = RankGame(cost[:2], np.zeros((2, 2, 0)), np.zeros((2, 0)), 1.2)
    assert g3.legal_mask().tolist() == [True, True]
    g3.step(1)
    assert g3.legal_mask().tolist() == [True, False]


def test_observation_layout_and_values():
    cost = np.array([[1.0, 2.0, 4.0], [1.0, 3.0, 5.0], [2.0, 2.0, 2.0]])
    feats = np.arange(3 * 3 * 2, dtype=np.float32).reshape(3, 3, 2) / 10
    parts = np.array([[0.0, 1.0], [0.5, 0.0], [1.0, 1.0]], np.float32)
    g = RankGame(cost, feats, parts, 8.0, penalty=np.full((3, 3), 0.25))
    lay = g.instance.observation_layout()
    assert lay["choices"] == (0, 6) and lay["legal"] == (6, 3) and lay["room"] == (9, 3)
    assert lay["globals"] == (12, 7) and lay["part"] == (19, 2) and lay["rest_mean"] == (21, 2)
    assert lay["rest_max"] == (23, 2) and lay["rest_choices"] == (25, 6)
    assert g.instance.observation_size == 31
    o = g.observe()
    np.testing.assert_allclose(o[0:6], feats[0].ravel())
    assert o[6:9].tolist() == [1.0, 1.0, 1.0]  # 4 + 1 + 2 <= 8
    # full = 4 + 5 + 2 = 11; rest after part 0 spreads 7 - 3 = 4; left after c: 8 - cost - 3
    np.testing.assert_allclose(o[9:12], [1.0, 0.75, 0.25])
    np.testing.assert_allclose(o[lay["globals.budget_left"][0]], 8 / 11, rtol=1e-6)
    np.testing.assert_allclose(o[lay["globals.slack"][0]], (8 - 4) / 11, rtol=1e-6)
    np.testing.assert_allclose(o[lay["globals.headroom"][0]], 4 / 7, rtol=1e-6)
    np.testing.assert_allclose(o[lay["globals.part_share"][0]], 3 / 7, rtol=1e-6)
    np.testing.assert_allclose(o[21:23], parts[1:].mean(axis=0))
    np.testing.assert_allclose(o[23:25], parts[1:].max(axis=0))
    np.testing.assert_allclose(o[25:31], feats[1:].mean(axis=0).ravel(), rtol=1e-6)
    assert g.step(2) == -0.25
    o = g.observe()
    assert o[6:9].tolist() == [1.0, 0.0, 0.0]  # 4 + 3 + 2 > 8
    assert o[lay["globals.prev_choice"][0]] == 1.0
    g.step(0)
    o = g.observe()
    assert o[lay["globals.prev_choice"][0]] == 0.0
    assert o[lay["globals.mean_choice"][0]] == pytest.approx(0.5)
    np.testing.assert_allclose(o[9:12], [1.0, 1.0, 1.0])  # no later part: legal -> 1
    assert o[21:31].tolist() == [0.0] * 10  # no later parts
    g.step(0)
    o = g.observe()
    assert g.done and o[lay["globals.parts_left"][0]] == 0.0 and o[:12].tolist() == [0.0] * 12


# ---------------------------------------------------------------------- moves and state
def small_game(**kw) -> RankGame:
    cost = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    return RankGame(cost, np.zeros((2, 3, 1)), np.zeros((2, 1)), 3.5, **kw)


def test_illegal_moves_raise_and_leave_state():
    g = small_game()
    before = state(g)
    with pytest.raises(ValueError, match="over budget"):
        g.step(2)  # 3 + 1 > 3.5
    for bad in (-1, 3, 10**6):
        with pytest.raises(ValueError, match="out of range"):
            g.step(bad)
        assert not g.is_legal(bad)
    with pytest.raises(ValueError, match="choice must be a whole number, got 1.5"):
        g.step(1.5)
    with pytest.raises(ValueError, match="choice is beyond the int64 range"):
        g.step(2**70)
    assert state(g) == before
    with pytest.raises(ValueError, match="nothing to undo"):
        g.undo()
    g.step(1)
    assert g.legal_mask().tolist() == [True, False, False]
    g.step(0)
    assert g.done and g.spent == 3.0
    with pytest.raises(ValueError, match="the game is over"):
        g.step(0)


def test_replay_all_or_nothing_and_clone():
    g = small_game(penalty=np.array([[0.5, 0.25, 0.0], [0.5, 0.25, 0.0]]))
    assert g.replay([1, 0]) == -0.75
    assert g.done and g.choices().tolist() == [1, 0]
    g.reset()
    before = state(g)
    with pytest.raises(ValueError, match="replay: move 1"):
        g.replay([1, 1])
    assert state(g) == before
    with pytest.raises(ValueError):
        g.replay(["a"])
    g.step(0)
    c = g.clone()
    d = copy.deepcopy(g)
    e = copy.copy(g)
    c.step(1)
    assert g.turn == 1 and c.turn == 2 and d.turn == 1 and e.turn == 1
    assert c.instance is not None and c.history_size == 2
    c.undo()
    assert state(c) == state(g)
    assert "RankGame(turn=1/2" in repr(g) and "RankInstance(num_parts=2" in repr(g.instance)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cost=np.ones(3)), "cost must be a 2-D array"),
        (dict(cost=np.ones((2, 3, 1))), "cost must be a 2-D array"),
        (
            dict(cost=np.ones((0, 3)), features=np.ones((0, 3, 1)), part_features=np.ones((0, 1))),
            "1..",
        ),
        (dict(cost=np.ones((2, 0)), features=np.ones((2, 0, 1))), "1.."),
        (dict(features=np.ones((2, 3))), "features must be a 3-D array"),
        (dict(features=np.ones((2, 4, 1))), r"features must have shape \(P, C, F\)"),
        (dict(features=np.ones((3, 3, 1))), r"features must have shape \(P, C, F\)"),
        (dict(part_features=np.ones((3, 1))), r"part_features must have shape \(P, K\)"),
        (dict(part_features=np.ones(2)), "part_features must be a 2-D array"),
        (dict(penalty=np.ones((2, 2))), r"penalty must have shape \(P, C\)"),
        (dict(penalty=np.full((2, 3), np.nan)), r"penalty\[0, 0\] is nan"),
        (dict(cost=np.array([[1.0, np.nan, 2.0], [1.0, 1.0, 1.0]])), r"cost\[0, 1\] is nan"),
        (dict(cost=np.array([[1.0, 2.0, 2.0], [1.0, -1.0, 1.0]])), r"cost\[1, 1\] is -1"),
        (dict(cost=np.array([[1.0, np.inf, 2.0], [1.0, 1.0, 1.0]])), r"cost\[0, 1\] is inf"),
        (dict(features=np.full((2, 3, 1), np.inf)), r"features\[0, 0, 0\] is inf"),
        # beyond float32: inf after the cast (or a failed cast when warnings are errors)
        (
            dict(features=np.full((2, 3, 1), 1e300)),
            r"features(\[0, 0, 0\] is inf|: cannot convert)",
        ),
        (dict(part_features=np.array([[0.0], [np.nan]])), r"part_features\[1, 0\] is nan"),
        (dict(budget=float("nan")), "budget must be a finite number"),
        (dict(budget=-1.0), "budget must be a finite number"),
        (dict(budget=float("inf")), "budget must be a finite number"),
        (dict(budget="many"), "budget must be a number"),
        (dict(tolerance=0.5), "tolerance must be in"),
        (dict(tolerance=-1e-9), "tolerance must be in"),
        (dict(cost=np.array([["a", "b", "c"], ["a", "b", "c"]])), "cost must be a numeric array"),
        (dict(cost=[[1, 2, 3], [1, 2]]), "cost"),
    ],
)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_bad_inputs_raise_value_error(kwargs, match):
    args = dict(
        cost=np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]),
        features=np.zeros((2, 3, 1)),
        part_features=np.zeros((2, 1)),
        budget=10.0,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RankInstance(**args)
    with pytest.raises(ValueError, match=match):
        RankGame(**args)


def test_integer_and_bool_inputs_and_copies():
    cost = np.array([[1, 2], [3, 4]], np.int32)
    inst = RankInstance(
        cost, np.ones((2, 2, 1), bool), np.zeros((2, 0)), 6, penalty=[[1, 0], [0, 0]]
    )
    cost[0, 0] = 100  # the instance copied its inputs
    np.testing.assert_array_equal(inst.cost(), [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(inst.penalty(), [[1.0, 0.0], [0.0, 0.0]])
    assert inst.num_parts == 2 and inst.num_choices == 2 and inst.num_actions == 2
    assert inst.num_features == 1 and inst.num_part_features == 0
    assert inst.min_total == 4.0 and inst.full_cost == 6.0 and inst.budget == 6.0


# ---------------------------------------------------------------------- batches
def make_games(rng: np.random.Generator, parts: list[int], C: int = 4, F: int = 2, K: int = 3):
    out = []
    for P in parts:
        cost, feats, pf, pen, budget = random_tables(rng, P, C, F, K, float(rng.random()))
        out.append(RankGame(cost, feats, pf, budget, pen))
    return out


def test_batched_equals_single_games():
    rng = np.random.default_rng(7)
    games = make_games(rng, [3, 5, 1, 8, 5])
    singles = [g.clone() for g in games]
    b = BatchedRankGames(games)
    n, o, a = len(b), b.observation_size, b.num_actions
    assert (n, a) == (5, 4) and o == games[0].instance.observation_size
    obs = np.zeros((n, o), np.float32)
    mask = np.zeros((n, a), np.bool_)
    rew = np.zeros(n, np.float32)
    done = np.zeros(n, np.bool_)
    b.observe(obs, mask, done)
    np.testing.assert_array_equal(b.moves_left(), [3, 5, 1, 8, 5])
    for _ in range(9):
        actions = np.zeros(n, np.int64)
        for i, s in enumerate(singles):
            legal = np.flatnonzero(s.legal_mask())
            actions[i] = rng.choice(legal) if legal.size else 99  # a done game ignores it
        dtype = np.int32 if rng.random() < 0.5 else np.int64
        b.step(actions.astype(dtype), obs, mask, rew, done)
        for i, s in enumerate(singles):
            r = 0.0 if s.done else s.step(int(actions[i]))
            assert rew[i] == np.float32(r)
            assert done[i] == s.done
            np.testing.assert_array_equal(obs[i], s.observe())
            np.testing.assert_array_equal(mask[i], s.legal_mask())
            assert games[i].choices().tolist() == s.choices().tolist()
    assert done.all()
    ch = b.choices()
    assert ch.shape == (5, 8)
    for i, s in enumerate(singles):
        P = s.instance.num_parts
        assert ch[i, :P].tolist() == s.choices().tolist() and (ch[i, P:] == -1).all()
    np.testing.assert_array_equal(b.moves_left(), 0)
    assert b.reset_done().tolist() == [0, 1, 2, 3, 4]
    assert b.game(0).turn == 0 and b[-1].turn == 0 and b[4] is games[4]


def test_batched_errors():
    rng = np.random.default_rng(1)
    games = make_games(rng, [2, 3])
    b = BatchedRankGames(games)
    n, o, a = 2, b.observation_size, b.num_actions
    obs = np.zeros((n, o), np.float32)
    mask = np.zeros((n, a), np.bool_)
    rew = np.zeros(n, np.float32)
    done = np.zeros(n, np.bool_)
    with pytest.raises(ValueError, match="at least one game"):
        BatchedRankGames([])
    with pytest.raises(ValueError, match="appears twice"):
        BatchedRankGames([games[0], games[0]])
    with pytest.raises((ValueError, TypeError)):
        BatchedRankGames([games[0], None])
    other = make_games(rng, [2], C=5)[0]
    with pytest.raises(ValueError, match="agree on the number of choices"):
        BatchedRankGames([games[0], other])
    other = make_games(rng, [2], F=3)[0]
    with pytest.raises(ValueError, match="observation size"):
        BatchedRankGames([games[0], other])
    for i in (2, -3, 10**9):
        with pytest.raises(IndexError):
            b.game(i)
        with pytest.raises(IndexError):
            b[i]
    with pytest.raises(IndexError):
        b.reset([0, 5])
    with pytest.raises(IndexError):
        b.reset([-1])
    good = np.zeros(n, np.int32)
    with pytest.raises(ValueError, match="obs must have shape"):
        b.step(good, np.zeros((n, o + 1), np.float32), mask, rew, done)
    with pytest.raises(ValueError, match="obs must have dtype"):
        b.step(good, np.zeros((n, o), np.float64), mask, rew, done)
    with pytest.raises(ValueError, match="mask must have shape"):
        b.step(good, obs, np.zeros((n, a + 1), np.bool_), rew, done)
    with pytest.raises(ValueError, match="actions must have shape"):
        b.step(np.zeros(n + 1, np.int32), obs, mask, rew, done)
    with pytest.raises(ValueError, match="actions must have dtype"):
        b.step(np.zeros(n, np.float32), obs, mask, rew, done)
    with pytest.raises(ValueError, match="C-contiguous"):
        b.step(good, np.zeros((o, n), np.float32).T, mask, rew, done)
    ro = np.zeros(n, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        b.step(good, obs, mask, ro, done)
    before = [state(g) for g in games]
    bad = np.array([0, 99], np.int32)
    with pytest.raises(ValueError, match="illegal for game 1"):
        b.step(bad, obs, mask, rew, done)
    assert [state(g) for g in games] == before, "an illegal action steps no game"
