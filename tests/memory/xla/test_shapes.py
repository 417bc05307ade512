"""HLO shape strings and shape indices."""

from __future__ import annotations

import pytest

from mallocgame.memory import xla
from mallocgame.memory.xla.shapes import ShapeSyntaxError, parse_index


def test_shape_parser():
    s = xla.parse_shape("(s32[], f32[64,64]{1,0}, /*index=2*/bf16[3,5]{1,0:T(8,128)}, (pred[2]))")
    assert s.is_tuple and len(s.elements) == 4
    assert s.nbytes == 4 + 64 * 64 * 4 + 3 * 5 * 2 + 2
    assert [i for i, _ in s.leaves()] == [(0,), (1,), (2,), (3, 0)]
    assert xla.parse_shape("f32[<=10,3]{1,0}").dims == (10, 3)


def test_sub_byte_and_fp8_types_and_bad_shapes():
    assert xla.parse_shape("s4[3]").nbytes == 2 and xla.parse_shape("f8e4m3fn[5]").nbytes == 5
    with pytest.raises(ShapeSyntaxError, match="unknown element type"):
        xla.parse_shape("f33[2]")
    with pytest.raises(ShapeSyntaxError, match="unterminated tuple"):
        xla.parse_shape("(f32[2], s32[]")


def test_parse_index():
    assert parse_index("{2,0}") == (2, 0)
    assert parse_index("{}") == () and parse_index(None) == ()
