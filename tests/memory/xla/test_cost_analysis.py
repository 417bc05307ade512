"""FLOPs and bytes of single instructions."""

from __future__ import annotations

from mallocgame.memory import xla
from mallocgame.memory.xla.cost_analysis import CostAnalyzer

from .conftest import DATA, K, M, N, dump_lines


def test_checked_in_flops_and_bytes():
    hlo = xla.parse_hlo_module(dump_lines(DATA, "")[0])
    an = CostAnalyzer(hlo)
    entry = hlo.computations[hlo.entry].instructions
    assert sum(an.flops(i) for i in entry) == 2 * M * N * K + M * N  # the dot, one tanh each
    for ins in entry:
        for k, op in enumerate(ins.operands):
            (_, leaf), *_ = hlo.instructions[op].shape.leaves()
            assert an.read_bytes(ins, k, (), leaf) == leaf.nbytes  # no slicing: read in full
        if ins.opcode != "parameter":
            assert an.write_bytes(ins, (), ins.shape) == ins.shape.nbytes
