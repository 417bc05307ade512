"""Scale: wall clock and peak RSS of ``extract``, ``msa``, ``pack-peak`` and ``optimize`` on
programs of 10,000+ buffers (the large zoo entries, workloads/large.py) and seeded synthetic
traces (``synthetic:N``: ``benchmarks/synthetic_trace.py --buffers N``, no extract step), as whole
CLI commands.

Every step runs as its own process (``mallocgame ...``), timed here, its peak RSS read from
``wait4``; a step that fails is reported with its first error line. Prints a markdown table and
writes a log-log picture (buffers vs wall clock and vs peak RSS, one line per step). Usage::

    .venv/bin/python benchmarks/scale_table.py [--programs gpt_train_large,synthetic:100000,...]
        [--budget 60] [--pack-time 60] [--out-dir out/scale] [--table out/scale/table.md]

The extracted workloads and the synthetic traces are cached in ``--out-dir`` (``--fresh``
extracts again).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import synthetic_trace

from mallocgame import api
from mallocgame.io import atomic_write_text, describe_host

CLI = [sys.executable, "-m", "mallocgame.cli.main"]


def run(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd``: its exit code, wall clock, stdout and stderr."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"rc": "timeout", "wall_s": time.perf_counter() - t0, "rss_mib": None}
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - t0, "out": out, "err": err}


def measured(cmd: list[str], timeout: float) -> dict:
    """``cmd`` run under a small shim that forks it and reports its own peak RSS (``wait4``:
    RUSAGE_CHILDREN would give the largest over every child this script has run)."""
    shim = (
        "import os, sys, json, time;"
        "t=time.perf_counter(); pid=os.fork()\n"
        "if pid==0:\n os.execv(sys.argv[1], sys.argv[1:])\n"
        "_, status, ru = os.wait4(pid, 0)\n"
        "print(json.dumps({'rc': os.waitstatus_to_exitcode(status),"
        " 'wall_s': time.perf_counter()-t, 'rss_mib': ru.ru_maxrss/1024}), file=sys.stderr)"
    )
    r = run([sys.executable, "-c", shim, *cmd], timeout)
    if r.get("rc") == "timeout":
        return r
    lines = r["err"].strip().splitlines()
    stats = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"rc": r["rc"]}
    stats["error"] = next((ln for ln in lines[:-1] if "rror" in ln), None) if stats["rc"] else None
    stats["out"] = r["out"]
    return stats


def first_float(out: str, pattern: str) -> float | None:
    """The first group of ``pattern`` (a line of ``out``, multiline) as a float, or None."""
    m = re.search(pattern, out, re.M)
    return float(m.group(1)) if m else None


def summary_line(out: str, key: str) -> str | None:
    for ln in out.splitlines():
        if ln.startswith(key):
            return ln[len(key) :].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    from workloads.large import LARGE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", default=",".join(LARGE))
    ap.add_argument("--capacity", default="25%", help="capacity of the msa and optimize runs")
    ap.add_argument("--budget", type=float, default=60.0, help="optimize --budget, seconds")
    ap.add_argument("--pack-time", type=float, default=60.0, help="pack-peak --time-limit")
    ap.add_argument("--out-dir", default="out/scale")
    ap.add_argument("--table", default=None, help="also write the table to this file")
    ap.add_argument("--fresh", action="store_true", help="extract again even when cached")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.programs.split(","):
        steps: dict[str, dict] = {}
        if name.startswith("synthetic:"):
            wl = out / f"synthetic_{int(name.split(':', 1)[1])}.csv"
            if not wl.exists():
                synthetic_trace.main(["--buffers", name.split(":", 1)[1], "--out", str(wl)])
            steps["extract"] = {"rc": 0, "skipped": "a CSV trace: nothing to extract"}
        else:
            wl = out / f"{name}.workload.json.gz"
            if args.fresh or not wl.exists():
                steps["extract"] = measured(
                    [*CLI, "extract", f"zoo:{name}", "--out", str(wl)], 3600
                )
        name = name.replace(":", "_")
        n = api.load_workload(wl).num_buffers
        steps["msa"] = measured(
            [*CLI, "solve", str(wl), "--solver", "msa", "--capacity", args.capacity,
             "--out", str(out / f"{name}.msa.csv")],
            600,
        )  # fmt: skip
        steps["pack-peak"] = measured(
            [*CLI, "solve", str(wl), "--solver", "pack-peak", "--objective", "fit-all",
             "--capacity", "150%", "--time-limit", str(args.pack_time),
             "--out", str(out / f"{name}.pack.csv")],
            args.pack_time + 600,
        )  # fmt: skip
        steps["optimize"] = measured(
            [*CLI, "optimize", str(wl), "--capacity", args.capacity, "--budget",
             str(args.budget), "--out", str(out / f"{name}.optimize.csv")],
            args.budget + 600,
        )  # fmt: skip
        packing = summary_line(steps["pack-peak"].get("out", ""), "packing")
        solver = {  # the seconds the commands print for the solver alone (setup apart)
            "msa": first_float(steps["msa"].get("out", ""), r"^solver\s+msa\s+\(([\d.]+) s\)"),
            "optimize": first_float(
                steps["optimize"].get("out", ""), r"^best \(agent \+ search\).*?([\d.]+)\s+written"
            ),
        }
        rows.append(
            {"program": name, "buffers": n, "steps": steps, "packing": packing, "solver": solver}
        )
        print(f"{name}: {n} buffers done", file=sys.stderr)

    order = ["extract", "msa", "pack-peak", "optimize"]
    lines = [
        f"Scale, whole CLI commands (capacity {args.capacity}; pack-peak fit-all at 150% with "
        f"--time-limit {args.pack_time:g}; optimize --budget {args.budget:g}); {describe_host()}",
        "",
        "| program | buffers | "
        + " | ".join(f"{s} wall / RSS" for s in order)
        + " | msa solver | optimize solve |",
        "|---|---:|" + "---:|" * (len(order) + 2),
    ]
    for r in rows:
        cells = []
        for s in order:
            st = r["steps"].get(s)
            if st is None:
                cells.append("cached")
            elif st.get("skipped"):
                cells.append("-")
            elif st.get("rc") == "timeout":
                cells.append("timeout")
            elif st.get("rc"):
                cells.append(f"failed: {st.get('error')}")
            else:
                cells.append(f"{st['wall_s']:.1f} s / {st['rss_mib']:.0f} MiB")
        sv = [r["solver"][k] for k in ("msa", "optimize")]
        cells += ["-" if v is None else f"{v:.2f} s" for v in sv]
        lines.append(f"| {r['program']} | {r['buffers']} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in rows:
        if r["packing"]:
            lines.append(f"- {r['program']} pack-peak: {r['packing']}")
    text = "\n".join(lines)
    print(text)
    if args.table:
        atomic_write_text(Path(args.table), text + "\n")
    atomic_write_text(out / "scale.json", json.dumps(rows, indent=1) + "\n")
    plot(rows, order, out / "scale.png")
    print(f"picture: {out / 'scale.png'}", file=sys.stderr)
    return 0


def plot(rows: list[dict], order: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for s in order:
        pts = sorted(
            (r["buffers"], r["steps"][s]["wall_s"], r["steps"][s]["rss_mib"])
            for r in rows
            if s in r["steps"] and not r["steps"][s].get("rc") and "wall_s" in r["steps"][s]
        )
        if not pts:
            continue
        xs = [p[0] for p in pts]
        axes[0].loglog(xs, [p[1] for p in pts], "o-", label=s)
        axes[1].loglog(xs, [p[2] for p in pts], "o-", label=s)
    axes[0].set(xlabel="buffers", ylabel="wall clock (s)", title="time")
    axes[1].set(xlabel="buffers", ylabel="peak RSS (MiB)", title="memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
