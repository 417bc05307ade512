"""The ``mallocgame`` command: parsing only, one module per area, calling the packages below."""

from mallocgame.cli.main import main

__all__ = ["main"]
