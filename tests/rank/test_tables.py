"""The rank tables (mallocgame.rank.tables): costs computed from the sequence length, the cache
file round trip, and cache files of the older format (which held the costs) still read."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mallocgame.rank.tables import DEFAULT_CHOICES, RankTables, cost_table

pytestmark = pytest.mark.rank


def _tables(seq_len: int = 256) -> RankTables:
    choices = DEFAULT_CHOICES["minilm"]
    P, C = 12, len(choices)
    rng = np.random.default_rng(0)
    energy, sens, fisher = rng.random((P, C)), rng.random((P, C)), rng.random(P)
    return RankTables("minilm", "ab" * 8, seq_len, "whitened", choices, energy, sens, fisher)


def test_costs_follow_the_sequence_length_and_choices() -> None:
    t = _tables(128)
    cost, full = cost_table("minilm", t.choices, 128)
    np.testing.assert_array_equal(t.cost, cost)
    assert t.full_cost == full
    assert t.fraction(np.full(12, len(t.choices) - 1)) == pytest.approx(1.0)
    t.seq_len = 64
    np.testing.assert_array_equal(t.cost, cost_table("minilm", t.choices, 64)[0])
    with pytest.raises(ValueError, match="head dimension"):
        RankTables("minilm", "ab", 128, "whitened", (4, 8), t.energy, t.sens, t.fisher)
    only = RankTables.cost_only("smollm2", "0", DEFAULT_CHOICES["smollm2"], 512, "whitened")
    assert np.all(np.isnan(only.sens)) and only.fisher.shape == (60,)
    assert only.cost.shape == (60, 7) and only.full_cost > 0


def test_save_load_round_trip_without_costs(tmp_path) -> None:
    t = _tables()
    path = tmp_path / "t.npz"
    t.save(str(path))
    with np.load(path) as z:
        assert "cost" not in z.files and "full_cost" not in z.files
    back = RankTables.load(str(path), 512)
    assert (back.model, back.model_hash, back.method, back.choices, back.seq_len) == (
        t.model,
        t.model_hash,
        t.method,
        t.choices,
        512,
    )
    for k in ("energy", "sens", "fisher"):
        np.testing.assert_array_equal(getattr(back, k), getattr(t, k))
    np.testing.assert_array_equal(back.cost, cost_table("minilm", t.choices, 512)[0])


def test_older_cache_files_with_costs_still_load(tmp_path) -> None:
    t = _tables()
    buf = io.BytesIO()
    np.savez(  # the format before the costs were computed: costs and seq_len stored
        buf,
        cost=t.cost,
        energy=t.energy,
        sens=t.sens,
        fisher=t.fisher,
        choices=np.asarray(t.choices),
        full_cost=t.full_cost,
        header=np.asarray([t.model, t.model_hash, "256", t.method]),
    )
    path = tmp_path / "old.npz"
    path.write_bytes(buf.getvalue())
    back = RankTables.load(str(path), 128)
    assert back.seq_len == 128 and back.method == "whitened" and back.model_hash == t.model_hash
    np.testing.assert_array_equal(back.sens, t.sens)
    np.testing.assert_array_equal(back.cost, cost_table("minilm", t.choices, 128)[0])
