"""The zoo: every entry compiles (small form) into a valid workload that round-trips."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("haiku")

from mallocgame.errors import InputError  # noqa: E402
from mallocgame.memory.workload import Workload  # noqa: E402
from workloads.zoo import ZOO, build, extract, list_zoo  # noqa: E402

REQUIRED = {"mlp_train", "resnet_train", "gpt2_forward", "gpt2_train", "attention_long", "rnn_scan"}
# Skips LLVM optimisation only: HLO, schedule and buffer assignment are unchanged (see xla.py).
FAST = {"xla_backend_optimization_level": 0}
ARRAYS = (
    "ids",
    "sizes",
    "starts",
    "ends",
    "instr_flops",
    "access_ptr",
    "access_buffer",
    "access_bytes",
)


def test_list_zoo():
    names = [n for n, _ in list_zoo()]
    assert REQUIRED <= set(names) and names[: len(ZOO)] == list(ZOO)
    assert all(desc for _, desc in list_zoo())


@pytest.mark.parametrize("name", sorted(ZOO))
def test_default_entries_are_abstract(name):
    """The default (full-size) programs are built from shapes only: nothing big is allocated."""
    fn, args = build(name)
    assert hasattr(fn, "lower")
    leaves = jax.tree_util.tree_leaves(args)
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_small_entry_extracts_and_round_trips(name, tmp_path):
    opts = None if name == "mlp_train" else FAST  # one entry through XLA's default options
    wl = extract(name, compile_options=opts, small=True)
    wl.check()
    assert wl.name == name
    assert wl.num_buffers > 10 and wl.num_instructions > 10
    assert wl.instr_flops.sum() > 0 and wl.access_bytes.sum() > 0
    assert wl.peak_live_bytes() > 0
    assert wl.ends.max() <= wl.num_instructions
    assert wl.source["zoo_entry"] == name and wl.source["zoo_overrides"] == {"small": True}
    assert wl.source["compile_seconds"] > 0 and wl.source["backend"] == "cpu"
    assert wl.source["compile_options"] == (opts or {})
    if name == "rnn_scan":  # lax.scan -> while loops with known trip counts (seq_len 5)
        loops = wl.source["while_loops"]
        assert loops and all(lp["known"] and lp["trip_count"] == 5 for lp in loops)
        assert wl.source["alias_edges_confirmed"] > 0
    if name in ("scan_mlp", "scan_glu"):  # lax.scan over the stacked layers (small: 3 and 2)
        loops = wl.source["while_loops"]
        trips = {"scan_mlp": 3, "scan_glu": 2}[name]
        assert loops and all(lp["known"] and lp["trip_count"] == trips for lp in loops)
    path = tmp_path / f"{name}.workload.json.gz"
    wl.save(path)
    back = Workload.load(path)
    for f in ARRAYS:
        assert np.array_equal(getattr(back, f), getattr(wl, f)), f
    assert back.names == wl.names and back.instr_names == wl.instr_names
    assert {k: v for k, v in back.source.items() if k != "path"} == wl.source


def test_size_overrides():
    one = extract("gpt2_forward", compile_options=FAST, small=True, n_layers=1)
    assert one.source["zoo_overrides"] == {"small": True, "n_layers": 1}
    two = extract("gpt2_forward", compile_options=FAST, small=True)
    assert one.num_buffers < two.num_buffers
    assert one.instr_flops.sum() < two.instr_flops.sum()
    with pytest.raises(TypeError, match="unknown GPT-2 size override"):
        build("gpt2_forward", small=True, n_layer=1)


def test_unknown_entry():
    with pytest.raises(InputError, match="unknown zoo entry 'nope'"):
        extract("nope")
