"""Which values must share one buffer: XLA's must-alias rules (HloAliasAnalysis), each edge
confirmed by the buffer assignment putting both values at one allocation and offset."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from mallocgame.memory.xla.buffer_assignment import HloValueRecord, Position
from mallocgame.memory.xla.control_flow import branches
from mallocgame.memory.xla.hlo import HloInstruction, HloModule, calls, operand
from mallocgame.memory.xla.shapes import HloError, Index, ShapeSyntaxError, parse_index


class InPlacePair(NamedTuple):
    """An operand (number, shape index) that must share a buffer with an output shape index."""

    operand: int
    operand_index: Index
    output_index: Index


def in_place_pairs(hlo: HloModule, ins: HloInstruction) -> list[InPlacePair]:
    """XLA's ``AliasInfo::GetInPlaceInputOutputPairs`` for ``ins``."""
    op = ins.opcode
    pairs: list[InPlacePair] = []
    if op == "dynamic-update-slice":
        return [InPlacePair(0, (), ())]
    if op == "scatter":
        n = max(1, (len(ins.operands) - 1) // 2)
        return [InPlacePair(0, (), ())] if n == 1 else [InPlacePair(i, (), (i,)) for i in range(n)]
    if op in ("custom-call", "fusion") and "output_to_operand_aliasing" in ins.attrs:
        for m in re.finditer(
            r"\{([\d,]*)\}:\s*\((\d{1,9}),\s*\{([\d,]*)\}\)",
            ins.attrs["output_to_operand_aliasing"],
        ):
            try:
                out_index, operand_index = parse_index(m.group(1)), parse_index(m.group(3))
            except ShapeSyntaxError as e:
                msg = f"output_to_operand_aliasing of {ins.name!r}: {e}"
                raise HloError(msg, ins.line) from None
            pairs.append(InPlacePair(int(m.group(2)), operand_index, out_index))
    if op == "fusion":
        pairs.extend(_fusion_in_place_pairs(hlo, ins))
    return pairs


def _fusion_in_place_pairs(hlo: HloModule, fusion: HloInstruction) -> list[InPlacePair]:
    """A fusion whose root (through tuples) is an in-place op on one of its parameters."""
    comps = calls(fusion, "calls")
    comp = hlo.computations.get(comps[0]) if comps else None
    if comp is None or comp.root is None:
        return []
    pairs = []
    for out_index, _ in fusion.shape.leaves():
        src, src_index = hlo.follow_tuple(comp.root, out_index)
        source: HloInstruction | None = None
        source_index: Index = ()
        for operand_no, operand_index, output_index in in_place_pairs(hlo, src):
            if output_index == src_index:
                source, source_index = hlo.follow_tuple(
                    operand(hlo, src, operand_no), operand_index
                )
                if source.opcode == "fusion":
                    for n2, i2, o2 in in_place_pairs(hlo, source):
                        if o2 == source_index:
                            source, source_index = hlo.follow_tuple(operand(hlo, source, n2), i2)
        if source is not None and source.opcode == "bitcast":
            source = operand(hlo, source, 0)
        if source is not None and source.opcode == "parameter":
            pairs.append(InPlacePair(source.parameter_number, source_index, out_index))
    return pairs


class UnionFind:
    """Disjoint sets of ints; a set's representative is always its smallest member."""

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


@dataclass
class Aliasing:
    buffers: dict[int, list[int]]  # smallest value id -> the value ids of one buffer, by id
    confirmed: int  # must-alias edges the buffer assignment agrees with (merges made)
    unconfirmed: int  # must-alias edges between different allocations or offsets (not merged)


def alias_values(
    hlo: HloModule,
    kept: Mapping[int, HloValueRecord],
    at: Mapping[Position, list[int]],
    order: list[str],
) -> Aliasing:
    """Group the values ``kept`` (by id) into buffers. ``at`` lists the kept values at each
    position; ``order`` the computations whose while loops and conditionals are followed."""
    uf = UnionFind(kept)
    confirmed = unconfirmed = 0

    def link(group: Iterable[int]) -> None:
        """Union the values of ``group`` that the buffer assignment put at one address."""
        nonlocal confirmed, unconfirmed
        by_place: dict[tuple[int, int], list[int]] = defaultdict(list)
        for vid in sorted(set(group)):
            by_place[(kept[vid].allocation, kept[vid].offset)].append(vid)
        unconfirmed += len(by_place) - 1 if by_place else 0
        for vids in by_place.values():
            for b in vids[1:]:
                confirmed += uf.union(vids[0], b)

    for vids in at.values():  # several values at one position (non-SSA merges)
        if len(vids) > 1:
            link(vids)
    for comp_name in order:
        for ins in hlo.computations[comp_name].instructions:
            if ins.opcode == "while":
                body = (calls(ins, "body") or [""])[0]
                cond = (calls(ins, "condition") or [""])[0]
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
            elif ins.opcode == "conditional":
                for idx, _ in ins.shape.indices():
                    group = list(at.get((ins.name, idx), []))
                    for c in branches(ins):
                        cc = hlo.computations.get(c)
                        if cc is not None and cc.root is not None:
                            group += at.get((cc.root.name, idx), [])
                    link(group)
    for ins in hlo.instructions.values():
        for operand_no, operand_index, out_index in in_place_pairs(hlo, ins):
            if operand_no < len(ins.operands):
                link(
                    at.get((ins.name, out_index), [])
                    + at.get((ins.operands[operand_no], operand_index), [])
                )

    groups: dict[int, list[int]] = defaultdict(list)
    for vid in sorted(kept):
        groups[uf.find(vid)].append(vid)
    return Aliasing(
        buffers={root: groups[root] for root in sorted(groups)},
        confirmed=confirmed,
        unconfirmed=unconfirmed,
    )
