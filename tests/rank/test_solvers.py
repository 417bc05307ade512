"""Rank-game baselines on synthetic tables (no model needed): budgets, determinism, greedy."""

from __future__ import annotations

import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.rank import solvers
from mallocgame.rank.tables import DEFAULT_CHOICES, RankTables, cost_table

BUDGETS = (0.9, 0.6, 0.5, 0.3, 0.2)


def synthetic(model: str = "smollm2", seed: int = 0) -> RankTables:
    """Made-up energy/sens/fisher with the real cost table: value parts more sensitive than
    query-key parts, layers of random sensitivity, sens convex-ish in the rank."""
    choices = DEFAULT_CHOICES[model]
    cost, _ = cost_table(model, choices, 512)
    P, C = cost.shape
    rng = np.random.default_rng(seed)
    r = np.asarray(choices, np.float64) / choices[-1]
    layer_w = rng.uniform(0.2, 3.0, size=P)
    layer_w[1::2] *= 4.0  # values hurt more
    sens = layer_w[:, None] * (1 - r[None, :]) ** 2
    decay = rng.uniform(3, 12, size=P)
    energy = 1 - np.exp(-decay[:, None] * r[None, :])
    energy /= energy[:, -1:]
    fisher = layer_w * rng.uniform(0.5, 1.5, size=P)
    return RankTables(model, "0" * 16, 512, "whitened", choices, energy, sens, fisher)


class AdditiveEvaluator:
    """A synthetic calibration loss: the table's sens summed, plus pairwise interactions of
    lowered value parts in adjacent layers (what the one-at-a-time table cannot see)."""

    def __init__(self, t: RankTables, seed: int = 1) -> None:
        self.t = t
        self.calls = 0
        rng = np.random.default_rng(seed)
        self.inter = rng.uniform(0, 0.5, size=t.num_parts)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(np.asarray(idx, np.int64))
        self.calls += len(idx)
        P = self.t.num_parts
        base = self.t.sens[np.arange(P)[None, :], idx].sum(1)
        low = (idx < len(self.t.choices) - 1).astype(np.float64)
        pair = (low[:, 1:-2:2] * low[:, 3::2] * self.inter[1:-2:2]).sum(1)
        return base + pair


@pytest.mark.parametrize("name", ["uniform", "spectral", "fisher", "greedy", "refine"])
@pytest.mark.parametrize("model", ["smollm2", "minilm"])
def test_solvers_fit_the_budget_and_are_deterministic(name: str, model: str) -> None:
    t = synthetic(model)
    measured = name in ("greedy", "refine")
    for b in BUDGETS:
        ev = AdditiveEvaluator(t)
        a = solvers.solve(t, b, name, evaluator=ev if measured else None)
        again = solvers.solve(t, b, name, evaluator=AdditiveEvaluator(t) if measured else None)
        assert a.dtype == np.int64 and a.shape == (t.num_parts,)
        assert t.fraction(a) <= b + 1e-12
        np.testing.assert_array_equal(a, again)
    full = solvers.solve(t, 1.0, name)
    assert t.fraction(full) == pytest.approx(1.0)


def test_uniform_is_the_largest_single_rank_that_fits() -> None:
    t = synthetic()
    idx = solvers.solve(t, 0.5, "uniform")
    assert len(set(idx.tolist())) == 1
    c = int(idx[0])
    assert t.fraction(np.full(t.num_parts, c + 1)) > 0.5
    # SmolLM2 at rank 32 costs 0.54 with the post-RoPE projection, so 0.5 gets rank 24.
    assert t.choices[c] == 24


def test_spectral_and_fisher_use_more_of_the_budget_than_uniform() -> None:
    t = synthetic()
    for b in (0.5, 0.3):
        u = t.fraction(solvers.solve(t, b, "uniform"))
        for name in ("spectral", "fisher", "greedy"):
            f = t.fraction(solvers.solve(t, b, name))
            assert u - 0.03 <= f <= b + 1e-12, (name, b, f, u)


def test_fisher_follows_sensitivity() -> None:
    t = synthetic()
    idx = solvers.solve(t, 0.5, "fisher")
    order = np.argsort(t.fisher)
    # the least sensitive quarter of the parts never keeps more rank than the most sensitive
    assert idx[order[: len(order) // 4]].max() <= idx[order[-len(order) // 4 :]].min()


def test_greedy_beats_uniform_on_the_synthetic_loss() -> None:
    t = synthetic()
    for b in (0.5, 0.3):
        ev = AdditiveEvaluator(t)
        g = solvers.solve(t, b, "greedy", evaluator=ev, max_evals=60, top_k=3)
        u = solvers.solve(t, b, "uniform")
        assert 0 < ev.calls <= 61  # the start config + at most max_evals
        assert ev(g)[0] < ev(u)[0]
        # without evaluator (estimate only) it is also at least as good as uniform
        assert ev(solvers.solve(t, b, "greedy"))[0] <= ev(u)[0]


def test_greedy_measurements_help_against_interactions() -> None:
    t = synthetic(seed=3)
    ev = AdditiveEvaluator(t, seed=4)
    ev.inter *= 20  # strong interactions the table cannot see
    est = solvers.solve(t, 0.3, "greedy")
    meas = solvers.solve(t, 0.3, "greedy", evaluator=ev, max_evals=300, top_k=4)
    assert ev(meas)[0] <= ev(est)[0]


def test_greedy_trace_records_moves() -> None:
    t = synthetic()
    trace: list = []
    idx = solvers.solve(t, 0.5, "greedy", evaluator=AdditiveEvaluator(t), max_evals=9, trace=trace)
    assert len(trace) == int((len(t.choices) - 1 - idx).sum())
    assert sum(s["measured"] is not None for s in trace) >= 1
    assert trace[-1]["fraction"] == pytest.approx(t.fraction(idx))


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5, float("nan"), "x"])
def test_bad_budget_names_the_field(budget) -> None:
    with pytest.raises(InputError, match="field 'budget'"):
        solvers.solve(synthetic(), budget, "uniform")


def test_impossible_budget_is_refused_clearly() -> None:
    t = synthetic()
    lo = solvers.min_fraction(t)
    with pytest.raises(solvers.BudgetError, match="below the cheapest choice"):
        solvers.solve(t, lo / 2, "greedy")
    assert t.fraction(solvers.solve(t, lo, "spectral")) == pytest.approx(lo)


def test_unknown_solver_and_unavailable_agent(monkeypatch) -> None:
    with pytest.raises(InputError, match="unknown rank solver"):
        solvers.solve(synthetic(), 0.5, "nope")
    import sys

    monkeypatch.setitem(sys.modules, "mallocgame.rank.agent", None)  # import fails
    assert not solvers.available("agent")
    with pytest.raises(solvers.SolverUnavailableError, match="agent unavailable"):
        solvers.solve(synthetic(), 0.5, "agent")


class WindowEvaluator(AdditiveEvaluator):
    """The synthetic loss on two "windows": each choice part 0 is below full rank costs
    ``penalty`` on window 0 and gains ``penalty / 2`` on window 1 (raising part 0 helps on
    average but not on every window)."""

    def __init__(self, t: RankTables, penalty: float) -> None:
        super().__init__(t)
        self.penalty = penalty

    def window_losses(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(np.asarray(idx, np.int64))
        base = AdditiveEvaluator.__call__(self, idx)
        pen = self.penalty * (len(self.t.choices) - 1 - idx[:, 0])
        return np.stack([base + pen, base - pen / 2], axis=1)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        return self.window_losses(idx).mean(1)


def test_refine_improves_greedy_by_exchanges_within_the_budget() -> None:
    t = synthetic()
    for b in (0.5, 0.3):
        ev = AdditiveEvaluator(t)
        g = solvers.solve(t, b, "greedy", evaluator=ev, max_evals=30)
        trace: list = []
        r = solvers.solve(t, b, "refine", evaluator=ev, max_evals=30, refine_evals=300, trace=trace)
        assert t.fraction(r) <= b + 1e-12
        assert ev(r)[0] <= ev(g)[0]  # moves are accepted only when the measured loss drops
        losses = [s["measured"] for s in trace]
        assert losses == sorted(losses, reverse=True)
        for s in trace:  # one raise, lowerings elsewhere, each by one choice
            assert s["raise"] not in s["lower"]
    ev = AdditiveEvaluator(t)
    g = solvers.solve(t, 0.5, "greedy", evaluator=ev, max_evals=30)
    assert ev(solvers.solve(t, 0.5, "refine", evaluator=ev, max_evals=30))[0] < ev(g)[0]


def test_refine_from_an_init_and_its_evaluation_cap() -> None:
    t = synthetic(seed=2)
    u = solvers.solve(t, 0.5, "uniform")  # leaves budget unused: raises alone fit
    ev = AdditiveEvaluator(t)
    r = solvers.solve(t, 0.5, "refine", evaluator=ev, init=u, refine_evals=40)
    assert ev.calls <= 40 and t.fraction(r) <= 0.5 + 1e-12
    assert ev(r)[0] < ev(u)[0]
    # without an evaluator the tables' additive estimate decides
    est = solvers.solve(t, 0.5, "refine", init=u)
    assert solvers.TableLoss(t)(est)[0] < solvers.TableLoss(t)(u)[0]
    # an init over the budget is trimmed first: measured loss per FLOP saved
    ev = AdditiveEvaluator(t)
    trace: list = []
    r = solvers.solve(t, 0.3, "refine", evaluator=ev, init=u, refine_evals=1, trace=trace)
    trims = [s for s in trace if "trim" in s]
    assert trims and t.fraction(r) <= 0.3 + 1e-12 and (r <= u).all()
    assert trims[-1]["fraction"] <= 0.3 + 1e-12 and all(s["fraction"] > 0.3 for s in trims[:-1])
    # the first lowering is the one with the least measured loss per FLOP saved
    idx = np.asarray(u)
    rise = [
        max(ev(np.where(np.arange(len(idx)) == q, idx - 1, idx))[0] - ev(idx)[0], 0.0)
        / (t.cost[q, idx[q]] - t.cost[q, idx[q] - 1])
        if idx[q] > 0
        else np.inf
        for q in range(len(idx))
    ]
    assert rise[trims[0]["trim"]] == pytest.approx(min(rise))
    with pytest.raises(solvers.BudgetError):
        solvers.solve(t, 0.0001, "refine", init=u)
    with pytest.raises(InputError, match="field 'init'"):
        solvers.solve(t, 0.5, "refine", init=u[:-1])


def test_refine_agree_rejects_moves_that_help_on_one_window_only() -> None:
    t = synthetic()
    start = solvers.solve(t, 0.5, "greedy", evaluator=AdditiveEvaluator(t), max_evals=30)
    assert start[0] < len(t.choices) - 1  # part 0 lowered: raising it is a candidate
    # part 0 at full rank is worth a lot on window 0 (mean too) but costs on window 1
    ev = WindowEvaluator(t, penalty=5.0)
    plain = solvers.solve(t, 0.5, "refine", evaluator=ev, init=start, refine_evals=200)
    strict = solvers.solve(t, 0.5, "refine", evaluator=ev, init=start, refine_evals=200, agree=1)
    assert plain[0] > start[0]  # the mean improved: accepted
    w = ev.window_losses(np.stack([start, strict]))
    assert strict[0] <= start[0]  # raising part 0 always costs on window 1: never accepted
    assert np.all(w[1] <= w[0])  # strict: never worse on any window
    assert ev(strict)[0] <= ev(start)[0]


def test_refine_stops_cleanly_when_time_runs_out_mid_round() -> None:
    """The time limit can expire between a round's check and its candidates (regression: an
    empty batch of candidates crashed)."""
    import time

    t = synthetic()
    inner = AdditiveEvaluator(t)

    def slow(idx: np.ndarray) -> np.ndarray:
        time.sleep(0.01)
        return inner(idx)

    start = solvers.solve(t, 0.5, "greedy", evaluator=inner, max_evals=30)
    for limit in (0.05, 0.3):
        r = solvers.solve(t, 0.5, "refine", evaluator=slow, init=start, time_limit=limit)
        assert t.fraction(r) <= 0.5 + 1e-12 and inner(r)[0] <= inner(start)[0]


def test_solver_names_come_from_the_registry() -> None:
    from mallocgame import registry

    names = ["agent", "fisher", "greedy", "refine", "spectral", "uniform"]
    assert registry.names("rank") == names
    for name in names[1:]:
        assert solvers.load(name) is getattr(solvers, f"solve_{name}")
    with pytest.raises(InputError) as e:
        solvers.load("nope")
    assert e.value.field == "solver" and str(e.value).endswith("one of " + ", ".join(names))


def test_unavailable_agent_names_its_module(monkeypatch) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "mallocgame.rank.agent", None)  # import fails
    with pytest.raises(
        solvers.SolverUnavailableError, match=r"cannot import mallocgame\.rank\.agent"
    ):
        solvers.load("agent")
    # a module without its solve function
    monkeypatch.setitem(
        sys.modules, "mallocgame.rank.agent", types.ModuleType("mallocgame.rank.agent")
    )
    with pytest.raises(
        solvers.SolverUnavailableError, match=r"mallocgame\.rank\.agent has no solve\(\)"
    ):
        solvers.load("agent")
    assert not solvers.available("agent")
