"""The memory-mapping game: readers -> :class:`Workload` -> game -> judges -> emitters.

- readers: :mod:`.xla` (XLA dumps and JAX functions), :mod:`.csvio` (minimalloc CSV),
  :mod:`.workload` (the saved workload file), :mod:`.sources` (one spec for all of them);
- the problem: :mod:`.targets` (the hardware presets), :mod:`.cost` (the roofline cost model),
  :mod:`.problem` (a workload on a target at a capacity);
- players: :mod:`.solvers` (one registry: heuristics, packing, local search, the agent);
- judges and outputs: :mod:`.validate`, :mod:`.emit`, :mod:`.show`;
- learning: :mod:`.env` (the game as an agent environment), :mod:`.splits`, :mod:`.train`.
"""
