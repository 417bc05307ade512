"""What the suites' reports share: numbers formatted for markdown tables, pictures saved as
PNG, and the generated section of a project README (``--readme``)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from mallocgame.errors import InputError
from mallocgame.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

README_BEGIN = "<!-- mallocgame-bench:{key}:begin -->"
README_END = "<!-- mallocgame-bench:{key}:end -->"


def fmt(v: float | None, spec: str = ".4g", scale: float = 1.0, suffix: str = "") -> str:
    """``v * scale`` in format ``spec`` with ``suffix``; ``-`` for None, inf or NaN."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v * scale:{spec}}{suffix}"


def pct(v: float | None, digits: int = 2) -> str:
    """A fraction as a percentage (``0.125`` -> ``12.50%``)."""
    return fmt(v, f".{digits}f", 100.0, "%")


def fmt_bytes(n: float | None) -> str:
    """Bytes in B, KiB, MiB or GiB."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def save_png(fig: Figure, path: Path, dpi: int = 110) -> str:
    """Write ``fig`` to ``path`` as PNG (atomically), close it; returns the path."""
    import matplotlib.pyplot as plt  # deferred: matplotlib, only when drawing

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def update_readme(readme: str | Path, key: str, section: str) -> bool:
    """Put ``section`` between the ``mallocgame-bench:KEY`` markers of ``readme`` (replacing what
    is there), or, without markers, append it with markers at the end of the ``## Results``
    section (else of the file). Written atomically; returns True if the file changed."""
    readme = Path(readme)
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the README: {e.strerror}", readme) from None
    begin, end = README_BEGIN.format(key=key), README_END.format(key=key)
    block = f"{begin}\n{section.rstrip()}\n{end}"
    i, j = text.find(begin), text.find(end)
    if (i < 0) != (j < 0) or (i >= 0 and j < i):
        raise InputError(f"unbalanced markers {begin!r} / {end!r}", readme)
    if i >= 0:
        new = text[:i] + block + text[j + len(end) :]
    else:
        lines = text.splitlines(keepends=True)
        at = len(lines)
        start = next((k for k, ln in enumerate(lines) if ln.strip() == "## Results"), None)
        if start is not None:
            at = next(
                (k for k in range(start + 1, len(lines)) if lines[k].startswith("## ")), len(lines)
            )
        head = "".join(lines[:at]).rstrip("\n") + "\n\n"
        tail = "".join(lines[at:])
        new = head + block + "\n" + ("\n" + tail if tail else "")
    if new == text:
        return False
    atomic_write_text(readme, new)
    return True
