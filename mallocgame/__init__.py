"""mallocgame: resource-allocation problems of ML compilers as single-player games."""

from mallocgame.errors import InputError, MallocGameError
from mallocgame.memory.workload import Workload

__all__ = ["InputError", "MallocGameError", "Workload"]
__version__ = "0.1.0"
