"""Joining a Ray cluster, for the paths that run on one (``bench ... --ray``, ``train --ray``).

Ray is optional (the ``ray`` extra) and imported only through :func:`import_ray`, on those paths.
"""

from __future__ import annotations

import logging
from types import ModuleType

from mallocgame.errors import InputError

__all__ = ["RAY_MISSING", "connect", "import_ray"]

RAY_MISSING = "ray is not installed: pip install 'mallocgame[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module; an :class:`InputError` on ``ray`` when it is not installed."""
    try:
        import ray  # deferred: optional (the ray extra), and heavy
    except ImportError:
        raise InputError(RAY_MISSING, field="ray") from None
    return ray


def connect(ray: ModuleType, address: str) -> bool:
    """Join the cluster ``address`` names: ``auto`` joins the running one (``ray start``,
    ``RAY_ADDRESS``) or else starts one on this machine. True when this call started Ray here
    (the caller shuts it down); a process already connected stays on its cluster."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING}
    if address == "auto":
        try:
            ray.init(address="auto", **quiet)
        except ConnectionError:
            ray.init(include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, ValueError) as e:
        raise InputError(f"cannot join the Ray cluster at {address}: {e}", field="ray") from None
    return True
