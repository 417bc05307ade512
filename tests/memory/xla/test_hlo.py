"""Scheduled HLO text: the checked-in module and a truncated one."""

from __future__ import annotations

import pytest

from mallocgame.errors import InputError
from mallocgame.memory import xla

from .conftest import DATA, dump_lines


def test_checked_in_hlo():
    hlo = xla.parse_hlo_module(dump_lines(DATA, "")[0])
    assert hlo.name == "jit_f" and hlo.entry in hlo.computations
    entry = hlo.computations[hlo.entry]
    assert entry.is_entry and entry.root is not None and sorted(entry.parameters) == [0, 1]
    assert all(op in hlo.instructions for i in hlo.instructions.values() for op in i.operands)


def test_truncated_hlo(copy):
    p, lines = dump_lines(copy, "")
    n = next(i for i, s in enumerate(lines) if s.startswith("ENTRY"))
    p.write_text("\n".join(lines[: n + 3]) + "\n")
    with pytest.raises(
        InputError, match=rf"after_optimizations\.txt:{n + 4}: file ends inside computation"
    ):
        xla.read_dump_folder(copy)
