"""The memory game's solvers behind ``solve`` and ``list_solvers``: names from the registry,
bad names, solvers whose module does not import."""

import sys

import numpy as np
import pytest

from mallocgame import api, registry
from mallocgame.errors import InputError
from mallocgame.memory.problem import Problem
from mallocgame.memory.solvers import list_solvers, solve
from mallocgame.memory.targets import Target
from tests.conftest import random_workload

T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=1,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)
ALL = [
    "agent",
    "all-slow",
    "cpsat",
    "greedy-size",
    "local-search",
    "msa",
    "msa-skip",
    "pack",
    "pack-peak",
    "random",
    "restarts",
]


def test_unknown_solver_and_impossible_fit_all(tiny):
    with pytest.raises(InputError, match="unknown solver 'nope'"):
        solve(Problem(tiny, T), "nope")
    with pytest.raises(InputError, match="no buffer fits"):
        api.make_problem(tiny, 10, T, objective="fit-all")
    with pytest.warns(UserWarning, match="no buffer fits"):
        api.make_problem(tiny, 10, T, objective="time")


def test_the_solvers_are_the_registry_s(tiny):
    assert list_solvers() == registry.names("memory") == ALL
    for name in ALL:  # every target names a function that exists
        assert callable(registry.spec("memory", name).load()), name


def test_an_unknown_name_lists_the_known_ones(tiny):
    with pytest.raises(InputError) as e:
        solve(Problem(tiny, T), "nope")
    assert e.value.field == "solver"
    assert str(e.value).endswith("choose one of " + ", ".join(ALL))


def test_all_slow_cannot_play_fit_all():
    w = random_workload(np.random.default_rng(0), n=8)
    p = api.make_problem(w, w.peak_live_bytes() * 2, T, objective="fit-all")
    with pytest.raises(InputError, match="all-slow solver places nothing"):
        solve(p, "all-slow")


def test_a_solver_whose_module_does_not_import_names_the_module(tiny, monkeypatch):
    # the module is found but its import fails
    monkeypatch.setitem(sys.modules, "mallocgame.memory.solvers.cpsat", None)
    with pytest.raises(ImportError, match=r"'cpsat'.*mallocgame\.memory\.solvers\.cpsat") as e:
        solve(Problem(tiny, T), "cpsat")
    assert "unknown solver" not in str(e.value)


def test_a_broken_solver_module_raises_its_own_import_error(tiny, tmp_path, monkeypatch):
    # a module whose own import of a missing dependency fails: that error, with the module's
    # name in front; and a module without the function named
    (tmp_path / "broken_solver_mod.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "empty_solver_mod.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = (
        registry.SolverSpec("broken", "memory", "broken_solver_mod:solve", "a broken module"),
        registry.SolverSpec("empty", "memory", "empty_solver_mod:solve", "no solve in it"),
    )
    monkeypatch.setattr(registry, "SPECS", registry.SPECS + extra)
    for s in extra:
        monkeypatch.setitem(registry._BY_KEY, ("memory", s.name), s)
    assert {"broken", "empty"} <= set(list_solvers())
    with pytest.raises(ImportError, match="cannot import broken_solver_mod") as e:
        solve(Problem(tiny, T), "broken")
    assert "no_such_dependency_xyz" in str(e.value)
    assert isinstance(e.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ImportError, match="empty_solver_mod has no solve"):
        solve(Problem(tiny, T), "empty")
