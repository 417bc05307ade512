"""Read an XLA dump folder into a :class:`~mallocgame.memory.workload.Workload`.

XLA writes, per compiled module (``--xla_dump_to=DIR --xla_dump_hlo_as_text``, or
``compile(compiler_options={"xla_dump_to": DIR, "xla_dump_hlo_as_text": True})`` in JAX)::

    module_NNNN.NAME.cpu_after_optimizations.txt                       scheduled HLO text
    module_NNNN.NAME.cpu_after_optimizations-buffer-assignment.txt     allocations, values, offsets
    module_NNNN.NAME.cpu_after_optimizations-buffer-assignment-values.txt   each value's positions
    module_NNNN.NAME.cpu_after_optimizations-live-range.txt            HloLiveRange

What is read from which file, the aliasing (merge) rule, and the FLOP and byte rules are
documented in ``docs/xla-extraction.md``. In short:

- A *value* (XLA's HloValue) has a size and an allocation/offset (buffer-assignment file), a
  live range ``start-end`` in positions of the flattened schedule, both ends inclusive
  (live-range file), and the positions where it appears (values file).
- Values that XLA must keep at one address form one buffer: the aliasing rules of XLA's
  HloAliasAnalysis (while-loop init/parameter/root/result, conditional branch roots, in-place
  operations such as dynamic-update-slice and scatter, also inside fusions, custom-call
  ``output_to_operand_aliasing``), each edge confirmed by the buffer assignment (same allocation
  and offset). Tuple elements, get-tuple-element and bitcast are positions of one value already.
  Entry parameter/output donation (``input_output_alias``) and plain reuse of an allocation by
  values with disjoint live ranges are *not* merged.
- A buffer's interval is ``[min start, max end + 1)`` over its values.
- One workload instruction per entry of HloLiveRange's InstructionSequence (which flattens while
  bodies/conditions and conditional branches into the entry schedule); instructions inside a
  while body are weighted by the loop's known trip count.

The modules, one per piece of XLA's output:

- :mod:`.shapes`: HLO shapes (``f32[64,64]{1,0}``, tuples) and shape indices.
- :mod:`.hlo`: the scheduled HLO text (computations, instructions).
- :mod:`.buffer_assignment`: values, allocations, offsets, sizes; each value's positions.
- :mod:`.live_range`: HloLiveRange (schedule, live ranges, XLA's peak).
- :mod:`.dump`: finding the modules and their files in a dump folder.
- :mod:`.control_flow`: while/conditional structure, trip counts, computation multipliers.
- :mod:`.aliasing`: the must-alias rules that merge values into buffers.
- :mod:`.cost_analysis`: FLOPs and bytes read/written per instruction.
- :mod:`.assemble`: the Workload from the parsed files; :func:`read_dump_folder`.
- :mod:`.from_jax`: compiling a JAX function to a dump folder (:func:`compile_to_dump`).
- :mod:`.text`: reading the text files, quoting lines in errors.
"""

from mallocgame.memory.xla.assemble import READER, READER_VERSION, read_dump_folder
from mallocgame.memory.xla.buffer_assignment import (
    HloValueRecord,
    parse_buffer_assignment,
    parse_values,
)
from mallocgame.memory.xla.dump import DumpModule, find_modules
from mallocgame.memory.xla.from_jax import compile_to_dump, workload_from_jax
from mallocgame.memory.xla.hlo import HloComputation, HloInstruction, HloModule, parse_hlo_module
from mallocgame.memory.xla.live_range import LiveRanges, parse_live_range
from mallocgame.memory.xla.shapes import Shape, parse_shape

__all__ = [
    "read_dump_folder",
    "find_modules",
    "compile_to_dump",
    "workload_from_jax",
    "DumpModule",
    "Shape",
    "parse_shape",
    "parse_hlo_module",
    "READER",
    "READER_VERSION",
    "HloComputation",
    "HloInstruction",
    "HloModule",
    "HloValueRecord",
    "LiveRanges",
    "parse_buffer_assignment",
    "parse_live_range",
    "parse_values",
]
