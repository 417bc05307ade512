"""Statistics that hold for a few seeds on many instances (after Agarwal et al., NeurIPS 2021,
"Deep RL at the edge of the statistical precipice", and its library ``rliable``).

Written in numpy/scipy rather than on ``rliable`` itself: ``rliable`` pulls ``arch``,
``statsmodels``, ``seaborn`` and ``formulaic`` into the environment for a few dozen lines of
arithmetic. The definitions are the same:

- interquartile mean (IQM): the mean of the middle 50% of all scores pooled over runs and
  tasks (``scipy.stats.trim_mean(x, 0.25)``);
- stratified bootstrap: resample the runs (seeds) *within* each task (an instance at a
  capacity) with replacement, keep the set of tasks fixed, recompute the statistic; the 95%
  confidence interval is the 2.5 and 97.5 percentiles of the replicates (percentile method);
- probability of improvement ``P(X > Y)``: per task, the Mann-Whitney statistic
  ``P(x > y) + 0.5 P(x = y)`` over all pairs of runs, averaged over tasks;
- performance profiles (Dolan and Moré, 2002): for each solver, the fraction of runs whose
  ratio to the best bound is at most ``tau``.

Scores are given per task as a list of 1-D arrays (``tasks[j]`` holds one score per run of task
``j``); tasks may have different numbers of runs (a solver that crashed on a seed). Pooled
statistics then weigh every run equally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

Ragged = Sequence[np.ndarray] | Sequence[Sequence[float]] | np.ndarray
Statistic = Callable[[np.ndarray], np.ndarray]  # [R, N] -> [R], along axis 1


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval ``[lo, hi]``."""

    value: float
    lo: float
    hi: float

    def fmt(self, scale: float = 1.0, digits: int = 3) -> str:
        v, lo, hi = self.value * scale, self.lo * scale, self.hi * scale
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _as_tasks(scores: Ragged) -> list[np.ndarray]:
    """``scores[j]`` -> float arrays; a 2-D array is read as ``[runs, tasks]`` (rliable's
    layout)."""
    if isinstance(scores, np.ndarray):
        if scores.ndim == 1:
            return [scores.astype(np.float64)]
        if scores.ndim != 2:
            raise ValueError(f"scores must be [runs, tasks], got shape {scores.shape}")
        return [np.asarray(scores[:, j], dtype=np.float64) for j in range(scores.shape[1])]
    tasks = [np.asarray(t, dtype=np.float64).ravel() for t in scores]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one score")
    return tasks


# --------------------------------------------------------------------------- point statistics
def iqm(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    return _sps.trim_mean(np.asarray(x, dtype=np.float64), 0.25, axis=axis)


def iqm_rows(x: np.ndarray) -> np.ndarray:
    """IQM of each row of ``x`` ``[R, N]`` -> ``[R]``."""
    return _sps.trim_mean(x, 0.25, axis=1)


def mean_rows(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1)


def median_rows(x: np.ndarray) -> np.ndarray:
    return np.median(x, axis=1)


# --------------------------------------------------------------------------- bootstrap
def _resample(tasks: list[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """``[reps, N]``: every task's runs resampled with replacement, tasks kept (stratified)."""
    cols = []
    for t in tasks:
        idx = rng.integers(0, t.size, size=(reps, t.size))
        cols.append(t[idx])
    return np.concatenate(cols, axis=1)


def stratified_bootstrap_ci(
    scores: Ragged,
    statistic: Statistic = iqm_rows,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """The statistic of the pooled scores with a stratified-bootstrap percentile interval.

    ``statistic`` maps ``[R, N]`` to ``[R]`` (row-wise), e.g. :func:`iqm_rows`,
    :func:`mean_rows`, :func:`median_rows`.
    """
    tasks = _as_tasks(scores)
    rng = np.random.default_rng(seed)
    point = float(statistic(np.concatenate(tasks)[None, :])[0])
    reps_ = _bootstrap_in_chunks(tasks, statistic, reps, rng)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps_, [a, 1.0 - a])
    return Estimate(point, float(lo), float(hi))


def _bootstrap_in_chunks(
    tasks: list[np.ndarray], statistic: Statistic, reps: int, rng: np.random.Generator
) -> np.ndarray:
    n = sum(t.size for t in tasks)
    chunk = max(1, min(reps, 4_000_000 // max(n, 1)))  # keep [chunk, N] below ~32 MB
    out = []
    left = reps
    while left > 0:
        r = min(chunk, left)
        out.append(statistic(_resample(tasks, r, rng)))
        left -= r
    return np.concatenate(out)


# --------------------------------------------------------------------------- P(improvement)
def _pairwise_win(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(x > y) + 0.5 P(x = y)`` over all pairs; batched over a leading axis.

    ``x`` ``[..., n]``, ``y`` ``[..., m]`` -> ``[...]``.
    """
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(x: Ragged, y: Ragged) -> float:
    """``P(X > Y)``, averaged over tasks: the chance that a run of X scores higher than a run
    of Y on the same task (ties count half). Higher scores are better."""
    tx, ty = _as_tasks(x), _as_tasks(y)
    if len(tx) != len(ty):
        raise ValueError(f"x has {len(tx)} tasks, y has {len(ty)}: they must be the same tasks")
    return float(np.mean([_pairwise_win(a, b) for a, b in zip(tx, ty, strict=True)]))


def probability_of_improvement_ci(
    x: Ragged, y: Ragged, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Estimate:
    """:func:`probability_of_improvement` with a stratified-bootstrap interval (the runs of X
    and of Y are resampled independently within each task)."""
    tx, ty = _as_tasks(x), _as_tasks(y)
    if len(tx) != len(ty):
        raise ValueError(f"x has {len(tx)} tasks, y has {len(ty)}: they must be the same tasks")
    rng = np.random.default_rng(seed)
    point = probability_of_improvement(tx, ty)
    acc = np.zeros(reps)
    for a, b in zip(tx, ty, strict=True):
        ra = a[rng.integers(0, a.size, size=(reps, a.size))]
        rb = b[rng.integers(0, b.size, size=(reps, b.size))]
        acc += _pairwise_win(ra, rb)
    acc /= len(tx)
    al = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(acc, [al, 1.0 - al])
    return Estimate(point, float(lo), float(hi))


# --------------------------------------------------------------------------- profiles
def performance_profile(ratios: Ragged, taus: np.ndarray) -> np.ndarray:
    """Dolan-Moré profile: for each ``tau``, the fraction of runs with ``ratio <= tau``, each
    task weighted equally (the mean over tasks of the fraction of its runs). ``ratio`` is the
    objective divided by the best bound (>= 1; ``inf`` for a failed run)."""
    tasks = _as_tasks(ratios)
    taus = np.asarray(taus, dtype=np.float64)
    return np.mean([(t[None, :] <= taus[:, None]).mean(axis=1) for t in tasks], axis=0)


def performance_profile_ci(
    ratios: Ragged, taus: np.ndarray, reps: int = 500, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(profile, lo, hi)`` with pointwise stratified-bootstrap intervals."""
    tasks = _as_tasks(ratios)
    taus = np.asarray(taus, dtype=np.float64)
    rng = np.random.default_rng(seed)
    point = performance_profile(tasks, taus)
    acc = np.zeros((reps, taus.size))
    for t in tasks:
        r = t[rng.integers(0, t.size, size=(reps, t.size))]  # [reps, n]
        acc += (r[:, None, :] <= taus[None, :, None]).mean(axis=2)
    acc /= len(tasks)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(acc, [a, 1.0 - a], axis=0)
    return point, lo, hi
