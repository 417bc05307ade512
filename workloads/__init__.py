"""Workloads: the zoo of JAX programs that are compiled by XLA into
:class:`mallocgame.Workload`s."""

from workloads.zoo import ZOO, build, extract, list_zoo

__all__ = ["ZOO", "build", "extract", "list_zoo"]
