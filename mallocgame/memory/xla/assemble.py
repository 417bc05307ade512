"""Assembling the parsed files of one module into a :class:`Workload`: values kept, buffers,
per-instruction FLOPs and accesses, and the ``source`` record; :func:`read_dump_folder`."""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.memory.workload import Workload
from mallocgame.memory.xla.aliasing import alias_values
from mallocgame.memory.xla.buffer_assignment import (
    HloValueRecord,
    Position,
    parse_buffer_assignment,
    parse_values,
)
from mallocgame.memory.xla.control_flow import control_flow
from mallocgame.memory.xla.cost_analysis import NO_ACCESS, CostAnalyzer
from mallocgame.memory.xla.dump import DumpModule, select_module
from mallocgame.memory.xla.hlo import HloModule, parse_hlo_module
from mallocgame.memory.xla.live_range import LiveRanges, parse_live_range
from mallocgame.memory.xla.shapes import HloError
from mallocgame.memory.xla.text import clip

READER = "mallocgame.memory.xla.read_dump_folder"
READER_VERSION = 1


def read_dump_folder(path: str | os.PathLike[str], module: str | None = None) -> Workload:
    """Read one compiled module of an XLA dump folder as a :class:`Workload`.

    ``module`` picks the module by (a substring of) its file prefix, e.g. ``"jit_step"`` or
    ``"module_0006"``; an exact module name wins over substring matches. Without it, or when
    several match, the module with the most values in its buffer assignment is read, and
    ``source["module_candidates"]`` lists the others. Raises :class:`InputError` naming the
    file, line and field for missing, truncated or malformed files.
    """
    folder = Path(path)
    dm, candidates = select_module(folder, module)
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
    return assemble(dm, hlo, ba, positions, lr, candidates)


@dataclass
class _Place:
    """Where the assembly is: the file, line and field an unexpected error is reported at."""

    file: str
    line: int | None = None
    field: str | None = None

    def at(self, file: str, line: int | None, field: str) -> None:
        self.file, self.line, self.field = file, line, field


def assemble(
    dm: DumpModule,
    hlo: HloModule,
    ba: dict[int, HloValueRecord],
    positions: dict[int, list[Position]],
    lr: LiveRanges,
    candidates: list[str],
) -> Workload:
    """The workload of module ``dm`` from its four parsed files. Files that parse but do not
    agree with each other raise :class:`InputError` naming the file and line (or field)."""
    f_hlo = str(dm.files["hlo"])
    place = _Place(f_hlo)
    try:
        return _assemble(dm, hlo, ba, positions, lr, candidates, place)
    except HloError as e:
        raise InputError(e.message, f_hlo, line=e.line, field="instruction") from None
    except InputError:
        raise
    except (ArithmeticError, LookupError, ValueError, RecursionError) as e:
        # A last resort for inconsistencies no check above names: still one line, with a place.
        raise InputError(
            f"the dump's files do not agree here ({type(e).__name__}: {clip(str(e), 120)})",
            place.file,
            line=place.line,
            field=place.field,
        ) from None


def _assemble(
    dm: DumpModule,
    hlo: HloModule,
    ba: dict[int, HloValueRecord],
    positions: dict[int, list[Position]],
    lr: LiveRanges,
    candidates: list[str],
    place: _Place,
) -> Workload:
    f_lr, f_ba = str(dm.files["live_range"]), str(dm.files["buffer_assignment"])
    f_hlo = str(dm.files["hlo"])
    for t, name in enumerate(lr.sequence):
        if name not in hlo.instructions:
            raise InputError(
                f"scheduled instruction {name!r} is not in {dm.files['hlo'].name}",
                f_lr,
                line=t + 3,
                field="InstructionSequence",
            )
    an = CostAnalyzer(hlo)

    # ---- values kept: positive size and a live range
    skipped: dict[str, int] = defaultdict(int)
    kept: dict[int, HloValueRecord] = {}
    vrange: dict[int, tuple[int, int]] = {}
    for vid, v in ba.items():
        place.at(f_ba, v.line, "value")
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

    at: dict[Position, list[int]] = defaultdict(list)
    for vid in kept:
        for pos in positions.get(vid) or [(kept[vid].instr, kept[vid].index)]:
            at[pos].append(vid)

    # ---- control flow (multipliers) and aliasing (values -> buffers)
    place.at(f_hlo, None, "while")
    cf = control_flow(hlo)
    mult = cf.multiplier
    place.at(f_hlo, None, "aliasing")
    aliasing = alias_values(hlo, kept, at, cf.order)

    # ---- buffers
    buf_of_value: dict[int, int] = {}
    ids, sizes, starts, ends, names = [], [], [], [], []
    for b, (root, members) in enumerate(aliasing.buffers.items()):
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
        place.at(f_hlo, ins.line, "instruction")
        k = mult.get(ins.computation, 1.0)
        flops.append(an.flops(ins) * k)
        touched: dict[int, float] = defaultdict(float)
        if ins.opcode not in NO_ACCESS:
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
        if not (math.isfinite(flops[-1]) and all(map(math.isfinite, touched.values()))):
            raise HloError(f"{ins.name!r}: FLOPs or bytes beyond the float range", ins.line)
        for bb in sorted(touched):
            acc_buf.append(bb)
            acc_bytes.append(touched[bb])
        ptr.append(len(acc_buf))
    place.at(f_hlo, None, "header")

    n_io_alias = (
        len(re.findall(r"\{[\d,]*\}:\s*\(\d+,", hlo.header.split("input_output_alias=")[1]))
        if ("input_output_alias=" in hlo.header)
        else 0
    )
    source: dict[str, Any] = {
        "reader": READER,
        "reader_version": READER_VERSION,
        **_jax_versions(),
        "versions_note": "jax/jaxlib installed where the reader ran "
        "(the dump itself does not record them)",
        "xla_module": hlo.name,
        "module_file_prefix": dm.prefix,
        "module_id": dm.module_id,
        "stage": dm.stage,
        "module_candidates": candidates,
        "module_selection": "largest by value count" if len(candidates) > 1 else "only match",
        "folder": str(dm.folder),
        "files": {k: str(v) for k, v in sorted(dm.files.items())},
        "live_range_convention": "XLA [start, end] inclusive -> workload [start, min(end + 1, I))",
        "merge_rule": "XLA must-alias values (while carries, conditional roots, in-place ops) "
        "confirmed by same allocation+offset form one buffer; input/output donation and "
        "disjoint allocation reuse are not merged",
        "values_total": len(ba),
        "values_kept": len(kept),
        "values_skipped": dict(skipped),
        "alias_edges_confirmed": aliasing.confirmed,
        "alias_edges_unconfirmed": aliasing.unconfirmed,
        "input_output_aliases_not_merged": n_io_alias,
        "while_loops": cf.loops,
        "while_loops_unknown_trip_count": cf.unknown_trips,
        "trip_count_assumption": "known_trip_count from backend_config; 1 when unknown",
        "xla_peak_live_bytes": lr.peak_bytes,
        "xla_peak_position": lr.peak_position,
    }
    try:
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
    except InputError as e:
        # Workload.check names the field; the file is the one the field was read from.
        file = {"size": f_ba, "id": f_ba, "lower": f_lr, "upper": f_lr}.get(e.field or "", f_hlo)
        raise InputError(e.message, file, field=e.field) from None


def _jax_versions() -> dict[str, str | None]:
    """The jax and jaxlib installed here (``None`` each without jax)."""
    try:
        # Deferred: jax is heavy and optional; the reader works without it.
        import jax
        import jaxlib

        versions = {"jax": jax.__version__, "jaxlib": getattr(jaxlib, "version", None)}
        if versions["jaxlib"] is not None and not isinstance(versions["jaxlib"], str):
            versions["jaxlib"] = getattr(versions["jaxlib"], "__version__", str(versions["jaxlib"]))
    except Exception:  # noqa: BLE001 - the reader works without jax
        versions = {"jax": None, "jaxlib": None}
    return versions
