"""Scheduled HLO text (``*_after_optimizations.txt``): computations and their instructions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mallocgame.errors import InputError
from mallocgame.memory.xla.shapes import (
    HloError,
    Index,
    Shape,
    ShapeSyntaxError,
    parse_shape_at,
    strip_comments,
)
from mallocgame.memory.xla.text import read_lines


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

    def follow_tuple(self, ins: HloInstruction, index: Index) -> tuple[HloInstruction, Index]:
        """The instruction (and index in its output) that defines ``ins``'s output at
        ``index``, looking through ``tuple`` and ``get-tuple-element``."""
        for _ in range(10_000):  # a get-tuple-element / tuple cycle would loop for ever
            if ins.opcode == "tuple" and index:
                ins, index = operand(self, ins, index[0]), index[1:]
            elif ins.opcode == "get-tuple-element":
                ins, index = operand(self, ins, 0), (tuple_index(ins),) + index
            else:
                return ins, index
        raise HloError(f"tuple/get-tuple-element chain through {ins.name!r} never ends", ins.line)


def operand(mod: HloModule, ins: HloInstruction, k: int) -> HloInstruction:
    """Operand ``k`` of ``ins``; an :class:`HloError` when it has no such operand."""
    if not 0 <= k < len(ins.operands):
        raise HloError(
            f"{ins.opcode} {ins.name!r} has no operand {k} (it has {len(ins.operands)})", ins.line
        )
    return mod.instructions[ins.operands[k]]


def tuple_index(ins: HloInstruction) -> int:
    """The ``index=`` of a get-tuple-element."""
    raw = ins.attrs.get("index", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise HloError(f"get-tuple-element {ins.name!r} has a bad index={raw[:20]!r}", ins.line)
    return int(raw)


def calls(ins: HloInstruction, key: str) -> list[str]:
    """The computation names in attribute ``key``: ``calls=%f``, ``body=%b``, ``{%a, %b}``."""
    v = ins.attrs.get(key)
    if not v:
        return []
    return [c.strip().lstrip("%") for c in v.strip("{}").split(",") if c.strip()]


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
    raise ShapeSyntaxError(f"unbalanced {open_c}{close_c}")


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
    text = strip_comments(line)
    m = _INSTR_RE.match(text)
    if not m:
        raise ShapeSyntaxError("expected '%NAME = SHAPE OPCODE(OPERANDS), ATTRIBUTES'")
    shape, pos = parse_shape_at(text, m.end())
    om = _OPCODE_RE.match(text, pos)
    if not om:
        raise ShapeSyntaxError(f"expected OPCODE( after the shape at {text[pos : pos + 30]!r}")
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
    lines = read_lines(path)
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
        except (ShapeSyntaxError, ValueError, IndexError) as e:
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
