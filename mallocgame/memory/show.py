"""The memory map as a picture: fast buffers as rectangles in time x address."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mallocgame.io import atomic_write_bytes


def draw_memory_map(
    starts: np.ndarray,
    ends: np.ndarray,
    sizes: np.ndarray,
    offsets: np.ndarray,
    capacity: int,
    out: str | os.PathLike[str],
    benefit: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Draw fast buffers (offset >= 0) as rectangles ``[start, end) x [offset, offset+size)``,
    coloured by ``benefit`` (e.g. the time each saves per byte) when given. Writes a PNG (or any
    format matplotlib knows by the suffix) atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    fast = np.flatnonzero(np.asarray(offsets) >= 0)
    fig, ax = plt.subplots(figsize=(10, 5), dpi=120)
    rects = [Rectangle((starts[i], offsets[i]), ends[i] - starts[i], sizes[i]) for i in fast]
    if benefit is not None and len(fast):
        vals = np.asarray(benefit, dtype=float)[fast]
        pc = PatchCollection(rects, cmap="viridis", edgecolor="black", linewidth=0.3)
        pc.set_array(vals)
        ax.add_collection(pc)
        fig.colorbar(pc, ax=ax, label="time saved per byte (s/B)")
    else:
        ax.add_collection(
            PatchCollection(rects, facecolor="tab:blue", edgecolor="black", linewidth=0.3)
        )
    t0 = float(np.min(starts)) if len(starts) else 0.0
    t1 = float(np.max(ends)) if len(ends) else 1.0
    ax.set_xlim(t0, t1)
    ax.set_ylim(0, capacity)
    ax.axhline(capacity, color="red", linewidth=0.8)
    ax.set_xlabel("schedule position")
    ax.set_ylabel("fast-memory offset (bytes)")
    n_slow = len(offsets) - len(fast)
    ax.set_title(title or f"{len(fast)} buffers in fast memory, {n_slow} in slow memory")
    fig.tight_layout()
    buf = io.BytesIO()
    fmt = Path(out).suffix.lstrip(".") or "png"
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
