"""FLOPs of an HLO instruction, and the bytes it reads of each operand and writes of each
output, after XLA's HloCostAnalysis (slices, in-place updates and fusions included)."""

from __future__ import annotations

import math
import re
from collections import defaultdict

from mallocgame.memory.xla.hlo import HloInstruction, HloModule, calls, operand
from mallocgame.memory.xla.shapes import MAX_ELEMENTS, HloError, Index, Shape

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
NO_ACCESS = frozenset(
    """parameter constant get-tuple-element bitcast while conditional call after-all
    add-dependency opt-barrier optimization-barrier domain""".split()
)
_SLICING = frozenset({"slice", "dynamic-slice", "gather"})


def _int_list(text: str | None) -> list[int]:
    if not text:
        return []
    return [int(x) for x in re.findall(r"-?\d+", text)]


def _window_size(ins: HloInstruction) -> int:
    m = re.search(r"size=([\dx]+)", ins.attrs.get("window", ""))
    if not m:
        return 1
    parts = m.group(1).split("x")
    if not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise HloError(f"{ins.name!r} has a bad window size {m.group(1)[:40]!r}", ins.line)
    n = math.prod(int(p) for p in parts)
    if n > MAX_ELEMENTS:
        raise HloError(f"{ins.name!r} has a window of more than 2^62 elements", ins.line)
    return n


class CostAnalyzer:
    """FLOPs and bytes of the instructions of one module (caches per computation)."""

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
            return sum(self.comp_flops(c) for c in calls(ins, "calls"))
        if op == "dot":
            lhs = self.operand_shape(ins, 0)
            k = 1
            for d in _int_list(ins.attrs.get("lhs_contracting_dims")) if lhs else []:
                if not 0 <= d < len(lhs.dims):
                    raise HloError(
                        f"dot {ins.name!r}: lhs_contracting_dims has {d}, but the lhs has rank "
                        f"{len(lhs.dims)}",
                        ins.line,
                    )
                k *= lhs.dims[d]
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
            return 2.0 * out.elements_count * _window_size(ins) * fin
        if op in _NO_FLOP:
            return 0.0
        if op == "reduce":
            src = self.operand_shape(ins, 0)
            return (
                float(
                    self.arith_ops(calls(ins, "to_apply")[0]) * (src.elements_count if src else 0)
                )
                if calls(ins, "to_apply")
                else 0.0
            )
        if op == "reduce-window":
            window = _window_size(ins)
            n_out = sum(s.elements_count for _, s in out.leaves())
            return float(n_out * window * self.arith_ops((calls(ins, "to_apply") or [""])[0]))
        if op == "select-and-scatter":
            src = self.operand_shape(ins, 1)
            return float((src.elements_count if src else 0) * (_window_size(ins) + 1))
        if op == "scatter":
            upd = self.operand_shape(ins, len(ins.operands) - 1)
            return float(
                (upd.elements_count if upd else 0)
                * self.arith_ops((calls(ins, "to_apply") or [""])[0])
            )
        if op == "map":
            return float(out.elements_count * self.arith_ops((calls(ins, "to_apply") or [""])[0]))
        if op == "sort":
            first = self.operand_shape(ins, 0)
            dims = _int_list(ins.attrs.get("dimensions"))
            n = first.dims[dims[0]] if first and dims and dims[0] < len(first.dims) else 2
            return float((first.elements_count if first else 0) * max(1.0, math.log2(max(n, 2))))
        # element-wise (including compare, select, transcendental ops, all-reduce, ...)
        return float(sum(s.elements_count for _, s in out.leaves()))

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

    def read_bytes(self, ins: HloInstruction, k: int, index: Index, leaf: Shape) -> int:
        """Bytes ``ins`` reads of leaf ``index`` (shape ``leaf``) of its operand ``k``."""
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
            comps = calls(ins, "calls")
            comp = self.mod.computations.get(comps[0]) if comps else None
            if comp is not None and k in comp.parameters:
                return self._param_read_bytes(comp.name, comp.parameters[k], full)
        return full

    def write_bytes(self, ins: HloInstruction, index: Index, leaf: Shape) -> int:
        """Bytes ``ins`` writes of leaf ``index`` (shape ``leaf``) of its output."""
        full = leaf.nbytes
        src, src_index = ins, index
        if ins.opcode == "fusion":
            comps = calls(ins, "calls")
            comp = self.mod.computations.get(comps[0]) if comps else None
            if comp is None or comp.root is None:
                return full
            src, src_index = self.mod.follow_tuple(comp.root, index)
            for _ in range(10_000):
                if src.opcode != "bitcast":
                    break
                src = operand(self.mod, src, 0)
        if src.opcode == "dynamic-update-slice" and not src_index:
            upd = self.operand_shape(src, 1)
            return min(full, upd.nbytes) if upd else full
        if src.opcode == "scatter":
            upd = self.operand_shape(src, len(src.operands) - 1)
            return min(full, upd.nbytes) if upd else full
        return full
