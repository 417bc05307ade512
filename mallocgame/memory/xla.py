"""Read an XLA dump folder into a :class:`~mallocgame.memory.workload.Workload`.

XLA writes, per compiled module (``--xla_dump_to=DIR --xla_dump_hlo_as_text``, or
``compile(compiler_options={"xla_dump_to": DIR, "xla_dump_hlo_as_text": True})`` in JAX)::

    module_NNNN.NAME.cpu_after_optimizations.txt                       scheduled HLO text
    module_NNNN.NAME.cpu_after_optimizations-buffer-assignment.txt     allocations, values, offsets
    module_NNNN.NAME.cpu_after_optimizations-buffer-assignment-values.txt   each value's positions
    module_NNNN.NAME.cpu_after_optimizations-live-range.txt            HloLiveRange

What is read from which file, the aliasing (merge) rule, and the FLOP and byte rules are
documented in ``docs/xla-extraction.md``. In short:

- A *value* (XLA's HloValue) has a size and an allocation/offset (buffer-assignment file), a
  live range ``start-end`` in positions of the flattened schedule, both ends inclusive
  (live-range file), and the positions where it appears (values file).
- Values that XLA must keep at one address form one buffer: the aliasing rules of XLA's
  HloAliasAnalysis (while-loop init/parameter/root/result, conditional branch roots, in-place
  operations such as dynamic-update-slice and scatter, also inside fusions, custom-call
  ``output_to_operand_aliasing``), each edge confirmed by the buffer assignment (same allocation
  and offset). Tuple elements, get-tuple-element and bitcast are positions of one value already.
  Entry parameter/output donation (``input_output_alias``) and plain reuse of an allocation by
  values with disjoint live ranges are *not* merged.
- A buffer's interval is ``[min start, max end + 1)`` over its values.
- One workload instruction per entry of HloLiveRange's InstructionSequence (which flattens while
  bodies/conditions and conditional branches into the entry schedule); instructions inside a
  while body are weighted by the loop's known trip count.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.memory.workload import Workload

__all__ = [
    "read_dump_folder",
    "find_modules",
    "compile_to_dump",
    "workload_from_jax",
    "DumpModule",
    "Shape",
    "parse_shape",
    "parse_hlo_module",
]

READER = "mallocgame.memory.xla.read_dump_folder"
READER_VERSION = 1

# ---------------------------------------------------------------------------------- shapes
_DTYPE_BITS = {
    "pred": 8, "s1": 1, "u1": 1, "s2": 2, "u2": 2, "s4": 4, "u4": 4, "s8": 8, "u8": 8,
    "s16": 16, "u16": 16, "f16": 16, "bf16": 16, "s32": 32, "u32": 32, "f32": 32,
    "s64": 64, "u64": 64, "f64": 64, "c64": 64, "c128": 128, "token": 0, "opaque": 0,
}  # fmt: skip


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

    def subshape(self, index: tuple[int, ...]) -> Shape | None:
        s: Shape = self
        for i in index:
            if s.elements is None or not 0 <= i < len(s.elements):
                return None
            s = s.elements[i]
        return s

    def indices(self, prefix: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Shape]]:
        """Every (index, subshape), tuple nodes included, root first."""
        yield prefix, self
        if self.elements is not None:
            for i, e in enumerate(self.elements):
                yield from e.indices(prefix + (i,))

    def leaves(self) -> Iterator[tuple[tuple[int, ...], Shape]]:
        return ((i, s) for i, s in self.indices() if not s.is_tuple)


class _ShapeSyntaxError(ValueError):
    pass


def _parse_shape_at(text: str, pos: int) -> tuple[Shape, int]:
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
                raise _ShapeSyntaxError("unterminated tuple shape")
            e, pos = _parse_shape_at(text, pos)
            elems.append(e)
    m = re.compile(r"([a-z][a-z0-9]*)\[([^\]]*)\]").match(text, pos)
    if not m:
        raise _ShapeSyntaxError(
            f"expected a shape like f32[2,3]{{1,0}} at {text[pos : pos + 30]!r}"
        )
    dtype = m.group(1)
    if _dtype_bits(dtype) is None:
        raise _ShapeSyntaxError(f"unknown element type {dtype!r}")
    dims: list[int] = []
    for d in m.group(2).split(","):
        d = d.strip().lstrip("<=")
        if not d:
            continue
        if not d.isdigit():
            raise _ShapeSyntaxError(f"bad dimension {d!r}")
        dims.append(int(d))
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
    shape, pos = _parse_shape_at(_strip_comments(text), 0)
    return shape


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text) if "/*" in text else text


# ------------------------------------------------------------------------------- HLO text
@dataclass
class HloInstruction:
    name: str
    shape: Shape
    opcode: str
    operands: list[str]
    attrs: dict[str, str]
    computation: str
    is_root: bool
    line: int
    parameter_number: int = -1


@dataclass
class HloComputation:
    name: str
    is_entry: bool
    instructions: list[HloInstruction] = field(default_factory=list)
    root: HloInstruction | None = None
    parameters: dict[int, HloInstruction] = field(default_factory=dict)


@dataclass
class HloModule:
    name: str
    header: str
    computations: dict[str, HloComputation]
    instructions: dict[str, HloInstruction]
    entry: str


def _scan_balanced(text: str, pos: int, open_c: str, close_c: str) -> int:
    """Index just past the bracket that closes ``text[pos]`` (== open_c); quotes respected."""
    depth = 0
    n = len(text)
    quote = ""
    while pos < n:
        c = text[pos]
        if quote:
            if c == "\\":
                pos += 2
                continue
            if c == quote:
                quote = ""
        elif c == '"':
            quote = c
        elif c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise _ShapeSyntaxError(f"unbalanced {open_c}{close_c}")


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets and quotes."""
    out: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c == '"':
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return [s.strip() for s in out if s.strip()]


_INSTR_RE = re.compile(r"\s*(ROOT\s+)?%?([^\s=%]+)\s*=\s*")
_COMP_RE = re.compile(r"\s*(ENTRY\s+)?%?([^\s(=]+)\s*\(")
_OPCODE_RE = re.compile(r"\s*([a-z][a-z0-9\-_]*)\(")


def _parse_instruction(line: str, computation: str, lineno: int) -> HloInstruction:
    text = _strip_comments(line)
    m = _INSTR_RE.match(text)
    if not m:
        raise _ShapeSyntaxError("expected '%NAME = SHAPE OPCODE(OPERANDS), ATTRIBUTES'")
    shape, pos = _parse_shape_at(text, m.end())
    om = _OPCODE_RE.match(text, pos)
    if not om:
        raise _ShapeSyntaxError(f"expected OPCODE( after the shape at {text[pos : pos + 30]!r}")
    opcode = om.group(1)
    open_pos = om.end() - 1
    close = _scan_balanced(text, open_pos, "(", ")")
    inner = text[open_pos + 1 : close - 1]
    operands: list[str] = []
    param_no = -1
    if opcode == "parameter":
        param_no = int(inner.strip()) if inner.strip().isdigit() else -1
    elif opcode not in ("constant", "iota", "rng-get-and-update-state"):
        for item in _split_top(inner):
            tok = item.split()[-1]
            operands.append(tok.lstrip("%"))
    attrs: dict[str, str] = {}
    for item in _split_top(text[close:]):
        k, eq, v = item.partition("=")
        if eq:
            attrs[k.strip()] = v.strip()
    return HloInstruction(
        name=m.group(2),
        shape=shape,
        opcode=opcode,
        operands=operands,
        attrs=attrs,
        computation=computation,
        is_root=bool(m.group(1)),
        line=lineno,
        parameter_number=param_no,
    )


def parse_hlo_module(path: Path) -> HloModule:
    """Parse scheduled HLO text (``*_after_optimizations.txt``)."""
    where = str(path)
    lines = _read_lines(path)
    if not lines or not lines[0].startswith("HloModule "):
        raise InputError(
            "expected 'HloModule NAME, ...' on the first line", where, line=1, field="HloModule"
        )
    header = lines[0]
    name = header[len("HloModule ") :].split(",")[0].strip()
    computations: dict[str, HloComputation] = {}
    instructions: dict[str, HloInstruction] = {}
    entry = ""
    current: HloComputation | None = None
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip()
        if not line.strip():
            continue
        if current is None:
            if line.endswith("{") and "->" in line:
                m = _COMP_RE.match(line)
                if m:
                    current = HloComputation(name=m.group(2), is_entry=bool(m.group(1)))
                    if current.is_entry:
                        entry = current.name
                    if current.name in computations:
                        raise InputError(
                            f"computation {current.name!r} defined twice", where, line=lineno
                        )
                    computations[current.name] = current
            continue
        if line.lstrip().startswith("}"):
            if current.root is None and current.instructions:
                current.root = current.instructions[-1]
            current = None
            continue
        try:
            ins = _parse_instruction(line, current.name, lineno)
        except (_ShapeSyntaxError, ValueError, IndexError) as e:
            raise InputError(
                f"malformed HLO instruction: {e}", where, line=lineno, field="instruction"
            ) from None
        if ins.name in instructions:
            raise InputError(
                f"instruction name {ins.name!r} used twice", where, line=lineno, field="instruction"
            )
        instructions[ins.name] = ins
        current.instructions.append(ins)
        if ins.is_root:
            current.root = ins
        if ins.opcode == "parameter":
            current.parameters[ins.parameter_number] = ins
    if current is not None:
        raise InputError(
            f"file ends inside computation {current.name!r} (truncated?): expected '}}'",
            where,
            line=len(lines) + 1,
        )
    if not entry:
        raise InputError(
            "no ENTRY computation found (truncated?)", where, line=len(lines) + 1, field="ENTRY"
        )
    for ins in instructions.values():
        for op in ins.operands:
            if op not in instructions:
                raise InputError(
                    f"instruction {ins.name!r} uses undefined operand {op!r}",
                    where,
                    line=ins.line,
                    field="operands",
                )
    return HloModule(
        name=name, header=header, computations=computations, instructions=instructions, entry=entry
    )


# ------------------------------------------------------------------- buffer assignment
@dataclass
class HloValueRecord:
    id: int
    instr: str
    index: tuple[int, ...]
    label: str  # as the buffer-assignment file prints it, e.g. "copy.4", "tuple.15{}", "while.1{2}"
    is_phi: bool
    allocation: int
    allocation_kind: str
    offset: int
    size: int
    shape_text: str
    line: int

    @property
    def is_array(self) -> bool:
        return not self.shape_text.startswith("(")


_ALLOC_RE = re.compile(r"allocation (\d+): size (\d+)(.*):$")
_VALUE_RE = re.compile(
    r"\s+value: <(\d+) ([^\s{}<>]+)(\{[\d,]*\})?( \(phi\))? @\d+> \(size=(\d+),offset=(\d+)\): (.*)$"
)


def _index(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    inner = text.strip("{}").strip()
    return tuple(int(x) for x in inner.split(",") if x.strip()) if inner else ()


def _alloc_kind(attrs: str) -> str:
    kinds = []
    for k in (
        "thread-local",
        "constant",
        "parameter",
        "maybe-live-out",
        "preallocated-temp",
        "output",
    ):
        if k in attrs:
            kinds.append(k)
    return ",".join(kinds) or "temp"


def parse_buffer_assignment(path: Path) -> dict[int, HloValueRecord]:
    where = str(path)
    lines = _read_lines(path)
    if not lines or lines[0].strip() != "BufferAssignment:":
        raise InputError(
            "expected 'BufferAssignment:' on the first line",
            where,
            line=1,
            field="BufferAssignment",
        )
    values: dict[int, HloValueRecord] = {}
    alloc: tuple[int, str] | None = None
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith("allocation"):
            m = _ALLOC_RE.match(line)
            if not m:
                raise InputError(
                    f"expected 'allocation N: size BYTES, ...:', got {_clip(line)}",
                    where,
                    line=lineno,
                    field="allocation",
                )
            alloc = (int(m.group(1)), _alloc_kind(m.group(3)))
            continue
        if line.lstrip().startswith("value:"):
            m = _VALUE_RE.match(line)
            if not m or alloc is None:
                raise InputError(
                    "expected ' value: <ID NAME @0> (size=BYTES,offset=BYTES): SHAPE' after an allocation line, "
                    f"got {_clip(line)}",
                    where,
                    line=lineno,
                    field="value",
                )
            vid = int(m.group(1))
            values[vid] = HloValueRecord(
                id=vid,
                instr=m.group(2),
                index=_index(m.group(3)),
                label=m.group(2) + (m.group(3) or ""),
                is_phi=bool(m.group(4)),
                allocation=alloc[0],
                allocation_kind=alloc[1],
                offset=int(m.group(6)),
                size=int(m.group(5)),
                shape_text=m.group(7).strip(),
                line=lineno,
            )
            continue
        if line.startswith(" "):
            raise InputError(
                f"unexpected line {_clip(line)}", where, line=lineno, field="allocation"
            )
        break  # another section (statistics, ...): not needed
    if alloc is None:
        raise InputError(
            "no 'allocation' lines (truncated?)", where, line=len(lines) + 1, field="allocation"
        )
    return values


_VALHDR_RE = re.compile(r"<(\d+) ([^\s{}<>]+)(\{[\d,]*\})?( \(phi\))? @\d+>$")
_POS_RE = re.compile(r"\s+([^\s{}]+)(?: \{([\d,]*)\})?$")


def parse_values(path: Path) -> dict[int, list[tuple[str, tuple[int, ...]]]]:
    """The positions (instruction, shape index) of each value, from ``*-buffer-assignment-values.txt``."""
    where = str(path)
    lines = _read_lines(path)
    positions: dict[int, list[tuple[str, tuple[int, ...]]]] = {}
    section = ""
    cur: int | None = None
    seen_header = False
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith("Total bytes used"):
            continue
        if line == "Used values:":
            seen_header = True
            continue
        if line.startswith("<"):
            m = _VALHDR_RE.match(line)
            if not m:
                raise InputError(
                    f"expected '<ID NAME @0>', got {_clip(line)}", where, line=lineno, field="value"
                )
            cur = int(m.group(1))
            positions[cur] = []
            section = ""
            continue
        s = line.strip()
        if s in ("positions:", "uses:"):
            if cur is None:
                raise InputError(
                    f"{s!r} before any '<ID NAME @0>' line", where, line=lineno, field="value"
                )
            section = s[:-1]
            continue
        if s.startswith("from instruction:"):
            section = ""
            continue
        if section == "positions":
            m = _POS_RE.match(line)
            if not m or cur is None:
                raise InputError(
                    f"expected a position 'NAME' or 'NAME {{INDEX}}', got {_clip(line)}",
                    where,
                    line=lineno,
                    field="positions",
                )
            positions[cur].append((m.group(1), _index(m.group(2))))
            continue
        if section == "uses":
            continue
        raise InputError(f"unexpected line {_clip(line)}", where, line=lineno)
    if not seen_header:
        raise InputError(
            "expected a 'Used values:' line", where, line=len(lines) + 1, field="Used values"
        )
    return positions


# ------------------------------------------------------------------------------ live range
@dataclass
class LiveRanges:
    sequence: list[str]
    ranges: dict[tuple[str, tuple[int, ...]], tuple[int, int]]
    peak_position: int
    peak_bytes: int


_LR_HDR_RE = re.compile(r"HloLiveRange \(max (\d+)\):$")
_SEQ_RE = re.compile(r"\s+(\d+):(\S+)$")
_RANGE_RE = re.compile(r"\s+([^\s{}]+)\{([\d,]*)\}:(\d+)-(\d+)$")
_PEAK_RE = re.compile(r"\s+Live ranges at (\d+) \(peak\):$")
_PEAKLINE_RE = re.compile(r"\s+\S+: (\d+) bytes \(cumulative: (\d+) bytes\)$")


def parse_live_range(path: Path) -> LiveRanges:
    where = str(path)
    lines = _read_lines(path)
    if not lines or not _LR_HDR_RE.match(lines[0].rstrip()):
        raise InputError(
            "expected 'HloLiveRange (max N):' on the first line",
            where,
            line=1,
            field="HloLiveRange",
        )
    max_time = int(_LR_HDR_RE.match(lines[0].rstrip()).group(1))  # type: ignore[union-attr]
    sequence: list[str] = []
    ranges: dict[tuple[str, tuple[int, ...]], tuple[int, int]] = {}
    section = "header"
    peak_position = -1
    peak_bytes = 0
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip()
        if not line.strip():
            continue
        s = line.strip()
        if section == "header":
            if s != "InstructionSequence:":
                raise InputError(
                    f"expected 'InstructionSequence:', got {_clip(line)}", where, line=lineno
                )
            section = "sequence"
            continue
        if section == "sequence":
            if s == "BufferLiveRange:":
                if len(sequence) != max_time:
                    raise InputError(
                        f"InstructionSequence has {len(sequence)} entries, the header says max {max_time}",
                        where,
                        line=lineno,
                        field="InstructionSequence",
                    )
                section = "ranges"
                continue
            m = _SEQ_RE.match(line)
            if not m or int(m.group(1)) != len(sequence):
                raise InputError(
                    f"expected {len(sequence)}:NAME, got {_clip(line)}",
                    where,
                    line=lineno,
                    field="InstructionSequence",
                )
            sequence.append(m.group(2))
            continue
        if section == "ranges":
            pm = _PEAK_RE.match(line)
            if pm:
                peak_position = int(pm.group(1))
                section = "peak"
                continue
            m = _RANGE_RE.match(line)
            if not m:
                raise InputError(
                    f"expected NAME{{INDEX}}:START-END, got {_clip(line)}",
                    where,
                    line=lineno,
                    field="BufferLiveRange",
                )
            start, end = int(m.group(3)), int(m.group(4))
            if not 0 <= start <= end <= max_time:
                raise InputError(
                    f"live range {start}-{end} is not within 0-{max_time}",
                    where,
                    line=lineno,
                    field="BufferLiveRange",
                )
            ranges[(m.group(1), _index(m.group(2)))] = (start, end)
            continue
        if section == "peak":
            m = _PEAKLINE_RE.match(line)
            if m:
                peak_bytes = int(m.group(2))
                continue
            break  # stack-trace breakdown and later sections: not needed
    if section in ("header", "sequence", "ranges"):
        fld, expected = {
            "header": ("InstructionSequence", "'InstructionSequence:'"),
            "sequence": (
                "InstructionSequence",
                "more InstructionSequence entries and then 'BufferLiveRange:'",
            ),
            "ranges": (
                "BufferLiveRange",
                "more NAME{INDEX}:START-END lines and then 'Live ranges at N (peak):'",
            ),
        }[section]
        raise InputError(
            f"file ends early (truncated?): expected {expected}",
            where,
            line=len(lines) + 1,
            field=fld,
        )
    return LiveRanges(
        sequence=sequence, ranges=ranges, peak_position=peak_position, peak_bytes=peak_bytes
    )


# ------------------------------------------------------------------------- module discovery
_FILE_RE = re.compile(
    r"^(module_(\d+)\.(.+?))\.([A-Za-z0-9_.\-]*?after_optimizations)"
    r"(-buffer-assignment-values|-buffer-assignment|-live-range|-memory-usage-report)?\.txt$"
)
_KINDS = {None: "hlo", "-buffer-assignment": "buffer_assignment", "-buffer-assignment-values": "values",
          "-live-range": "live_range"}  # fmt: skip


@dataclass
class DumpModule:
    """The files of one module in a dump folder."""

    prefix: str  # module_0006.jit_f
    module_id: int
    name: str  # jit_f
    stage: str  # cpu_after_optimizations
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)

    def expected(self, kind: str) -> Path:
        suffix = {v: k for k, v in _KINDS.items()}[kind] or ""
        return self.folder / f"{self.prefix}.{self.stage}{suffix}.txt"

    def value_count(self) -> int:
        p = self.files.get("buffer_assignment")
        if p is None:
            return 0
        try:
            with open(p, "rb") as f:
                return sum(1 for line in f if line.startswith(b" value: <"))
        except OSError:
            return 0


def find_modules(path: str | os.PathLike[str]) -> list[DumpModule]:
    """The modules whose after-optimizations dump files lie in folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("not a folder (expected an XLA dump folder)", str(folder))
    mods: dict[tuple[str, str], DumpModule] = {}
    for entry in sorted(os.listdir(folder)):
        m = _FILE_RE.match(entry)
        if not m or m.group(5) == "-memory-usage-report":
            continue
        key = (m.group(1), m.group(4))
        mod = mods.setdefault(
            key,
            DumpModule(
                prefix=m.group(1),
                module_id=int(m.group(2)),
                name=m.group(3),
                stage=m.group(4),
                folder=folder,
            ),
        )
        mod.files[_KINDS[m.group(5)]] = folder / entry
    return sorted(mods.values(), key=lambda d: (d.module_id, d.stage))


def _select_module(folder: Path, module: str | None) -> tuple[DumpModule, list[str]]:
    mods = find_modules(folder)
    if not mods:
        raise InputError(
            "no XLA module dumps found (expected files like module_0000.NAME.cpu_after_optimizations.txt; "
            "dump with XLA_FLAGS='--xla_dump_to=DIR --xla_dump_hlo_as_text')",
            str(folder),
        )
    names = [f"{d.prefix}.{d.stage}" for d in mods]
    if module is not None:
        exact = [d for d in mods if module in (d.name, d.prefix, f"{d.prefix}.{d.stage}")]
        cands = exact or [d for d in mods if module in f"{d.prefix}.{d.stage}"]
        if not cands:
            raise InputError(
                f"no module matching {module!r}; modules here: {', '.join(names)}",
                str(folder),
                field="module",
            )
    else:
        cands = mods
    chosen = max(cands, key=lambda d: (d.value_count(), d.module_id))
    return chosen, [f"{d.prefix}.{d.stage}" for d in cands]


# --------------------------------------------------------------------------- FLOPs / bytes
# Opcodes that move or re-label data and do no arithmetic.
_NO_FLOP = frozenset(
    """parameter constant tuple get-tuple-element bitcast reshape transpose broadcast slice
    dynamic-slice dynamic-update-slice concatenate pad copy copy-start copy-done iota gather
    reverse convert bitcast-convert while conditional call custom-call after-all add-dependency
    opt-barrier optimization-barrier domain partition-id replica-id get-dimension-size
    set-dimension-size infeed outfeed send send-done recv recv-done rng-get-and-update-state
    async-start async-update async-done all-gather all-gather-start all-gather-done all-to-all
    collective-permute collective-permute-start collective-permute-done""".split()
)
# Scheduled instructions that neither read nor write array data themselves.
_NO_ACCESS = frozenset(
    """parameter constant get-tuple-element bitcast while conditional call after-all
    add-dependency opt-barrier optimization-barrier domain""".split()
)
_SLICING = frozenset({"slice", "dynamic-slice", "gather"})


def _calls(ins: HloInstruction, key: str) -> list[str]:
    v = ins.attrs.get(key)
    if not v:
        return []
    return [c.strip().lstrip("%") for c in v.strip("{}").split(",") if c.strip()]


def _int_list(text: str | None) -> list[int]:
    if not text:
        return []
    return [int(x) for x in re.findall(r"-?\d+", text)]


class _Analyzer:
    def __init__(self, mod: HloModule):
        self.mod = mod
        self._comp_flops: dict[str, float] = {}
        self._users: dict[str, dict[str, list[tuple[HloInstruction, int]]]] = {}

    # ---- flops
    def arith_ops(self, comp_name: str) -> int:
        comp = self.mod.computations.get(comp_name)
        if comp is None:
            return 1
        n = sum(1 for i in comp.instructions if i.opcode not in _NO_FLOP)
        return max(n, 1)

    def comp_flops(self, comp_name: str) -> float:
        if comp_name not in self._comp_flops:
            self._comp_flops[comp_name] = 0.0  # guards recursion
            comp = self.mod.computations.get(comp_name)
            total = sum(self.flops(i) for i in comp.instructions) if comp else 0.0
            self._comp_flops[comp_name] = total
        return self._comp_flops[comp_name]

    def operand_shape(self, ins: HloInstruction, k: int) -> Shape | None:
        if k >= len(ins.operands):
            return None
        return self.mod.instructions[ins.operands[k]].shape

    def flops(self, ins: HloInstruction) -> float:
        op = ins.opcode
        out = ins.shape
        if op == "fusion":
            return sum(self.comp_flops(c) for c in _calls(ins, "calls"))
        if op == "dot":
            lhs = self.operand_shape(ins, 0)
            k = (
                math.prod(lhs.dims[d] for d in _int_list(ins.attrs.get("lhs_contracting_dims")))
                if lhs
                else 1
            )
            return 2.0 * out.elements_count * k
        if op == "convolution":
            kernel = self.operand_shape(ins, 1)
            labels = ins.attrs.get("dim_labels", "")
            kl = labels.split("_")[1].split("->")[0] if "_" in labels else ""
            fin = (
                kernel.dims[kl.index("i")]
                if kernel and "i" in kl and len(kl) == len(kernel.dims)
                else 1
            )
            m = re.search(r"size=([\dx]+)", ins.attrs.get("window", ""))
            window = math.prod(int(x) for x in m.group(1).split("x")) if m else 1
            return 2.0 * out.elements_count * window * fin
        if op in _NO_FLOP:
            return 0.0
        if op == "reduce":
            src = self.operand_shape(ins, 0)
            return (
                float(
                    self.arith_ops(_calls(ins, "to_apply")[0]) * (src.elements_count if src else 0)
                )
                if _calls(ins, "to_apply")
                else 0.0
            )
        if op == "reduce-window":
            m = re.search(r"size=([\dx]+)", ins.attrs.get("window", ""))
            window = math.prod(int(x) for x in m.group(1).split("x")) if m else 1
            n_out = sum(s.elements_count for _, s in out.leaves())
            return float(n_out * window * self.arith_ops((_calls(ins, "to_apply") or [""])[0]))
        if op == "select-and-scatter":
            src = self.operand_shape(ins, 1)
            m = re.search(r"size=([\dx]+)", ins.attrs.get("window", ""))
            window = math.prod(int(x) for x in m.group(1).split("x")) if m else 1
            return float((src.elements_count if src else 0) * (window + 1))
        if op == "scatter":
            upd = self.operand_shape(ins, len(ins.operands) - 1)
            return float(
                (upd.elements_count if upd else 0)
                * self.arith_ops((_calls(ins, "to_apply") or [""])[0])
            )
        if op == "map":
            return float(out.elements_count * self.arith_ops((_calls(ins, "to_apply") or [""])[0]))
        if op == "sort":
            first = self.operand_shape(ins, 0)
            dims = _int_list(ins.attrs.get("dimensions"))
            n = first.dims[dims[0]] if first and dims and dims[0] < len(first.dims) else 2
            return float((first.elements_count if first else 0) * max(1.0, math.log2(max(n, 2))))
        # element-wise (including compare, select, transcendental ops, all-reduce, ...)
        return float(sum(s.elements_count for _, s in out.leaves()))

    # ---- in-place pairs (XLA AliasInfo::GetInPlaceInputOutputPairs)
    def in_place_pairs(
        self, ins: HloInstruction
    ) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
        """(operand number, operand shape index, output shape index) that must share a buffer."""
        op = ins.opcode
        pairs: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
        if op == "dynamic-update-slice":
            return [(0, (), ())]
        if op == "scatter":
            n = max(1, (len(ins.operands) - 1) // 2)
            return [(0, (), ())] if n == 1 else [(i, (), (i,)) for i in range(n)]
        if op in ("custom-call", "fusion") and "output_to_operand_aliasing" in ins.attrs:
            for m in re.finditer(
                r"\{([\d,]*)\}:\s*\((\d+),\s*\{([\d,]*)\}\)",
                ins.attrs["output_to_operand_aliasing"],
            ):
                pairs.append((int(m.group(2)), _index(m.group(3)), _index(m.group(1))))
        if op == "fusion":
            pairs.extend(self._fusion_in_place_pairs(ins))
        return pairs

    def _follow_tuple(
        self, ins: HloInstruction, index: tuple[int, ...]
    ) -> tuple[HloInstruction, tuple[int, ...]]:
        while True:
            if ins.opcode == "tuple" and index:
                ins, index = self.mod.instructions[ins.operands[index[0]]], index[1:]
            elif ins.opcode == "get-tuple-element":
                ins, index = (
                    self.mod.instructions[ins.operands[0]],
                    (int(ins.attrs.get("index", "0")),) + index,
                )
            else:
                return ins, index

    def _fusion_in_place_pairs(
        self, fusion: HloInstruction
    ) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
        comps = _calls(fusion, "calls")
        comp = self.mod.computations.get(comps[0]) if comps else None
        if comp is None or comp.root is None:
            return []
        pairs = []
        for out_index, _ in fusion.shape.leaves():
            src, src_index = self._follow_tuple(comp.root, out_index)
            source: HloInstruction | None = None
            source_index: tuple[int, ...] = ()
            for operand_no, operand_index, output_index in self.in_place_pairs(src):
                if output_index == src_index:
                    source, source_index = self._follow_tuple(
                        self.mod.instructions[src.operands[operand_no]], operand_index
                    )
                    if source.opcode == "fusion":
                        for n2, i2, o2 in self.in_place_pairs(source):
                            if o2 == source_index:
                                source, source_index = self._follow_tuple(
                                    self.mod.instructions[source.operands[n2]], i2
                                )
            if source is not None and source.opcode == "bitcast":
                source = self.mod.instructions[source.operands[0]]
            if source is not None and source.opcode == "parameter":
                pairs.append((source.parameter_number, source_index, out_index))
        return pairs

    # ---- bytes
    def users_in(self, comp_name: str) -> dict[str, list[tuple[HloInstruction, int]]]:
        if comp_name not in self._users:
            users: dict[str, list[tuple[HloInstruction, int]]] = defaultdict(list)
            comp = self.mod.computations.get(comp_name)
            for i in comp.instructions if comp else []:
                for k, o in enumerate(i.operands):
                    users[o].append((i, k))
            self._users[comp_name] = users
        return self._users[comp_name]

    def _param_read_bytes(self, comp_name: str, param: HloInstruction, full: int) -> int:
        """Bytes a fused computation reads of parameter ``param``: slices only when every use
        slices it, nothing for the in-place operand of a dynamic-update-slice."""
        users = self.users_in(comp_name)
        total = 0
        todo = [param]
        while todo:
            node = todo.pop()
            for user, k in users.get(node.name, []):
                if user.opcode == "bitcast":
                    todo.append(user)
                elif user.opcode in _SLICING and k == 0:
                    total += user.shape.nbytes
                elif user.opcode == "dynamic-update-slice" and k == 0:
                    pass
                else:
                    return full
        return min(total, full)

    def read_bytes(self, ins: HloInstruction, k: int, index: tuple[int, ...], leaf: Shape) -> int:
        full = leaf.nbytes
        op = ins.opcode
        if k == 0 and op in _SLICING:
            return min(full, ins.shape.nbytes)
        if op == "dynamic-update-slice" and k == 0:
            return 0
        if op == "scatter" and k < max(1, (len(ins.operands) - 1) // 2):
            upd = self.operand_shape(ins, len(ins.operands) - 1)
            return min(full, upd.nbytes if upd else full)
        if op == "fusion" and not index:
            comps = _calls(ins, "calls")
            comp = self.mod.computations.get(comps[0]) if comps else None
            if comp is not None and k in comp.parameters:
                return self._param_read_bytes(comp.name, comp.parameters[k], full)
        return full

    def write_bytes(self, ins: HloInstruction, index: tuple[int, ...], leaf: Shape) -> int:
        full = leaf.nbytes
        src, src_index = ins, index
        if ins.opcode == "fusion":
            comps = _calls(ins, "calls")
            comp = self.mod.computations.get(comps[0]) if comps else None
            if comp is None or comp.root is None:
                return full
            src, src_index = self._follow_tuple(comp.root, index)
            while src.opcode == "bitcast":
                src = self.mod.instructions[src.operands[0]]
        if src.opcode == "dynamic-update-slice" and not src_index:
            upd = self.operand_shape(src, 1)
            return min(full, upd.nbytes) if upd else full
        if src.opcode == "scatter":
            upd = self.operand_shape(src, len(src.operands) - 1)
            return min(full, upd.nbytes) if upd else full
        return full


# -------------------------------------------------------------------------------- reader
class _UnionFind:
    def __init__(self, items: Iterable[int]):
        self.parent = {i: i for i in items}

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return True


_TRIP_RE = re.compile(r'known_trip_count\\?"\s*:\s*\{\s*\\?"n\\?"\s*:\s*\\?"?(\d+)')


def read_dump_folder(path: str | os.PathLike[str], module: str | None = None) -> Workload:
    """Read one compiled module of an XLA dump folder as a :class:`Workload`.

    ``module`` picks the module by (a substring of) its file prefix, e.g. ``"jit_step"`` or
    ``"module_0006"``; an exact module name wins over substring matches. Without it, or when
    several match, the module with the most values in its buffer assignment is read, and
    ``source["module_candidates"]`` lists the others. Raises :class:`InputError` naming the
    file, line and field for missing, truncated or malformed files.
    """
    folder = Path(path)
    dm, candidates = _select_module(folder, module)
    for kind in ("hlo", "buffer_assignment", "values", "live_range"):
        if kind not in dm.files:
            raise InputError(
                f"missing {kind.replace('_', '-')} file for module {dm.prefix} "
                "(dump with --xla_dump_hlo_as_text; XLA writes all four files per module)",
                str(dm.expected(kind)),
                field=kind,
            )
    hlo = parse_hlo_module(dm.files["hlo"])
    ba = parse_buffer_assignment(dm.files["buffer_assignment"])
    positions = parse_values(dm.files["values"])
    lr = parse_live_range(dm.files["live_range"])
    return _assemble(dm, hlo, ba, positions, lr, candidates)


def _assemble(
    dm: DumpModule,
    hlo: HloModule,
    ba: dict[int, HloValueRecord],
    positions: dict[int, list[tuple[str, tuple[int, ...]]]],
    lr: LiveRanges,
    candidates: list[str],
) -> Workload:
    f_lr, f_ba = str(dm.files["live_range"]), str(dm.files["buffer_assignment"])
    for t, name in enumerate(lr.sequence):
        if name not in hlo.instructions:
            raise InputError(
                f"scheduled instruction {name!r} is not in {dm.files['hlo'].name}",
                f_lr,
                line=t + 3,
                field="InstructionSequence",
            )
    an = _Analyzer(hlo)

    # ---- values kept: positive size and a live range
    skipped: dict[str, int] = defaultdict(int)
    kept: dict[int, HloValueRecord] = {}
    vrange: dict[int, tuple[int, int]] = {}
    for vid, v in ba.items():
        if v.instr not in hlo.instructions:
            raise InputError(
                f"value <{vid} {v.label}> names an unknown instruction",
                f_ba,
                line=v.line,
                field="value",
            )
        if v.size <= 0:
            skipped["zero_size"] += 1
            continue
        r = lr.ranges.get((v.instr, v.index))
        if r is None:
            skipped["no_live_range (" + v.allocation_kind + ")"] += 1
            continue
        kept[vid] = v
        vrange[vid] = r

    at: dict[tuple[str, tuple[int, ...]], list[int]] = defaultdict(list)
    for vid in kept:
        for pos in positions.get(vid) or [(kept[vid].instr, kept[vid].index)]:
            at[pos].append(vid)

    # ---- aliasing: XLA's must-alias rules, each edge confirmed by allocation and offset
    uf = _UnionFind(kept)
    stats = {"confirmed": 0, "unconfirmed": 0}

    def link(group: Iterable[int]) -> None:
        """Union the values of ``group`` that the buffer assignment put at one address."""
        by_place: dict[tuple[int, int], list[int]] = defaultdict(list)
        for vid in sorted(set(group)):
            by_place[(kept[vid].allocation, kept[vid].offset)].append(vid)
        stats["unconfirmed"] += len(by_place) - 1 if by_place else 0
        for vids in by_place.values():
            for b in vids[1:]:
                stats["confirmed"] += uf.union(vids[0], b)

    for vids in at.values():  # several values at one position (non-SSA merges)
        if len(vids) > 1:
            link(vids)
    loops: list[dict[str, Any]] = []
    mult: dict[str, float] = {hlo.entry: 1.0}
    order = [hlo.entry]
    unknown_trips = 0
    for comp_name in order:  # breadth-first over control-flow callees, for multipliers
        comp = hlo.computations[comp_name]
        for ins in comp.instructions:
            if ins.opcode == "while":
                body = (_calls(ins, "body") or [""])[0]
                cond = (_calls(ins, "condition") or [""])[0]
                m = _TRIP_RE.search(ins.attrs.get("backend_config", ""))
                trip = int(m.group(1)) if m else None
                unknown_trips += trip is None
                loops.append({"while": ins.name, "trip_count": trip, "known": trip is not None})
                n = float(trip if trip is not None else 1)
                for c, k in ((body, n), (cond, n + 1 if trip is not None else 1.0)):
                    if c in hlo.computations and c not in mult:
                        mult[c] = mult[comp_name] * k
                        order.append(c)
                for idx, _ in ins.shape.indices():
                    group = list(at.get((ins.name, idx), []))
                    group += at.get((ins.operands[0], idx), []) if ins.operands else []
                    for c in (body, cond):
                        cc = hlo.computations.get(c)
                        if cc is not None and 0 in cc.parameters:
                            group += at.get((cc.parameters[0].name, idx), [])
                    bc = hlo.computations.get(body)
                    if bc is not None and bc.root is not None:
                        group += at.get((bc.root.name, idx), [])
                    link(group)
            elif ins.opcode in ("conditional", "call", "async-start"):
                branches = (
                    _calls(ins, "branch_computations")
                    + _calls(ins, "true_computation")
                    + _calls(ins, "false_computation")
                    + _calls(ins, "to_apply")
                    + _calls(ins, "calls")
                )
                for c in branches:
                    if c in hlo.computations and c not in mult:
                        mult[c] = mult[comp_name]
                        order.append(c)
                if ins.opcode == "conditional":
                    for idx, _ in ins.shape.indices():
                        group = list(at.get((ins.name, idx), []))
                        for c in branches:
                            cc = hlo.computations.get(c)
                            if cc is not None and cc.root is not None:
                                group += at.get((cc.root.name, idx), [])
                        link(group)
    for ins in hlo.instructions.values():
        for operand_no, operand_index, out_index in an.in_place_pairs(ins):
            if operand_no < len(ins.operands):
                link(
                    at.get((ins.name, out_index), [])
                    + at.get((ins.operands[operand_no], operand_index), [])
                )

    # ---- buffers
    groups: dict[int, list[int]] = defaultdict(list)
    for vid in sorted(kept):
        groups[uf.find(vid)].append(vid)
    roots = sorted(groups)
    buf_of_value: dict[int, int] = {}
    ids, sizes, starts, ends, names = [], [], [], [], []
    for b, root in enumerate(roots):
        members = groups[root]
        for vid in members:
            buf_of_value[vid] = b
        first = min(members, key=lambda v: (vrange[v][0], v))
        ids.append(root)
        sizes.append(max(kept[v].size for v in members))
        starts.append(min(vrange[v][0] for v in members))
        # XLA's inclusive end -> half-open; live-out values end at ``max`` (the moment after the
        # last instruction), which no instruction occupies: clamp to the instruction count.
        ends.append(min(max(vrange[v][1] for v in members) + 1, len(lr.sequence)))
        names.append(kept[first].label)

    # ---- instructions
    defined: dict[str, list[int]] = defaultdict(list)
    for vid, v in kept.items():
        defined[v.instr].append(vid)
    flops: list[float] = []
    ptr = [0]
    acc_buf: list[int] = []
    acc_bytes: list[float] = []
    for name in lr.sequence:
        ins = hlo.instructions[name]
        k = mult.get(ins.computation, 1.0)
        flops.append(an.flops(ins) * k)
        touched: dict[int, float] = defaultdict(float)
        if ins.opcode not in _NO_ACCESS:
            if ins.opcode != "tuple":
                for j, opname in enumerate(ins.operands):
                    oshape = hlo.instructions[opname].shape
                    for idx, leaf in oshape.leaves():
                        vids = at.get((opname, idx))
                        if not vids:
                            continue
                        nbytes = an.read_bytes(ins, j, idx, leaf) * k
                        bufs = {buf_of_value[v] for v in vids}
                        for bb in bufs:
                            touched[bb] += nbytes / len(bufs)
            for vid in defined.get(name, []):
                v = kept[vid]
                if v.is_phi:
                    continue
                sub = ins.shape.subshape(v.index)
                if sub is not None and not sub.is_tuple:
                    nbytes = an.write_bytes(ins, v.index, sub)
                else:
                    nbytes = v.size  # tuple index table
                touched[buf_of_value[vid]] += nbytes * k
        for bb in sorted(touched):
            acc_buf.append(bb)
            acc_bytes.append(touched[bb])
        ptr.append(len(acc_buf))

    try:
        import jax
        import jaxlib

        versions = {"jax": jax.__version__, "jaxlib": getattr(jaxlib, "version", None)}
        if versions["jaxlib"] is not None and not isinstance(versions["jaxlib"], str):
            versions["jaxlib"] = getattr(versions["jaxlib"], "__version__", str(versions["jaxlib"]))
    except Exception:  # noqa: BLE001 - the reader works without jax
        versions = {"jax": None, "jaxlib": None}
    n_io_alias = (
        len(re.findall(r"\{[\d,]*\}:\s*\(\d+,", hlo.header.split("input_output_alias=")[1]))
        if ("input_output_alias=" in hlo.header)
        else 0
    )
    source: dict[str, Any] = {
        "reader": READER,
        "reader_version": READER_VERSION,
        **versions,
        "versions_note": "jax/jaxlib installed where the reader ran (the dump itself does not record them)",
        "xla_module": hlo.name,
        "module_file_prefix": dm.prefix,
        "module_id": dm.module_id,
        "stage": dm.stage,
        "module_candidates": candidates,
        "module_selection": "largest by value count" if len(candidates) > 1 else "only match",
        "folder": str(dm.folder),
        "files": {k: str(v) for k, v in sorted(dm.files.items())},
        "live_range_convention": "XLA [start, end] inclusive -> workload [start, min(end + 1, I))",
        "merge_rule": "XLA must-alias values (while carries, conditional roots, in-place ops) confirmed by same "
        "allocation+offset form one buffer; input/output donation and disjoint allocation reuse are not merged",
        "values_total": len(ba),
        "values_kept": len(kept),
        "values_skipped": dict(skipped),
        "alias_edges_confirmed": stats["confirmed"],
        "alias_edges_unconfirmed": stats["unconfirmed"],
        "input_output_aliases_not_merged": n_io_alias,
        "while_loops": loops,
        "while_loops_unknown_trip_count": unknown_trips,
        "trip_count_assumption": "known_trip_count from backend_config; 1 when unknown",
        "xla_peak_live_bytes": lr.peak_bytes,
        "xla_peak_position": lr.peak_position,
    }
    return Workload(
        name=hlo.name,
        ids=np.asarray(ids, dtype=np.int64),
        sizes=np.asarray(sizes, dtype=np.int64),
        starts=np.asarray(starts, dtype=np.int64),
        ends=np.asarray(ends, dtype=np.int64),
        names=names,
        instr_flops=np.asarray(flops, dtype=np.float64),
        instr_names=list(lr.sequence),
        access_ptr=np.asarray(ptr, dtype=np.int64),
        access_buffer=np.asarray(acc_buf, dtype=np.int64),
        access_bytes=np.asarray(acc_bytes, dtype=np.float64),
        source=source,
    )


# ------------------------------------------------------------------------- from JAX
def compile_to_dump(
    fn: Any,
    args: tuple[Any, ...],
    dump_dir: str | os.PathLike[str],
    kwargs: dict[str, Any] | None = None,
    backend: str | None = "cpu",
    compile_options: dict[str, Any] | None = None,
) -> float:
    """Lower ``fn`` (a ``jax.jit`` function, or a plain function that is jitted here) on
    ``args`` (arrays or :class:`jax.ShapeDtypeStruct` pytrees) and compile it with XLA for
    ``backend`` (``None``: JAX's default), dumping its files to ``dump_dir``. Returns the compile
    time in seconds (lowering excluded). Nothing is executed.

    ``compile_options`` are further XLA debug options, e.g.
    ``{"xla_backend_optimization_level": 0}``, which skips LLVM optimisation (about half the
    compile time on CPU) and, on every zoo program checked with jax 0.10.2, left the HLO, the
    schedule, the buffer assignment and so the workload byte-for-byte the same."""
    import contextlib
    import time

    import jax

    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    ctx = jax.default_device(jax.devices(backend)[0]) if backend else contextlib.nullcontext()
    with ctx:
        lowered = jitted.lower(*args, **(kwargs or {}))
        t0 = time.perf_counter()
        options = dict(compile_options or {})
        options.update({"xla_dump_to": str(dump_dir), "xla_dump_hlo_as_text": True})
        lowered.compile(compiler_options=options)
        return time.perf_counter() - t0


def workload_from_jax(
    fn: Any, *args: Any, name: str | None = None, backend: str | None = "cpu", **kwargs: Any
) -> Workload:
    """Compile ``fn(*args, **kwargs)`` with XLA (CPU backend unless ``backend`` says otherwise;
    compile only) into a temporary dump folder and read it with :func:`read_dump_folder`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mallocgame-xla-") as tmp:
        seconds = compile_to_dump(fn, args, tmp, kwargs, backend=backend)
        wl = read_dump_folder(tmp)
    if name:
        wl.name = name
    wl.source["compile_seconds"] = round(seconds, 3)
    wl.source["folder"] = "(temporary, deleted)"
    wl.source["files"] = {k: Path(v).name for k, v in wl.source["files"].items()}
    return wl


# ----------------------------------------------------------------------------- helpers
def _read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", str(path)) from None


def _clip(line: str, n: int = 80) -> str:
    s = line.strip()
    return repr(s if len(s) <= n else s[: n - 3] + "...")
