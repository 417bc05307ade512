"""The calibration evaluator (mallocgame.rank.evaluator) apart from a model; its losses on a real
model are tested with the CLI's tables in test_rank_cli.py and with per-group ranks in
test_search.py."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.rank


def test_evaluator_trims_the_heap_at_most_every_so_often(monkeypatch) -> None:
    """Freed heap pages go back to the OS (glibc's malloc_trim) at most once per interval, so
    a long search's resident memory stays near what its caches hold."""
    from mallocgame.rank import evaluator as ev

    calls = []
    monkeypatch.setattr(ev, "_MALLOC_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(ev, "_TRIMMED", [float("-inf")])
    ev._release_free_heap(every=3600.0)  # never trimmed: trims
    ev._release_free_heap(every=3600.0)  # within the hour: does not
    assert calls == [0]
    ev._release_free_heap(every=0.0)
    assert calls == [0, 0]
    monkeypatch.setattr(ev, "_MALLOC_TRIM", None)  # not glibc: nothing to call
    ev._release_free_heap(every=0.0)
