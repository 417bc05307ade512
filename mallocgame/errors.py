"""Errors that name the problem and the place (file, line, field)."""

from __future__ import annotations

from typing import Any


class MallocGameError(Exception):
    """Base class of every error that mallocgame raises on purpose."""


class InputError(MallocGameError, ValueError):
    """Bad input: the message names the file, the line and the field where known.

    ``str(err)`` is one line: ``FILE:LINE: field 'F': MESSAGE``.
    """

    def __init__(
        self,
        message: str,
        where: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ):
        self.message = message
        self.where = where
        self.line = line
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        place = ""
        if self.where:
            place = str(self.where)
            if self.line is not None:
                place += f":{self.line}"
            place += ": "
        elif self.line is not None:
            place = f"line {self.line}: "
        fld = f"field '{self.field}': " if self.field else ""
        # One line whatever the parts hold (a file name or a message with a newline in it).
        return " ".join(f"{place}{fld}{self.message}".splitlines())


def short_repr(x: Any, n: int = 60) -> str:
    """``repr(x)`` cut to ``n`` characters, for an error message (an int too long to print or
    a structure too deep gives its type's name)."""
    try:
        r = repr(x)
    except (ValueError, RecursionError):
        r = f"<{type(x).__name__}>"
    return r if len(r) <= n else r[: n - 3] + "..."
