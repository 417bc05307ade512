"""The rank suite's report: ``results.md``, ``summary.json`` and ``pictures/`` of a
``mallocgame bench rank`` folder (its ``runs.jsonl``), and its README section. Scores are
held-out losses divided by ``uniform``'s at the same task (:func:`ratios`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame import registry
from mallocgame.bench import stats
from mallocgame.bench.records import read_jsonl
from mallocgame.bench.render import save_png
from mallocgame.errors import InputError
from mallocgame.io import atomic_write_bytes, atomic_write_text
from mallocgame.rank.config import MODEL_SHAPES
from mallocgame.rank.plots import heatmap_bytes

#: rank solvers whose answer does not depend on the seed: one run per task
DETERMINISTIC = tuple(s.name for s in registry.specs("rank") if s.deterministic)


def task_name(model: str, budget: float) -> str:
    return f"{model}@{budget:g}"


def budget_words(runs: list[dict[str, Any]]) -> str:
    """What the runs' budgets count, in words (older runs, without ``budget_kind``: FLOPs)."""
    kinds = sorted({r.get("budget_kind", "flops") for r in runs})
    words = {"flops": "attention FLOPs", "kv-cache": "KV-cache bytes per token"}
    return " / ".join(words.get(k, k) for k in kinds)


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("status") == "ok"]


def _tasks(runs: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return list(dict.fromkeys((r["model"], float(r["budget"])) for r in runs))


def _solvers(runs: list[dict[str, Any]]) -> list[str]:
    names = list(dict.fromkeys(r["solver"] for r in runs))
    return sorted(names, key=lambda s: (s != "uniform", s not in DETERMINISTIC, names.index(s)))


def ratios(runs: list[dict[str, Any]]) -> dict[str, dict[tuple[str, float], np.ndarray]]:
    """Per solver and task: held-out loss / uniform's held-out loss (one value per run)."""
    ok = _ok(runs)
    out: dict[str, dict[tuple[str, float], np.ndarray]] = {}
    for t in _tasks(ok):
        uni = [
            r["heldout"]["loss"]
            for r in ok
            if (r["model"], float(r["budget"])) == t and r["solver"] == "uniform"
        ]
        if not uni or not np.mean(uni) > 0:
            continue
        u = float(np.mean(uni))
        for r in ok:
            if (r["model"], float(r["budget"])) == t:
                out.setdefault(r["solver"], {}).setdefault(t, [])
                out[r["solver"]][t].append(r["heldout"]["loss"] / u)  # type: ignore[attr-defined]
    return {s: {t: np.asarray(v, np.float64) for t, v in d.items()} for s, d in out.items()}


def aggregate_lines(runs: list[dict[str, Any]], reps: int = 2000) -> list[str]:
    """One row per solver over all tasks: IQM of the loss ratio to uniform with a 95%
    stratified-bootstrap interval, tasks under 0.5, P(better than uniform)."""
    rat = ratios(runs)
    L = [
        "Score: held-out loss / `uniform`'s at the same model and budget (lower is better; the "
        "goal is below 0.5). IQM over runs (seeds x tasks) with a 95% stratified-bootstrap CI "
        f"({reps} resamples of seeds within tasks); tasks < 0.5: tasks whose median run is below "
        "half of uniform's loss.\n",
        "| solver | runs | errors | IQM loss / uniform [95% CI] | tasks < 0.5 | best on tasks "
        "| median solve s |",
        "|---|---|---|---|---|---|---|",
    ]
    best_count: dict[str, int] = {}
    all_tasks = sorted({t for d in rat.values() for t in d})
    for t in all_tasks:
        meds = {s: float(np.median(d[t])) for s, d in rat.items() if t in d}
        if meds:
            w = min(meds, key=meds.get)  # type: ignore[arg-type]
            best_count[w] = best_count.get(w, 0) + 1
    for s in _solvers(runs):
        rs_ = [r for r in runs if r["solver"] == s]
        errs = sum(1 for r in rs_ if r.get("status") != "ok")
        d = rat.get(s, {})
        est = stats.stratified_bootstrap_ci(list(d.values()), reps=reps, seed=1) if d else None
        under = sum(1 for v in d.values() if np.median(v) < 0.5)
        solve = [r["solve_s"] for r in _ok(rs_)]
        L.append(
            f"| `{s}` | {len(rs_)} | {errs} | {est.fmt() if est else '-'} | {under}/{len(d)} | "
            f"{best_count.get(s, 0)}/{len(all_tasks)} | "
            f"{f'{np.median(solve):.1f}' if solve else '-'} |"
        )
    return L


def _task_lines(runs: list[dict[str, Any]]) -> list[str]:
    rat = ratios(runs)
    L = [
        f"Budgets: fractions of the full model's {budget_words(runs)}.\n",
        "| model | budget | solver | runs | attention FLOPs | KV cache | held-out fidelity "
        "(median) | held-out loss (median) | loss / uniform | calibration loss | solve s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok = _ok(runs)
    for t in _tasks(ok):
        for s in _solvers(ok):
            rs_ = [r for r in ok if (r["model"], float(r["budget"])) == t and r["solver"] == s]
            if not rs_:
                continue
            h = [r["heldout"] for r in rs_]
            if t[0] == "smollm2":
                fid = f"ppl {np.median([x['ppl'] for x in h]):.2f} (full {h[0]['ppl_full']:.2f})"
            else:
                fid = (
                    f"cos {np.median([x['cos_mean'] for x in h]):.4f}, Pearson "
                    f"{np.median([x['pearson'] for x in h]):.3f} (full {h[0]['pearson_full']:.3f})"
                )
            ratio = rat.get(s, {}).get(t)
            kv = [r["kv_cache_fraction"] for r in rs_ if "kv_cache_fraction" in r]
            L.append(
                f"| {t[0]} | {t[1]:g} | `{s}` | {len(rs_)} | "
                f"{np.median([r['flops_fraction'] for r in rs_]):.3f} | "
                f"{f'{np.median(kv):.3f}' if kv else '-'} | {fid} | "
                f"{np.median([x['loss'] for x in h]):.4f} | "
                f"{'-' if ratio is None else f'{np.median(ratio):.2f}'} | "
                f"{np.median([r['calibration_loss'] for r in rs_]):.4f} | "
                f"{np.median([r['solve_s'] for r in rs_]):.1f} |"
            )
    return L


def _header(cfg: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    inv = cfg.get("invocations", [])
    if not inv:
        return []
    h = inv[-1].get("host", {})
    return [
        f"Bench run started {inv[0].get('started')} on {h.get('cpus')} CPUs "
        f"({h.get('cpu_model') or '?'}), {len(runs)} runs on {len(_tasks(runs))} tasks "
        "(model x budget), by:\n",
        "```",
        *dict.fromkeys(i.get("command") or "(API)" for i in inv),
        "```\n",
    ]


def _read(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    runs = read_jsonl(out / "runs.jsonl")
    if not runs:
        raise InputError(f"no finished runs in {out / 'runs.jsonl'}", field="out")
    cfg: dict[str, Any] = {}
    if (out / "config.json").exists():
        try:
            cfg = json.loads((out / "config.json").read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"not JSON: {e}", out / "config.json") from None
    return cfg, runs


def write_rank_report(out: str | Path, pictures: bool = True, reps: int = 2000) -> dict[str, str]:
    """``results.md``, ``summary.json`` and pictures from ``runs.jsonl``."""
    out = Path(out)
    cfg, runs = _read(out)
    L = [
        f"# mallocgame bench `rank`: attention ranks under a budget on {budget_words(runs)}, "
        "held-out fidelity\n"
    ]
    L += _header(cfg, runs)
    bad = [r for r in runs if r.get("status") != "ok"]
    if bad:
        L.append(f"**Failures**: {len(bad)} runs raised an error.")
        L += [
            f"  - {r['model']} @ {r['budget']:g} `{r['solver']}` seed {r['seed']}: {r['error']}"
            for r in bad[:10]
        ]
    L.append("\n## Aggregate over all tasks\n")
    L += aggregate_lines(runs, reps)
    L.append("\n## Results per task\n")
    L += _task_lines(runs)
    paths: dict[str, str] = {}
    if pictures and _ok(runs):
        paths.update(_pictures(out, runs))
        L.append("\n## Pictures\n")
        L += [f"- {k}: ![{k}]({Path(p).relative_to(out).as_posix()})" for k, p in paths.items()]
    atomic_write_text(out / "results.md", "\n".join(L) + "\n")
    paths["results"] = str(out / "results.md")
    rat = ratios(runs)
    summary = {
        "mode": "rank",
        "budget_kinds": sorted({r.get("budget_kind", "flops") for r in runs}),
        "tasks": len(_tasks(runs)),
        "solvers": {
            s: {
                "runs": sum(1 for r in runs if r["solver"] == s),
                "errors": sum(1 for r in runs if r["solver"] == s and r.get("status") != "ok"),
                "iqm_loss_vs_uniform": (
                    float(stats.iqm(np.concatenate(list(rat[s].values())))) if rat.get(s) else None
                ),
                "per_task_median_vs_uniform": {
                    task_name(*t): float(np.median(v)) for t, v in rat.get(s, {}).items()
                },
            }
            for s in _solvers(runs)
        },
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    paths["summary"] = str(out / "summary.json")
    return paths


def _pictures(out: Path, runs: list[dict[str, Any]]) -> dict[str, str]:
    import matplotlib  # deferred: matplotlib, only when pictures are asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pics: dict[str, str] = {}
    (out / "pictures").mkdir(exist_ok=True)
    ok = _ok(runs)
    for t in _tasks(ok):
        best = min(
            (r for r in ok if (r["model"], float(r["budget"])) == t),
            key=lambda r: r["heldout"]["loss"],
        )
        name = f"ranks-{t[0]}-{t[1]:g}"
        p = out / "pictures" / f"{name}.png"
        title = (
            f"{t[0]} at {t[1]:g} of {budget_words([best])}: best held-out loss "
            f"{best['heldout']['loss']:.4f} (`{best['solver']}`)"
        )
        atomic_write_bytes(
            p, heatmap_bytes(best["r_qk"], best["r_v"], MODEL_SHAPES[t[0]].head_dim, title, "png")
        )
        pics[name] = str(p)
    rat = ratios(runs)
    if rat:
        tasks = sorted({t for d in rat.values() for t in d})
        solvers = [s for s in _solvers(runs) if s in rat]
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(tasks) + 2), 3.2))
        w = 0.8 / max(len(solvers), 1)
        for i, s in enumerate(solvers):
            ys = [float(np.median(rat[s][t])) if t in rat[s] else np.nan for t in tasks]
            ax.bar(np.arange(len(tasks)) + i * w, ys, w, label=s)
        ax.axhline(0.5, color="k", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - w / 2, [task_name(*t) for t in tasks])
        ax.set_ylabel("held-out loss / uniform's")
        ax.legend(fontsize=7)
        fig.tight_layout()
        pics["loss-vs-uniform"] = save_png(fig, out / "pictures" / "loss-vs-uniform.png", dpi=130)
    return pics


def readme_section(out: str | Path, reps: int = 2000) -> str:
    """The README's generated section for the rank suite (see ``render.update_readme``)."""
    out = Path(out)
    cfg, runs = _read(out)
    L = [
        f"#### `bench rank`: attention ranks under a budget on {budget_words(runs)} (held-out "
        "fidelity)\n"
    ]
    L += _header(cfg, runs)
    if L[-1] == "```\n":
        L.insert(-1, f"mallocgame bench rank --out {out.as_posix()} --report-only --readme")
    L += aggregate_lines(runs, reps)
    L.append("")
    L += _task_lines(runs)
    L.append(
        f"\nHeat maps of the best configs: `{(out / 'pictures').as_posix()}/` after running "
        "the commands."
    )
    return "\n".join(L) + "\n"
