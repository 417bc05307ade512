"""Values merged into one buffer: while carries, in-place scan outputs, dynamic-update-slice."""

from __future__ import annotations

import numpy as np
import pytest

from mallocgame.memory import xla
from mallocgame.memory.xla.aliasing import InPlacePair, UnionFind, in_place_pairs

from .conftest import hlo_of

pytest.importorskip("jax")


def test_while_carry_is_one_buffer_spanning_the_loop(dumps):
    wl = xla.read_dump_folder(dumps["fori"])
    hlo = hlo_of(wl)
    (loop,) = wl.source["while_loops"]
    assert loop["trip_count"] == 7 and loop["known"]
    pos = {n: t for t, n in enumerate(wl.instr_names)}
    w = next(pos[i.name] for i in hlo.instructions.values() if i.opcode == "while")
    body = hlo.computations[hlo.instructions[loop["while"]].attrs["body"].lstrip("%")]
    body_pos = [pos[i.name] for i in body.instructions]
    # Flops inside the loop count trip-count times.
    assert wl.instr_flops.max() == 7 * 2 * 64**3
    dot = int(np.argmax(wl.instr_flops))
    assert dot in body_pos
    reads = wl.access_buffer[wl.access_ptr[dot] : wl.access_ptr[dot + 1]]
    carry = min(reads.tolist(), key=lambda b: wl.starts[b])
    assert wl.sizes[carry] == 64 * 64 * 4
    # The carry starts before the loop (its init copy) and ends after the while instruction.
    assert wl.starts[carry] < min(body_pos) and wl.ends[carry] > w
    # ... and is the only 64x64 buffer other than the parameter that lives across the loop.
    across = [
        b
        for b in range(wl.num_buffers)
        if wl.sizes[b] == 64 * 64 * 4 and wl.starts[b] < min(body_pos) and wl.ends[b] > w
    ]
    assert len(across) == 2 and carry in across
    assert wl.source["alias_edges_confirmed"] >= 4
    assert wl.source["alias_edges_unconfirmed"] == 0


def test_scan_stacked_output_updated_in_place(dumps):
    wl = xla.read_dump_folder(dumps["scan"])
    (loop,) = wl.source["while_loops"]
    assert loop["trip_count"] == 11
    stacked = np.flatnonzero(wl.sizes == 11 * 16 * 4)
    assert stacked.size == 1  # the ys buffer: in-place dynamic-update-slice, one buffer
    b = int(stacked[0])
    ptr, instr, nbytes = wl.accesses_of()
    hlo = hlo_of(wl)
    body = hlo.computations[hlo.instructions[loop["while"]].attrs["body"].lstrip("%")]
    body_names = {i.name for i in body.instructions}
    pairs = zip(instr[ptr[b] : ptr[b + 1]], nbytes[ptr[b] : ptr[b + 1]], strict=True)
    in_loop = [x for i, x in pairs if wl.instr_names[i] in body_names]
    # Each of the 11 iterations writes one 16-float row, nothing more.
    assert sum(in_loop) == 11 * 16 * 4
    wl.check()


def test_dynamic_update_slice_merged_with_its_operand(dumps):
    wl = xla.read_dump_folder(dumps["dus"])
    # x, v, i, and ONE buffer for the dot output updated in place by dynamic-update-slice.
    assert wl.num_buffers == 4
    assert sorted(wl.sizes.tolist()) == [4, 4 * 64 * 4, 64 * 64 * 4, 64 * 64 * 4]
    assert wl.source["alias_edges_confirmed"] == 1
    last = wl.num_instructions - 1  # the update writes only the 4 updated rows
    acc = dict(
        zip(
            wl.access_buffer[wl.access_ptr[last] :].tolist(),
            wl.access_bytes[wl.access_ptr[last] :].tolist(),
            strict=True,
        )
    )
    merged = int(np.flatnonzero((wl.sizes == 64 * 64 * 4) & (wl.starts > 0))[0])
    assert acc[merged] == 4 * 64 * 4


def test_in_place_pairs_of_dynamic_update_slice(dumps):
    wl = xla.read_dump_folder(dumps["dus"])
    hlo = hlo_of(wl)
    last = hlo.instructions[wl.instr_names[-1]]
    # The last instruction (possibly a fusion rooted in it) updates its operand 0 in place.
    assert InPlacePair(0, (), ()) in in_place_pairs(hlo, last)


def test_union_find_keeps_the_smallest_member_as_representative():
    uf = UnionFind([5, 3, 9, 1])
    assert uf.union(9, 5) and uf.union(5, 3)
    assert not uf.union(3, 9)  # already one set
    assert {uf.find(x) for x in (3, 5, 9)} == {3} and uf.find(1) == 1
