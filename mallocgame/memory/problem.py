"""A problem (workload + target + capacity + objective) and a solution (a memory mapping)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mallocgame import _native
from mallocgame.errors import InputError
from mallocgame.memory import cost
from mallocgame.memory.targets import Target
from mallocgame.memory.validate import validate
from mallocgame.memory.workload import Workload

OBJECTIVES = ("time", "fit-all")
#: The largest fast-memory capacity the native game takes (its observation grid of 16 bins
#: scales capacities within int64).
MAX_CAPACITY = 2**58


@dataclasses.dataclass(eq=False)
class Problem:
    """What to solve: which buffers of ``workload`` go into ``target``'s fast memory."""

    workload: Workload
    target: Target
    objective: str = "time"
    num_candidates: int = 8

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(
                f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}",
                field="objective",
            )
        cap, align = self.target.fast_capacity_bytes, self.target.alignment_bytes
        if not 0 <= cap <= MAX_CAPACITY:
            raise InputError(
                f"capacity {cap} bytes is outside the supported range [0, 2^58]", field="capacity"
            )
        if not 1 <= align <= MAX_CAPACITY:
            raise InputError(
                f"alignment {align} bytes is outside the supported range [1, 2^58]",
                field="alignment",
            )
        self._all_slow: float | None = None
        self._lower: float | None = None

    @property
    def capacity(self) -> int:
        return self.target.fast_capacity_bytes

    @property
    def all_slow_time(self) -> float:
        if self._all_slow is None:
            self._all_slow = cost.all_slow_time(self.workload, self.target)
        return self._all_slow

    @property
    def lower_bound_time(self) -> float:
        if self._lower is None:
            self._lower = cost.lower_bound_time(self.workload, self.target)
        return self._lower

    def fitting_buffers(self) -> int:
        return int(np.sum(self.workload.sizes <= self.capacity))

    def instance(self, order: np.ndarray):
        """The native game instance that presents buffers in ``order``."""
        w, t = self.workload, self.target
        return _native.Instance(
            w.sizes,
            w.starts,
            w.ends,
            w.instr_flops,
            w.access_ptr,
            w.access_buffer,
            w.access_bytes,
            int(t.fast_capacity_bytes),
            int(t.alignment_bytes),
            float(t.fast_bandwidth_bytes_per_s),
            float(t.slow_bandwidth_bytes_per_s),
            float(t.peak_flops_per_s),
            np.ascontiguousarray(order, dtype=np.int64),
            self.num_candidates,
            self.objective,
        )


@dataclasses.dataclass(eq=False)
class Solution:
    """A memory mapping: ``offsets[b]`` is buffer ``b``'s fast-memory offset, -1 for slow."""

    problem: Problem
    solver: str
    offsets: np.ndarray
    wall_s: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def fast(self) -> np.ndarray:
        return self.offsets >= 0

    @property
    def time_s(self) -> float:
        return cost.program_time(self.problem.workload, self.problem.target, self.fast)

    @property
    def placed_bytes(self) -> int:
        return int(self.problem.workload.sizes[self.fast].sum())

    def check(self):
        w, p = self.problem.workload, self.problem
        return validate(
            w.ids,
            w.sizes,
            w.starts,
            w.ends,
            self.offsets,
            p.capacity,
            p.target.alignment_bytes,
            require_all_fast=p.objective == "fit-all",
        )

    def summary(self) -> dict[str, Any]:
        p, w = self.problem, self.problem.workload
        t = self.time_s
        report = self.check()
        d = {
            "workload": w.name,
            "solver": self.solver,
            "objective": p.objective,
            "target": p.target.name,
            "capacity": p.capacity,
            "peak_live_bytes": w.peak_live_bytes(),
            "num_buffers": w.num_buffers,
            "placed_buffers": int(self.fast.sum()),
            "placed_bytes": self.placed_bytes,
            "time_s": t,
            "all_slow_time_s": p.all_slow_time,
            "lower_bound_time_s": p.lower_bound_time,
            "speedup_vs_all_slow": p.all_slow_time / t if t > 0 else 1.0,
            "gap_to_lower_bound": (t - p.lower_bound_time) / p.lower_bound_time
            if p.lower_bound_time > 0
            else 0.0,
            "valid": report.valid,
            "problems": report.problems,
            "wall_s": self.wall_s,
        }
        if p.objective == "fit-all":
            d["solved"] = bool(self.fast.all() and report.valid)
        d.update(self.extra)
        return d
