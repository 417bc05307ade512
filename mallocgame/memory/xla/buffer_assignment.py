"""XLA's buffer assignment: each value's allocation, offset and size
(``*-buffer-assignment.txt``) and each value's positions (``*-buffer-assignment-values.txt``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mallocgame.errors import InputError
from mallocgame.memory.workload import MAX_BYTES
from mallocgame.memory.xla.shapes import Index, ShapeSyntaxError, parse_index
from mallocgame.memory.xla.text import clip, read_lines

# Where a value appears: (instruction name, shape index in that instruction's output).
Position = tuple[str, Index]


@dataclass
class HloValueRecord:
    id: int
    instr: str
    index: Index
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


# Ids of at most 18 digits (so each fits int64), sizes and offsets of at most 19 (sizes are
# then bounded by MAX_BYTES); longer numbers fail to match, and the line is reported malformed.
_ALLOC_RE = re.compile(r"allocation (\d{1,18}): size (\d{1,19})(.*):$")
_VALUE_RE = re.compile(
    r"\s+value: <(\d{1,18}) ([^\s{}<>]+)(\{[\d,]*\})?( \(phi\))? @\d+> "
    r"\(size=(\d{1,19}),offset=(\d{1,19})\): (.*)$"
)


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
    """Every value that got an allocation, by value id, from ``*-buffer-assignment.txt``."""
    where = str(path)
    lines = read_lines(path)
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
                    f"expected 'allocation N: size BYTES, ...:', got {clip(line)}",
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
                    "expected ' value: <ID NAME @0> (size=BYTES,offset=BYTES): SHAPE' "
                    f"after an allocation line, got {clip(line)}",
                    where,
                    line=lineno,
                    field="value",
                )
            vid = int(m.group(1))
            size = int(m.group(5))
            if size > MAX_BYTES:
                raise InputError(
                    f"value size {size} is beyond the supported 2^60 bytes",
                    where,
                    line=lineno,
                    field="value",
                )
            values[vid] = HloValueRecord(
                id=vid,
                instr=m.group(2),
                index=_index(m.group(3), where, lineno, "value"),
                label=m.group(2) + (m.group(3) or ""),
                is_phi=bool(m.group(4)),
                allocation=alloc[0],
                allocation_kind=alloc[1],
                offset=int(m.group(6)),
                size=size,
                shape_text=m.group(7).strip(),
                line=lineno,
            )
            continue
        if line.startswith(" "):
            raise InputError(
                f"unexpected line {clip(line)}", where, line=lineno, field="allocation"
            )
        break  # another section (statistics, ...): not needed
    if alloc is None:
        raise InputError(
            "no 'allocation' lines (truncated?)", where, line=len(lines) + 1, field="allocation"
        )
    return values


def _index(text: str | None, where: str, line: int, field: str) -> Index:
    try:
        return parse_index(text)
    except ShapeSyntaxError as e:
        raise InputError(str(e), where, line=line, field=field) from None


_VALHDR_RE = re.compile(r"<(\d{1,18}) ([^\s{}<>]+)(\{[\d,]*\})?( \(phi\))? @\d+>$")
_POS_RE = re.compile(r"\s+([^\s{}]+)(?: \{([\d,]*)\})?$")


def parse_values(path: Path) -> dict[int, list[Position]]:
    """The positions of each value, by value id, from ``*-buffer-assignment-values.txt``."""
    where = str(path)
    lines = read_lines(path)
    positions: dict[int, list[Position]] = {}
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
                    f"expected '<ID NAME @0>', got {clip(line)}", where, line=lineno, field="value"
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
                    f"expected a position 'NAME' or 'NAME {{INDEX}}', got {clip(line)}",
                    where,
                    line=lineno,
                    field="positions",
                )
            positions[cur].append((m.group(1), _index(m.group(2), where, lineno, "positions")))
            continue
        if section == "uses":
            continue
        raise InputError(f"unexpected line {clip(line)}", where, line=lineno)
    if not seen_header:
        raise InputError(
            "expected a 'Used values:' line", where, line=len(lines) + 1, field="Used values"
        )
    return positions
