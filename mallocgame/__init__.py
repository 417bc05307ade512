"""mallocgame: resource-allocation problems of ML compilers as single-player games.

The root package is the shared floor of the house (:mod:`.errors`, :mod:`.io`,
:mod:`.registry`); it imports no game, so ``from mallocgame import _native`` loads only the
native core. ``mallocgame.Workload`` is looked up on first use.
"""

import importlib

from mallocgame.errors import InputError, MallocGameError

__all__ = ["InputError", "MallocGameError", "Workload"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Workload":
        # bound late, by name: the floor of the house does not depend on a game
        return importlib.import_module("mallocgame.memory.workload").Workload
    raise AttributeError(f"module 'mallocgame' has no attribute {name!r}")
