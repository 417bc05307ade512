from __future__ import annotations

import pytest

from mallocgame import registry
from tests.bench import fakes


@pytest.fixture()
def fake_solvers(monkeypatch) -> list[str]:
    """The memory solvers of :mod:`tests.bench.fakes` added to the registry for one test, as
    ``fake-NAME`` (forked runs inherit them; a Ray task gets its solver's entry from the bench)."""
    specs = tuple(
        registry.SolverSpec(f"fake-{n}", "memory", f"{fakes.__name__}:{n}", "a test's fake solver")
        for n in fakes.NAMES
    )
    monkeypatch.setattr(registry, "SPECS", registry.SPECS + specs)
    monkeypatch.setattr(
        registry, "_BY_KEY", {**registry._BY_KEY, **{(s.game, s.name): s for s in specs}}
    )
    return [s.name for s in specs]
