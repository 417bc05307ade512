"""XLA's HloLiveRange (``*-live-range.txt``): the flattened schedule, each value's live range,
and XLA's peak."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mallocgame.errors import InputError
from mallocgame.memory.xla.buffer_assignment import Position
from mallocgame.memory.xla.shapes import ShapeSyntaxError, parse_index
from mallocgame.memory.xla.text import clip, read_lines


@dataclass
class LiveRanges:
    sequence: list[str]  # the InstructionSequence: instruction names, by position
    ranges: dict[Position, tuple[int, int]]  # (start, end), both inclusive, by value position
    peak_position: int  # -1 when the file has no peak listing
    peak_bytes: int


# Numbers of at most 18 digits (so each fits int64); longer ones fail to match.
_LR_HDR_RE = re.compile(r"HloLiveRange \(max (\d{1,18})\):$")
_SEQ_RE = re.compile(r"\s+(\d{1,18}):(\S+)$")
_RANGE_RE = re.compile(r"\s+([^\s{}]+)\{([\d,]*)\}:(\d{1,18})-(\d{1,18})$")
_PEAK_RE = re.compile(r"\s+Live ranges at (\d{1,18}) \(peak\):$")
_PEAKLINE_RE = re.compile(r"\s+\S+: (\d{1,18}) bytes \(cumulative: (\d{1,18}) bytes\)$")


def parse_live_range(path: Path) -> LiveRanges:
    """Parse ``*-live-range.txt``."""
    where = str(path)
    lines = read_lines(path)
    if not lines or not _LR_HDR_RE.match(lines[0].rstrip()):
        raise InputError(
            "expected 'HloLiveRange (max N):' on the first line",
            where,
            line=1,
            field="HloLiveRange",
        )
    max_time = int(_LR_HDR_RE.match(lines[0].rstrip()).group(1))  # type: ignore[union-attr]
    sequence: list[str] = []
    ranges: dict[Position, tuple[int, int]] = {}
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
                    f"expected 'InstructionSequence:', got {clip(line)}", where, line=lineno
                )
            section = "sequence"
            continue
        if section == "sequence":
            if s == "BufferLiveRange:":
                if len(sequence) != max_time:
                    raise InputError(
                        f"InstructionSequence has {len(sequence)} entries, "
                        f"the header says max {max_time}",
                        where,
                        line=lineno,
                        field="InstructionSequence",
                    )
                section = "ranges"
                continue
            m = _SEQ_RE.match(line)
            if not m or int(m.group(1)) != len(sequence):
                raise InputError(
                    f"expected {len(sequence)}:NAME, got {clip(line)}",
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
                    f"expected NAME{{INDEX}}:START-END, got {clip(line)}",
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
            try:
                index = parse_index(m.group(2))
            except ShapeSyntaxError as e:
                raise InputError(str(e), where, line=lineno, field="BufferLiveRange") from None
            ranges[(m.group(1), index)] = (start, end)
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
