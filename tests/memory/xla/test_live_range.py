"""HloLiveRange files: the checked-in one, truncated and malformed ones."""

from __future__ import annotations

import pytest

from mallocgame.errors import InputError
from mallocgame.memory import xla

from .conftest import DATA, dump_lines


def test_checked_in_live_range():
    lr = xla.parse_live_range(dump_lines(DATA, "-live-range")[0])
    assert len(lr.sequence) == 4 and lr.peak_bytes == 65536
    assert lr.ranges[("ynn_fusion", ())] == (2, 3)  # inclusive: the workload's [2, 4)


def test_truncated_live_range(copy):
    p, lines = dump_lines(copy, "-live-range")
    p.write_text("\n".join(lines[:9]) + "\n")  # stops inside BufferLiveRange
    with pytest.raises(InputError) as e:
        xla.read_dump_folder(copy)
    assert e.value.where == str(p) and e.value.line == 10
    assert "truncated" in str(e.value) and "Live ranges at N (peak)" in str(e.value)
    assert str(e.value).startswith(f"{p}:10: field 'BufferLiveRange': ")


def test_truncated_instruction_sequence(copy):
    p, lines = dump_lines(copy, "-live-range")
    p.write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(InputError, match=r"-live-range\.txt:5: .*truncated"):
        xla.read_dump_folder(copy)


def test_malformed_live_range_line(copy):
    p, lines = dump_lines(copy, "-live-range")
    n = next(i for i, s in enumerate(lines) if s.strip().startswith("ynn_fusion{}:"))
    lines[n] = "    ynn_fusion{}:2-"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        xla.read_dump_folder(copy)
    assert str(e.value).startswith(
        f"{p}:{n + 1}: field 'BufferLiveRange': "
        "expected NAME{INDEX}:START-END, got 'ynn_fusion{}:2-'"
    )
