"""Heat maps of rank configs (mallocgame.rank.plots)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.rank


def test_heatmap_formats(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from mallocgame.errors import InputError
    from mallocgame.rank.config import RankConfig
    from mallocgame.rank.plots import write_heatmap

    cfg = RankConfig("minilm", "ab", (8, 16, 32, 4, 4, 32), tuple(np.full(6, 16)), 256)
    assert write_heatmap(cfg, tmp_path / "h.svg", "t").read_text().lstrip().startswith("<?xml")
    with pytest.raises(InputError, match="heatmap"):
        write_heatmap(cfg, tmp_path / "h.gif", "t")
    grouped = RankConfig(
        "smollm2", "ab", (8,) * 30, (16,) * 30, 512, qk_groups=((16, 4, 4),) + ((8,) * 3,) * 29
    )
    svg = write_heatmap(grouped, tmp_path / "g.svg", "t").read_text()
    assert "q-k g0" in svg and "v g2" in svg  # one row per part and group
