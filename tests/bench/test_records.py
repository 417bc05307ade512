"""The run log and what is read back from it: JSONL lines cut short by a kill, bounds, gaps,
JSON-safe values, the best mapping per task."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mallocgame.bench import records


def test_read_jsonl_skips_a_line_cut_short_and_blank_lines(tmp_path):
    p = tmp_path / "runs.jsonl"
    assert records.read_jsonl(p) == []
    p.write_text('{"a": 1}\n\n[1, 2]\n{"b": 2}\n{"cut sh')
    assert records.read_jsonl(p) == [{"a": 1}, {"b": 2}]


def test_run_log_appends_after_a_cut_line_on_a_line_of_its_own(tmp_path):
    p = tmp_path / "sub" / "runs.jsonl"
    log = records.RunLog(p)
    rec = {"instance": "tiny:0", "solver": "msa", "seed": 0, "capacity": "50%"}
    log.append(rec)
    with open(p, "a") as f:
        f.write('{"instance": "tiny:1", "sol')  # killed mid-line
    again = records.RunLog(p)
    assert again.records == [rec]
    again.append(rec | {"seed": 1})
    assert len(p.read_text().splitlines()) == 3  # the cut line stays apart
    assert records.RunLog(p).keys() == {("tiny:0", "msa", 0, "50%"), ("tiny:0", "msa", 1, "50%")}


def test_best_bound_takes_the_largest_proven_one():
    bounds = [
        {"kind": "unlimited-fast", "value": 1.0},
        {"kind": "knapsack-milp", "value": 3.0, "proven": False},
        {"kind": "knapsack-lp", "value": 2.0, "proven": True},
        {"kind": "cpsat", "value": None},
    ]
    assert records.best_bound(bounds) == (2.0, "knapsack-lp")
    assert records.best_bound([]) == (None, None)


def test_gap():
    assert records.gap(1.5, 1.0) == pytest.approx(0.5)
    assert records.gap(0.9, 1.0) == 0.0  # never negative
    assert records.gap(None, 1.0) is None and records.gap(1.0, None) is None
    assert records.gap(0.0, 0.0) == 0.0 and records.gap(1.0, 0.0) is None


def test_jsonable_values():
    x = {
        1: np.int64(3),
        "f": np.float32(0.5),
        "nan": math.nan,
        "small": np.arange(3),
        "big": np.zeros(100),
        "t": (1, "a", None, True),
        "obj": object,
    }
    out = records.jsonable(x)
    json.dumps(out)
    assert out["1"] == 3 and out["f"] == 0.5 and out["nan"] is None
    assert out["small"] == [0, 1, 2] and out["big"] == "<array (100,)>"
    assert out["t"] == [1, "a", None, True] and out["obj"].startswith("<class")


def test_best_rank_orders_solved_then_peak_then_placed_bytes():
    solved = {"solved": True, "objective": 100.0, "placed_bytes": 10}
    unsolved = {"solved": False, "objective": None, "placed_bytes": 50}
    assert records.best_rank(solved, "pack") < records.best_rank(unsolved, "pack")
    assert records.best_rank({"objective": 1.0}, "malloc") == (1.0,)


def test_best_paths_and_load_best(tmp_path):
    csv, js = records.best_paths(tmp_path, "a/b.csv", "50%")
    assert csv.parent == js.parent == tmp_path / "solutions"
    assert csv.name.endswith(".best.csv") and "/" not in csv.name[:-9]
    js.parent.mkdir()
    js.write_text(json.dumps({"instance": "a/b.csv", "capacity": "50%", "rank": [1.0]}))
    (js.parent / "broken.best.json").write_text("{")
    assert list(records.load_best(tmp_path)) == [("a/b.csv", "50%")]


def test_host_info_names_the_optional_peers():
    info = records.host_info()
    assert "omnimalloc" in info and "ortools" in info and info["cpus"]


def test_bound_check_uses_each_solvers_tolerance():
    milp = {"kind": "knapsack-milp", "value": 1.0, "proven": True}
    # 2e-6 below a HiGHS MILP bound is within HiGHS's tolerances: not a bug (issue 20).
    assert records.bounds_violated(1.0 - 2e-6, [milp]) == []
    assert records.bounds_violated(1.0 - 1e-3, [milp]) == ["knapsack-milp"]
    # The peak-live bound is exact integer arithmetic: one byte below is a bug.
    peak = {"kind": "peak-live", "value": 1000.0, "proven": True}
    assert records.bounds_violated(999.0, [peak]) == ["peak-live"]
    assert records.bounds_violated(1000.0, [peak]) == []
    # Unproven bounds and unknown objectives are never held against a run.
    assert records.bounds_violated(0.5, [dict(milp, proven=False)]) == []
    assert records.bounds_violated(None, [milp]) == []
    odd = {"kind": "something-new", "value": 1.0}
    assert records.bounds_violated(1.0 - 1e-5, [odd]) == ["something-new"]
    assert records.bounds_violated(1.0 - 1e-7, [odd]) == []
