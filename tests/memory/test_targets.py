import json

import pytest

from mallocgame.errors import InputError
from mallocgame.memory.targets import list_presets, load_target, parse_capacity


def test_presets_have_sources():
    names = list_presets()
    assert {"tpuv4i", "scratchpad-4mib"} <= set(names)
    for n in names:
        t = load_target(n)
        assert t.fast_bandwidth_bytes_per_s >= t.slow_bandwidth_bytes_per_s
        assert all(t.sources.values()), n
    assert load_target("tpuv4i").fast_capacity_bytes == 128 * 2**20


def test_capacity_parsing():
    assert parse_capacity("25%", 1000) == 250
    assert parse_capacity("4MiB", 0) == 4 * 2**20
    assert parse_capacity("2MB", 0) == 2_000_000
    assert parse_capacity("1048576", 0) == 1048576
    for bad in ("x", "-5", "0", "0%"):
        with pytest.raises(InputError, match="capacity"):
            parse_capacity(bad, 1000)


def test_bad_target(tmp_path):
    with pytest.raises(InputError, match="unknown target 'nope'"):
        load_target("nope")
    p = tmp_path / "t.json"
    d = json.loads((load_target.__globals__["PRESET_DIR"] / "tpuv4i.json").read_text())
    d["peak_flops_per_s"] = {"value": -1}
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match="field 'peak_flops_per_s'"):
        load_target(p)
