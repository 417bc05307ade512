"""Reading XLA's text dump files: their lines, and short quotes of a line for error messages."""

from __future__ import annotations

from pathlib import Path

from mallocgame.errors import InputError


def read_lines(path: Path) -> list[str]:
    """The lines of ``path``; an :class:`InputError` naming it when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", str(path)) from None


def clip(line: str, n: int = 80) -> str:
    """``line`` stripped, quoted and cut to ``n`` characters, for an error message."""
    s = line.strip()
    return repr(s if len(s) <= n else s[: n - 3] + "...")
