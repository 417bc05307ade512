"""Which runs a bench makes: the solvers that can run, the unavailable ones, the seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from mallocgame import registry
from mallocgame.bench import plan
from mallocgame.errors import InputError


def test_unavailable_solvers_are_reported_not_fatal():
    runnable, unavailable = plan.plan_solvers(["msa", "omnimalloc:supermalloc"], "malloc")
    assert runnable == ["msa"] and "pack only" in unavailable["omnimalloc:supermalloc"]
    runnable, unavailable = plan.plan_solvers(["msa", "all-slow"], "pack")
    assert runnable == ["msa"] and "all-slow" in unavailable
    # the agent is a registered solver: it runs (or turns unavailable when it refuses)
    assert plan.plan_solvers(["msa", "agent"], "malloc") == (["msa", "agent"], {})
    # cpsat runs first, so that its bound is known to the runs after it
    assert plan.plan_solvers(["msa", "cpsat"], "malloc")[0] == ["cpsat", "msa"]


def test_default_solvers_are_the_modes_plus_every_registered_non_baseline():
    runnable, _ = plan.plan_solvers(None, "malloc")
    extras = ["agent", "local-search", "pack", "pack-peak"]
    others = [s for s in plan.DEFAULT_SOLVERS["malloc"] if s != "cpsat"]
    assert runnable == ["cpsat", *others, *extras]
    # the one-pass heuristics outside the defaults stay out
    assert "msa-skip" not in runnable
    runnable, _ = plan.plan_solvers(None, "pack")
    assert "all-slow" not in runnable and "msa-skip" not in runnable
    assert set(extras) <= set(runnable)


def test_baselines_are_the_defaults_and_the_deterministic_solvers():
    # a baseline's refusal is a failed run; any other registered solver's makes it unavailable
    builtin = {"msa", "greedy-size", "random", "all-slow", "restarts", "cpsat", "msa-skip"}
    for mode in plan.MODES:
        baselines = {s for s in registry.names("memory") if plan.is_baseline(s, mode)}
        assert baselines == builtin
    assert plan.is_baseline("omnimalloc:supermalloc", "pack")
    assert not plan.is_baseline("omnimalloc:supermalloc", "malloc")


@pytest.mark.parametrize(
    "names,needle",
    [(["msa", "nope"], "unknown solver 'nope'"), ([], "empty"), (["msa", "msa"], "repeated")],
)
def test_bad_solver_lists_name_the_field(names, needle):
    with pytest.raises(InputError, match=needle) as e:
        plan.plan_solvers(names, "malloc")
    assert e.value.field == "solvers"


def test_unknown_solver_lists_the_registry_and_the_peers():
    with pytest.raises(InputError) as e:
        plan.plan_solvers(["nope"], "malloc")
    for name in registry.names("memory"):
        assert name in str(e.value)
    assert "omnimalloc:NAME" in str(e.value)


def test_seeds_and_jobs():
    cfg = plan.BenchConfig(mode="malloc", out=Path("x"), seeds=3, cpsat_seeds=1)
    assert plan.seeds_for("msa", cfg) == [0, 1, 2] and plan.seeds_for("cpsat", cfg) == [0]
    assert plan.runs_per_capacity(["cpsat", "msa"], cfg) == 4
    assert plan.BenchConfig(mode="pack", out=Path("x")).effective_alignment() == 1
    assert cfg.effective_alignment() is None


@pytest.mark.parametrize(
    "change,field",
    [
        ({"mode": "rank"}, "mode"),
        ({"seeds": 0}, "seeds"),
        ({"cpsat_seeds": 0}, "cpsat-seeds"),
        ({"time_limit": 0.0}, "time-limit"),
        ({"threads": 0}, "threads"),
        ({"alignment": 0}, "alignment"),
        ({"suite": "nosuch"}, "suite"),
    ],
)
def test_check_config_names_the_field(change, field):
    cfg = plan.BenchConfig(mode="malloc", out=Path("x"))
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(InputError) as e:
        plan.check_config(cfg)
    assert e.value.field == field
