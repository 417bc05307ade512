"""A training run's curves: ``curves.csv`` and ``curves.png`` in the run folder, and the
progress bar on a terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agent.trainer import write_curves_csv


# --------------------------------------------------------------------------- pictures
def plot_curves(
    curves: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "", scale: float = 10.0
) -> Path | None:
    """Training curves as a picture: return vs msa, win rate, losses, held-out gap."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def col(k):
        return np.array([c.get(k, np.nan) for c in curves], dtype=float)

    step = col("step")
    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    a = ax[0, 0]
    a.plot(step, col("return"), label="agent (self-play, exploring)")
    a.plot(step, col("baseline"), label="msa on the same games", ls="--")
    a.set_title("return of recent self-play games")
    a.set_xlabel("learner updates")
    a.legend(fontsize=8)
    a = ax[0, 1]
    a.plot(step, col("win_rate"), label="beats msa")
    a.plot(step, col("not_worse_rate"), label="not worse than msa")
    if "eval_win_rate" in curves[-1] or any("eval_win_rate" in c for c in curves):
        m = ~np.isnan(col("eval_not_worse_rate"))
        a.plot(step[m], col("eval_not_worse_rate")[m], "o-", label="held-out greedy: not worse")
        a.plot(step[m], col("eval_win_rate")[m], "s-", label="held-out greedy: beats")
    a.set_ylim(-0.02, 1.02)
    a.set_title("share of games vs msa")
    a.legend(fontsize=8)
    a = ax[1, 0]
    for k in ("loss", "policy_loss", "value_loss", "reward_loss"):
        if any(k in c for c in curves):
            a.plot(step, col(k), label=k)
    a.set_yscale("log")
    a.set_title("learner losses")
    a.legend(fontsize=8)
    a = ax[1, 1]
    if any("eval_gap_vs_msa" in c for c in curves):
        m = ~np.isnan(col("eval_gap_vs_msa"))
        a.plot(step[m], 100 * col("eval_gap_vs_msa")[m], "o-", label="held-out greedy - msa")
    if any("val_gap_vs_msa" in c for c in curves):
        m = ~np.isnan(col("val_gap_vs_msa"))
        a.plot(step[m], 100 * col("val_gap_vs_msa")[m], "^-", label="validation - msa")
        picked = [c["val_best_step"] for c in curves if "val_best_step" in c]
        if picked:
            a.axvline(
                picked[-1], color="green", ls=":", lw=1, label=f"picked on validation: {picked[-1]}"
            )
    a.plot(
        step, 100 * (col("return") - col("baseline")) / scale, label="self-play (exploring) - msa"
    )
    a.axhline(0, color="grey", lw=0.5)
    a.set_title("agent return - msa return (% of all-slow time)")
    a.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_curves(
    curves: list[dict[str, Any]], out: Path, title: str, scale: float = 10.0, picture: bool = True
) -> None:
    """``out/curves.csv`` (atomically) and, when ``picture``, ``out/curves.png``."""
    tmp = out / f".curves.csv.tmp{os.getpid()}"
    write_curves_csv(curves, tmp)
    os.replace(tmp, out / "curves.csv")
    if picture:
        plot_curves(curves, out / "curves.png", title, scale)


# --------------------------------------------------------------------------- progress
class Progress:
    def __init__(self, total: int, start: int, quiet: bool):
        self.quiet = quiet
        self.rich = None
        if not quiet and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.rich = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self.rich.start()
            self.task = self.rich.add_task(
                "train", total=total, completed=start, info="collecting games"
            )

    def update(self, record: dict[str, Any]) -> None:
        info = (
            f"ret {record.get('return', float('nan')):.3f} "
            f"vs msa {record.get('baseline', float('nan')):.3f} "
            f"not-worse {record.get('not_worse_rate', float('nan')):.2f} "
            f"loss {record.get('loss', float('nan')):.3f} "
            f"{record.get('moves_per_s', 0):.0f} moves/s"
        )
        if "eval_gap_vs_msa" in record:
            info += f" heldout gap {100 * record['eval_gap_vs_msa']:+.2f}%"
        if "val_score" in record:
            info += (
                f" validation {record['val_score']:.4f}x (best {record['val_best_score']:.4f}x "
                f"at {record['val_best_step']})"
            )
        if self.rich is not None:
            self.rich.update(self.task, completed=record["step"], info=info)
        elif not self.quiet:
            print(f"step {record['step']} t={record.get('wall_time', 0):.0f}s {info}", flush=True)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
