"""Pictures of rank configs: a heat map of the ranks per layer (and per key-value group).

:func:`heatmap_bytes` draws one from rank lists (``mallocgame rank`` writes one beside each
config, ``mallocgame bench rank`` one of each budget's best config); :func:`write_heatmap`
draws a :class:`~mallocgame.rank.config.RankConfig`'s to a file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mallocgame.errors import InputError
from mallocgame.io import atomic_write_bytes
from mallocgame.rank.config import RankConfig


def heatmap_bytes(
    r_qk: list[int],
    r_v: list[int],
    head_dim: int,
    title: str,
    fmt: str,
    groups: tuple[list, list] | None = None,
    kv_groups: int | None = None,
) -> bytes:
    """A layers x {qk, v} heat map of the ranks (``fmt``: png, svg or pdf); with ``groups``
    (per-layer group ranks of q-k and of v), one row per part and key-value group."""
    import matplotlib  # deferred: matplotlib is slow to import, and only pictures need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if groups is None:
        m = np.asarray([r_qk, r_v], np.float64)
        labels = ["q-k", "v"]
    else:

        def rows(per_layer: list) -> np.ndarray:  # [units, layers]; per-group rows repeated
            w = max(len(g) for g in per_layer)  # where some layer ranks per query head
            return np.asarray([np.repeat(g, w // len(g)) for g in per_layer], np.float64).T

        qk, v = (rows(g) for g in groups)
        m = np.concatenate([qk, v])
        unit = lambda k: "h" if k > (kv_groups or k) else "g"  # noqa: E731 (query head / group)
        labels = [f"q-k {unit(len(qk))}{g}" for g in range(len(qk))] + [
            f"v {unit(len(v))}{g}" for g in range(len(v))
        ]
    n = m.shape[1]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * n + 1.5), 1.4 + 0.4 * len(labels)))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=head_dim, aspect="auto")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(n), [str(i) for i in range(n)], fontsize=7)
    ax.set_xlabel("layer")
    for (i, j), r in np.ndenumerate(m):
        ax.text(
            j,
            i,
            str(int(r)),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if r < 0.6 * head_dim else "black",
        )
    fig.colorbar(im, ax=ax, label="rank", fraction=0.03, pad=0.01)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150)
    plt.close(fig)
    return buf.getvalue()


def write_heatmap(cfg: RankConfig, path: str | Path, title: str) -> Path:
    """:func:`heatmap_bytes` of ``cfg``'s ranks (per group where it has a split), written
    atomically to ``path`` in the format its suffix names (png, svg or pdf)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise InputError(
            f"unsupported picture format {fmt!r}; use .png, .svg or .pdf",
            str(path),
            field="heatmap",
        )
    groups = (cfg.groups_list("qk"), cfg.groups_list("v")) if cfg.grouped else None
    atomic_write_bytes(
        path,
        heatmap_bytes(
            list(cfg.r_qk),
            list(cfg.r_v),
            cfg.shape.head_dim,
            title,
            fmt,
            groups,
            cfg.shape.n_kv_heads,
        ),
    )
    return path
