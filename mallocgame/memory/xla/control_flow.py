"""The control flow of an HLO module: which computations run how often (while-loop trip
counts), in the breadth-first order the reader visits them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypedDict

from mallocgame.memory.xla.hlo import HloInstruction, HloModule, calls
from mallocgame.memory.xla.shapes import HloError

#: The largest while-loop trip count believed (more would make FLOP counts meaningless).
MAX_TRIP_COUNT = 10**12

_TRIP_RE = re.compile(r'known_trip_count\\?"\s*:\s*\{\s*\\?"n\\?"\s*:\s*\\?"?(\d+)')

# One ``source["while_loops"]`` entry of the workload ("while" is a keyword: functional form).
WhileLoop = TypedDict("WhileLoop", {"while": str, "trip_count": int | None, "known": bool})


@dataclass
class ControlFlow:
    order: list[str]  # the entry, then the computations it runs, breadth-first
    multiplier: dict[str, float]  # how often each computation of ``order`` runs
    loops: list[WhileLoop]
    unknown_trips: int  # while loops without a known trip count (counted once)


def control_flow(hlo: HloModule) -> ControlFlow:
    """Walk the entry and, breadth-first, the bodies and conditions of ``while`` loops, the
    branches of ``conditional`` and the callees of ``call`` and ``async-start``. A loop body
    runs ``known_trip_count`` times (from ``backend_config``; 1 when unknown), its condition one
    time more; fused and embedded computations (``to_apply`` of reduce, ...) are not walked."""
    loops: list[WhileLoop] = []
    mult: dict[str, float] = {hlo.entry: 1.0}
    order = [hlo.entry]
    unknown_trips = 0
    for comp_name in order:
        comp = hlo.computations[comp_name]
        for ins in comp.instructions:
            if ins.opcode == "while":
                body = (calls(ins, "body") or [""])[0]
                cond = (calls(ins, "condition") or [""])[0]
                m = _TRIP_RE.search(ins.attrs.get("backend_config", ""))
                if m and (len(m.group(1)) > 13 or int(m.group(1)) > MAX_TRIP_COUNT):
                    raise HloError(
                        f"while {ins.name!r} has known_trip_count {m.group(1)[:20]}, beyond "
                        f"the supported {MAX_TRIP_COUNT}",
                        ins.line,
                    )
                trip = int(m.group(1)) if m else None
                unknown_trips += trip is None
                loops.append({"while": ins.name, "trip_count": trip, "known": trip is not None})
                n = float(trip if trip is not None else 1)
                for c, k in ((body, n), (cond, n + 1 if trip is not None else 1.0)):
                    if c in hlo.computations and c not in mult:
                        mult[c] = mult[comp_name] * k
                        order.append(c)
            elif ins.opcode in ("conditional", "call", "async-start"):
                for c in branches(ins):
                    if c in hlo.computations and c not in mult:
                        mult[c] = mult[comp_name]
                        order.append(c)
    return ControlFlow(order=order, multiplier=mult, loops=loops, unknown_trips=unknown_trips)


def branches(ins: HloInstruction) -> list[str]:
    """The computations a ``conditional``, ``call`` or ``async-start`` may run."""
    return (
        calls(ins, "branch_computations")
        + calls(ins, "true_computation")
        + calls(ins, "false_computation")
        + calls(ins, "to_apply")
        + calls(ins, "calls")
    )
