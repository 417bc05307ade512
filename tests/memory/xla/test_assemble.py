"""The workload of one module: fresh and checked-in matmul-tanh dumps, the source record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.memory import xla
from mallocgame.memory.workload import Workload

from .conftest import DATA, check_matmul_tanh, dump_lines

jax = pytest.importorskip("jax")


def test_fresh_matmul_tanh(dumps):
    wl = xla.read_dump_folder(dumps["matmul"])
    check_matmul_tanh(wl)
    src = wl.source
    assert src["reader"] == "mallocgame.memory.xla.read_dump_folder"
    assert src["jax"] == jax.__version__ and src["jaxlib"]
    assert src["xla_module"] == "jit__matmul_tanh" == wl.name
    for kind in ("hlo", "buffer_assignment", "values", "live_range"):
        assert Path(src["files"][kind]).is_file()


def test_checked_in_dump(tmp_path):
    wl = xla.read_dump_folder(DATA)
    check_matmul_tanh(wl)
    assert wl.source["xla_module"] == "jit_f"
    assert wl.source["xla_peak_live_bytes"] == 65536
    # Live ranges: XLA's inclusive [start, end] become [start, end + 1).
    by_name = dict(
        zip(wl.names, zip(wl.starts.tolist(), wl.ends.tolist(), strict=True), strict=True)
    )
    # Live-out values end at XLA's 'max' (after the last instruction): clamped to I.
    assert by_name == {"x.1": (0, 4), "w.1": (0, 4), "ynn_fusion": (2, 4), "wrapped_tanh": (3, 4)}
    wl.save(tmp_path / "w.workload.json.gz")
    back = Workload.load(tmp_path / "w.workload.json.gz")
    assert np.array_equal(back.access_bytes, wl.access_bytes) and back.names == wl.names


def test_live_range_naming_unknown_instruction(copy):
    p, lines = dump_lines(copy, "-live-range")
    lines[4] = "    2:no_such_instruction"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=r"-live-range\.txt:5: field 'InstructionSequence': scheduled instruction"
    ):
        xla.read_dump_folder(copy)
