"""Where a workload comes from, and a problem made of it: one spec for every reader.

A source is a ``*.workload.json[.gz]`` file, a minimalloc CSV, an XLA dump folder or
``zoo:NAME`` (a program of the zoo, compiled now). :mod:`mallocgame.api` is the public face of
these functions.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.memory import xla
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.problem import Problem, Solution
from mallocgame.memory.solvers import solve as _solve
from mallocgame.memory.targets import DEFAULT_TARGET, Target, load_target, parse_capacity
from mallocgame.memory.workload import Workload

_CAPACITY_IN_NAME = re.compile(r"\.(\d+)\.csv$")

# The zoo (``workloads/``) builds its JAX programs with this game's readers, so it sits above the
# memory game: the game reaches it by this name, imported when a zoo program is first asked for
# (and importing it loads JAX and haiku).
ZOO_MODULE = "workloads.zoo"


def compile_zoo(name: str, **overrides: object) -> Workload:
    """Compile zoo program ``name`` (builder arguments ``overrides``) into a workload."""
    return importlib.import_module(ZOO_MODULE).extract(name, **overrides)


def load_workload(source: str | os.PathLike[str]) -> Workload:
    """A workload from a ``*.workload.json[.gz]`` file, a minimalloc CSV, an XLA dump folder,
    or ``zoo:NAME`` (compiled now)."""
    s = str(source)
    if s.startswith("zoo:"):
        return compile_zoo(s[4:])
    path = Path(s)
    if path.is_dir():
        return xla.read_dump_folder(path)
    if not path.exists():
        raise InputError(
            "no such file or folder (give a workload file, a minimalloc CSV, an XLA dump folder "
            "or zoo:NAME)",
            s,
        )
    if path.suffix.lower() == ".csv":
        return read_csv(path)[0]
    return Workload.load(path)


def capacity_from_name(source: str | os.PathLike[str]) -> int | None:
    """minimalloc's benchmark files carry the capacity in their name: ``A.1048576.csv``."""
    m = _CAPACITY_IN_NAME.search(str(source))
    return int(m.group(1)) if m else None


def workload_from_jax(fn, *args, name: str | None = None, **kwargs) -> Workload:
    """Compile ``jax.jit(fn)(*args, **kwargs)`` with XLA and read the workload from its
    buffer assignment and live ranges (nothing is executed)."""
    return xla.workload_from_jax(fn, *args, name=name, **kwargs)


def make_problem(
    workload: Workload,
    capacity: str | int = "25%",
    target: str | Target = DEFAULT_TARGET,
    objective: str = "time",
    alignment: int | None = None,
    num_candidates: int = 8,
) -> Problem:
    """The problem of mapping ``workload`` into ``target``'s fast memory of ``capacity`` bytes
    (or a percentage of the workload's peak live bytes)."""
    t = load_target(target) if isinstance(target, (str, os.PathLike)) else target
    t = t.with_capacity(parse_capacity(capacity, workload.peak_live_bytes()))
    if alignment is not None:
        if alignment <= 0:
            raise InputError(f"alignment must be positive, got {alignment}", field="alignment")
        t = dataclasses.replace(t, alignment_bytes=int(alignment))
    problem = Problem(workload, t, objective=objective, num_candidates=num_candidates)
    smallest = int(workload.sizes.min()) if workload.num_buffers else 0
    if workload.num_buffers and smallest > t.fast_capacity_bytes:
        msg = (
            f"capacity {t.fast_capacity_bytes} bytes is smaller than the smallest buffer "
            f"({smallest} bytes)"
        )
        if objective == "fit-all":
            raise InputError(msg + ": no buffer fits, so fit-all has no solution", field="capacity")
        warnings.warn(msg + ": no buffer fits; every buffer stays in slow memory", stacklevel=2)
    if objective == "fit-all":
        too_big = np.flatnonzero(workload.sizes > t.fast_capacity_bytes)
        if too_big.size:
            b = int(too_big[0])
            raise InputError(
                f"buffer {workload.ids[b]} ({workload.sizes[b]} bytes) is larger than the capacity "
                f"{t.fast_capacity_bytes}: fit-all has no solution",
                field="capacity",
            )
    return problem


def solve(
    workload: Workload | str | os.PathLike[str],
    capacity: str | int = "25%",
    solver: str = "msa",
    target: str | Target = DEFAULT_TARGET,
    objective: str = "time",
    seed: int = 0,
    time_limit: float | None = None,
    alignment: int | None = None,
) -> Solution:
    """Load (if a path), build the problem, solve it. See
    :class:`mallocgame.memory.problem.Solution`."""
    wl = workload if isinstance(workload, Workload) else load_workload(workload)
    return _solve(
        make_problem(wl, capacity, target, objective, alignment),
        solver,
        seed=seed,
        time_limit=time_limit,
    )


def summary(solution: Solution, **extra: Any) -> dict[str, Any]:
    d = solution.summary()
    d.update(extra)
    return d
