"""Emitters: the mapping CSV, the JSON summary, and XLA's ``MsaSortOrderOverrides`` text proto.

The text proto follows ``xla/service/memory_space_assignment/memory_space_assignment.proto``
(package ``xla.memory_space_assignment``): one ``MsaSortOrderOverride`` per buffer that the
mapping puts in fast memory, in the order the solver assigned them, each matching the buffer's
defining instruction by name (and tuple index and exact size) with ``assign_first: true``. XLA
gives earlier overrides higher priority, so its memory-space assignment considers our fast
buffers first, in our order.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.io import atomic_write_text
from mallocgame.memory.csvio import write_solution_csv
from mallocgame.memory.problem import Solution

_NAME = re.compile(r"^(?P<inst>[^{}]+)\{(?P<index>[0-9, ]*)\}$")


def _proto_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def msa_sort_order_overrides(solution: Solution, order: np.ndarray | None = None) -> str:
    """The text proto for ``solution`` (fast buffers first, in ``order`` if given)."""
    w = solution.problem.workload
    fast = np.flatnonzero(solution.offsets >= 0)
    if order is not None:
        pos = np.empty(w.num_buffers, dtype=np.int64)
        pos[np.asarray(order)] = np.arange(w.num_buffers)
        fast = fast[np.argsort(pos[fast], kind="stable")]
    lines = [
        "# proto-file: xla/service/memory_space_assignment/memory_space_assignment.proto",
        "# proto-message: xla.memory_space_assignment.MsaSortOrderOverrides",
        f"# mallocgame: workload {w.name!r}, solver {solution.solver!r}, "
        f"{len(fast)} buffers in fast memory",
    ]
    for b in fast.tolist():
        name = w.names[b] or f"buffer{w.ids[b]}"
        m = _NAME.match(name)
        inst, index = (m.group("inst"), m.group("index")) if m else (name, "")
        lines.append("overrides {")
        lines.append("  hlo_position_matcher {")
        lines.append(f"    instruction_name_regex: {_proto_string(re.escape(inst))}")
        if index.strip():
            lines.append("    tuple_index {")
            for k in index.split(","):
                lines.append(f"      index: {int(k)}")
            lines.append("    }")
        lines.append(f"    size_gte: {int(w.sizes[b])}")
        lines.append(f"    size_lte: {int(w.sizes[b])}")
        lines.append("  }")
        lines.append("  override_options {")
        lines.append("    assign_first: true")
        lines.append("  }")
        lines.append("}")
    return "\n".join(lines) + "\n"


def write_outputs(
    solution: Solution,
    out_csv: str | os.PathLike[str],
    summary: dict[str, Any] | None = None,
    order: np.ndarray | None = None,
    proto: bool = True,
) -> dict[str, str]:
    """Write ``OUT.csv``, ``OUT.json`` and (optionally) ``OUT.msa_overrides.txtpb`` atomically."""
    out_csv = Path(out_csv)
    write_solution_csv(out_csv, solution.problem.workload, solution.offsets)
    paths = {"csv": str(out_csv)}
    stem = out_csv.with_suffix("")
    summary = summary if summary is not None else solution.summary()
    json_path = stem.with_name(stem.name + ".json")
    atomic_write_text(json_path, json.dumps(summary, indent=2, default=_json_default) + "\n")
    paths["json"] = str(json_path)
    if proto:
        proto_path = stem.with_name(stem.name + ".msa_overrides.txtpb")
        atomic_write_text(proto_path, msa_sort_order_overrides(solution, order))
        paths["msa_overrides"] = str(proto_path)
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, default=_json_default)
