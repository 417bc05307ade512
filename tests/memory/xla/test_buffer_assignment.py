"""Buffer-assignment and values files: the checked-in ones, a malformed and a missing one."""

from __future__ import annotations

import pytest

from mallocgame.errors import InputError
from mallocgame.memory import xla

from .conftest import DATA, K, M, N, dump_lines


def test_checked_in_buffer_assignment_and_positions():
    ba = xla.parse_buffer_assignment(dump_lines(DATA, "-buffer-assignment")[0])
    by_label = {v.label: v for v in ba.values()}
    assert by_label["x.1"].size == M * K * 4 and by_label["w.1"].size == K * N * 4
    assert "parameter" in by_label["x.1"].allocation_kind
    positions = xla.parse_values(dump_lines(DATA, "-buffer-assignment-values")[0])
    assert set(positions) == set(ba)
    assert ("x.1", ()) in positions[by_label["x.1"].id]


def test_malformed_buffer_assignment_line(copy):
    p, lines = dump_lines(copy, "-buffer-assignment")
    n = next(i for i, s in enumerate(lines) if "w.1" in s and "value:" in s)
    lines[n] = lines[n].replace("size=16384,", "size=,")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=rf"-buffer-assignment\.txt:{n + 1}: field 'value': expected"
    ):
        xla.read_dump_folder(copy)


def test_missing_buffer_assignment_file(copy):
    p, _ = dump_lines(copy, "-buffer-assignment")
    p.unlink()
    with pytest.raises(
        InputError, match=r"-buffer-assignment\.txt: field 'buffer_assignment': missing"
    ):
        xla.read_dump_folder(copy)
