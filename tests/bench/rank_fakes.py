"""A stand-in for :class:`mallocgame.bench.rank.Judge` (the real one loads a model and measures
its rank tables: minutes), for the tests of the rank bench's dispatch: records of the real
shape, a loss that depends on the run only, and a run that kills its process."""

from __future__ import annotations

import os
from typing import Any

from tests.bench.test_rank import _rec


class FakeJudge:
    def __init__(self, model: str, budget_kind: str, eval_windows: int) -> None:
        self.model, self.budget_kind = model, budget_kind
        self.setup_s = 0.0

    def run(self, budget, solver, seed, time_limit, max_evals, top_k) -> dict[str, Any]:
        if solver == "agent" and seed == 1:
            os._exit(3)  # the process dies mid-run
        loss = {"uniform": 0.2, "greedy": 0.05, "agent": 0.1}[solver] * budget + 0.001 * seed
        return _rec(self.model, budget, solver, seed, loss) | {
            "budget_kind": self.budget_kind,
            "time_limit_s": time_limit,
            "kv_cache_fraction": budget - 0.02,
            "wall_s": 0.01,
        }
