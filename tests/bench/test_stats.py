"""The bench's statistics on distributions whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mallocgame.bench import stats


def test_iqm_of_uniform_and_exponential_match_analytic_values():
    rng = np.random.default_rng(0)
    # U(0, 1): the middle half is U(0.25, 0.75), whose mean is 0.5.
    assert stats.iqm(rng.uniform(0, 1, 200_000)) == pytest.approx(0.5, abs=3e-3)
    # U(2, 10): middle half U(4, 8), mean 6.
    assert stats.iqm(rng.uniform(2, 10, 200_000)) == pytest.approx(6.0, abs=2e-2)
    # Exp(1): E[X | q25 <= X <= q75] = 2 [(a + 1) e^-a - (b + 1) e^-b], a = ln 4/3, b = ln 4.
    a, b = math.log(4 / 3), math.log(4)
    want = 2 * ((a + 1) * math.exp(-a) - (b + 1) * math.exp(-b))
    assert stats.iqm(rng.exponential(1.0, 400_000)) == pytest.approx(want, abs=5e-3)
    # ...and it differs from the mean (1.0), so the trimming is really done.
    assert abs(want - 1.0) > 0.1


def test_iqm_trims_outliers():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 1e9])
    assert stats.iqm(x) == pytest.approx(4.5)


def test_bootstrap_ci_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    trials, hits = 300, 0
    for t in range(trials):
        # 3 tasks (strata) with different means, 20 runs each; the pooled mean is 1.0.
        tasks = [rng.normal(mu, 1.0, 20) for mu in (0.0, 1.0, 2.0)]
        est = stats.stratified_bootstrap_ci(tasks, statistic=stats.mean_rows, reps=800, seed=t)
        hits += est.lo <= 1.0 <= est.hi
    coverage = hits / trials
    # Percentile bootstrap under-covers slightly at n = 60; 300 trials give +-2.5% noise.
    assert 0.88 <= coverage <= 0.99, coverage


def test_bootstrap_ci_is_stratified_tasks_never_mix():
    # Two tasks with constant scores: any stratified resample has the same pooled mean.
    est = stats.stratified_bootstrap_ci(
        [[0.0, 0.0, 0.0], [1.0, 1.0]], statistic=stats.mean_rows, reps=200
    )
    assert est.lo == est.hi == pytest.approx(0.4)


def test_bootstrap_interval_shrinks_with_more_runs():
    rng = np.random.default_rng(2)
    small = stats.stratified_bootstrap_ci([rng.normal(0, 1, 10)], reps=1000)
    big = stats.stratified_bootstrap_ci([rng.normal(0, 1, 1000)], reps=1000)
    assert (big.hi - big.lo) < (small.hi - small.lo) / 3


def test_probability_of_improvement_identical_is_half_shifted_is_one():
    rng = np.random.default_rng(3)
    x = [rng.normal(0, 1, 50) for _ in range(5)]
    y = [rng.normal(0, 1, 50) for _ in range(5)]
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.5, abs=0.05)
    shifted = [t + 10.0 for t in y]
    assert stats.probability_of_improvement(shifted, x) == pytest.approx(1.0)
    assert stats.probability_of_improvement(x, shifted) == pytest.approx(0.0)
    # Ties count half: a deterministic solver against itself.
    assert stats.probability_of_improvement([[1.0, 1.0]], [[1.0]]) == 0.5
    est = stats.probability_of_improvement_ci(x, y, reps=500)
    assert est.lo < 0.5 < est.hi
    est = stats.probability_of_improvement_ci(shifted, x, reps=500)
    assert est.lo == est.hi == 1.0


def test_probability_of_improvement_matches_mann_whitney():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(4)
    x, y = rng.normal(0.3, 1, 40), rng.normal(0, 1, 30)
    u = mannwhitneyu(x, y).statistic
    assert stats.probability_of_improvement([x], [y]) == pytest.approx(u / (40 * 30))


def test_probability_of_improvement_needs_the_same_tasks():
    with pytest.raises(ValueError):
        stats.probability_of_improvement([[1.0], [2.0]], [[1.0]])


def test_performance_profile_known_values():
    # Task A: ratios 1.0 and 2.0; task B: 1.5 and inf (a failed run).
    ratios = [[1.0, 2.0], [1.5, math.inf]]
    prof = stats.performance_profile(ratios, np.array([1.0, 1.5, 2.0, 100.0]))
    np.testing.assert_allclose(prof, [0.25, 0.5, 0.75, 0.75])
    p, lo, hi = stats.performance_profile_ci(ratios, np.array([1.0, 100.0]), reps=300)
    assert np.all(lo <= p) and np.all(p <= hi)


def test_runs_by_tasks_matrix_layout():
    # rliable's layout: [runs, tasks].
    m = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    est = stats.stratified_bootstrap_ci(m, statistic=stats.mean_rows, reps=50)
    assert est.value == pytest.approx(0.5) and est.lo == est.hi == pytest.approx(0.5)
