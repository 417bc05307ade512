"""HLO shapes as XLA prints them: ``f32[64,64]{1,0}``, ``(s32[], bf16[3,5])``, shape indices."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

# A shape index: the path to a subshape of a tuple shape, ``()`` for the whole shape.
Index = tuple[int, ...]

_DTYPE_BITS = {
    "pred": 8, "s1": 1, "u1": 1, "s2": 2, "u2": 2, "s4": 4, "u4": 4, "s8": 8, "u8": 8,
    "s16": 16, "u16": 16, "f16": 16, "bf16": 16, "s32": 32, "u32": 32, "f32": 32,
    "s64": 64, "u64": 64, "f64": 64, "c64": 64, "c128": 128, "token": 0, "opaque": 0,
}  # fmt: skip
_ARRAY_RE = re.compile(r"([a-z][a-z0-9]*)\[([^\]]*)\]")


def _dtype_bits(dtype: str) -> int | None:
    if dtype in _DTYPE_BITS:
        return _DTYPE_BITS[dtype]
    m = re.fullmatch(r"f(\d+)e\d+m\d+\w*", dtype)  # f8e4m3fn, f8e5m2, f4e2m1fn, f6e3m2fn, ...
    if m:
        return int(m.group(1))
    return None


@dataclass(frozen=True)
class Shape:
    """An HLO shape: an array (``dtype``, ``dims``) or a tuple (``elements``)."""

    dtype: str | None = None
    dims: tuple[int, ...] = ()
    elements: tuple[Shape, ...] | None = None

    @property
    def is_tuple(self) -> bool:
        return self.elements is not None

    @property
    def elements_count(self) -> int:
        return math.prod(self.dims) if not self.is_tuple else 0

    @property
    def nbytes(self) -> int:
        """Bytes of the array data (arrays) or of all leaf arrays (tuples)."""
        if self.elements is not None:
            return sum(e.nbytes for e in self.elements)
        bits = _dtype_bits(self.dtype or "") or 0
        return (math.prod(self.dims) * bits + 7) // 8

    def subshape(self, index: Index) -> Shape | None:
        s: Shape = self
        for i in index:
            if s.elements is None or not 0 <= i < len(s.elements):
                return None
            s = s.elements[i]
        return s

    def indices(self, prefix: Index = ()) -> Iterator[tuple[Index, Shape]]:
        """Every (index, subshape), tuple nodes included, root first."""
        yield prefix, self
        if self.elements is not None:
            for i, e in enumerate(self.elements):
                yield from e.indices(prefix + (i,))

    def leaves(self) -> Iterator[tuple[Index, Shape]]:
        return ((i, s) for i, s in self.indices() if not s.is_tuple)


class ShapeSyntaxError(ValueError):
    """Malformed HLO text (a shape or an instruction); the caller adds file and line."""


class HloError(ValueError):
    """HLO that parses but does not hang together (an operand or tuple element that is not
    there, a dimension out of range, ...), at ``line`` of the HLO text; the reader adds the
    file."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


#: The most elements an array shape may have (keeps FLOP and byte counts finite floats).
MAX_ELEMENTS = 2**62
#: The largest shape-index entry (tuple element number) read from a dump.
MAX_TUPLE_INDEX = 10**9


def parse_shape_at(text: str, pos: int) -> tuple[Shape, int]:
    """The shape that starts at ``text[pos]`` (after spaces), and the index just past it."""
    n = len(text)
    while pos < n and text[pos] == " ":
        pos += 1
    if pos < n and text[pos] == "(":
        pos += 1
        elems: list[Shape] = []
        while True:
            while pos < n and text[pos] in " ,":
                pos += 1
            if pos < n and text[pos] == ")":
                return Shape(elements=tuple(elems)), pos + 1
            if pos >= n:
                raise ShapeSyntaxError("unterminated tuple shape")
            e, pos = parse_shape_at(text, pos)
            elems.append(e)
    m = _ARRAY_RE.match(text, pos)
    if not m:
        raise ShapeSyntaxError(f"expected a shape like f32[2,3]{{1,0}} at {text[pos : pos + 30]!r}")
    dtype = m.group(1)
    if _dtype_bits(dtype) is None:
        raise ShapeSyntaxError(f"unknown element type {dtype!r}")
    dims: list[int] = []
    for d in m.group(2).split(","):
        d = d.strip().lstrip("<=")
        if not d:
            continue
        if not (d.isascii() and d.isdigit()):
            raise ShapeSyntaxError(f"bad dimension {d[:20]!r}")
        if len(d) > 18:
            raise ShapeSyntaxError(f"dimension {d[:20]}... is too large")
        dims.append(int(d))
    if math.prod(dims) > MAX_ELEMENTS:
        raise ShapeSyntaxError(f"shape {dtype}{list(dims)} has more than 2^62 elements")
    pos = m.end()
    if pos < n and text[pos] == "{":  # layout, may nest braces: {1,0:T(8,128)S(1)}
        depth = 0
        while pos < n:
            c = text[pos]
            depth += c == "{"
            depth -= c == "}"
            pos += 1
            if depth == 0:
                break
    return Shape(dtype=dtype, dims=tuple(dims)), pos


def parse_shape(text: str) -> Shape:
    """Parse an HLO shape string such as ``(s32[], f32[64,64]{1,0})``."""
    shape, pos = parse_shape_at(strip_comments(text), 0)
    return shape


def strip_comments(text: str) -> str:
    """``text`` without its ``/* ... */`` comments (XLA prints ``/*index=5*/`` in tuples)."""
    return re.sub(r"/\*.*?\*/", "", text) if "/*" in text else text


def parse_index(text: str | None) -> Index:
    """A shape index as the dump files print it: ``{}``, ``{1}``, ``{2,0}``; ``None`` is ``()``."""
    if not text:
        return ()
    inner = text.strip("{}").strip()
    out = []
    for x in inner.split(",") if inner else ():
        x = x.strip()
        if not x:
            continue
        if not (x.isascii() and x.isdigit()) or len(x) > 9:
            raise ShapeSyntaxError(f"bad shape index entry {x[:20]!r} in {text[:40]!r}")
        out.append(int(x))
    return tuple(out)
