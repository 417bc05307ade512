"""The bench's ``rank`` suite: every rank solver at attention-FLOP or KV-cache budgets, judged on
held-out text (``mallocgame bench rank [MODEL...] --budgets 0.5,0.3 --solvers ... --seeds N
[--budget-kind kv-cache]``).

A *task* is a model at a budget (fraction of full attention FLOPs, or with ``--budget-kind
kv-cache`` of the full KV cache's bytes per token; one kind per bench folder, recorded in each
run as ``budget_kind``, both fractions recorded). Per task each solver picks
one rank per layer part (``mallocgame.rank.solvers``) from the model's rank tables (measured on
the calibration half of ``lee_background.cor``, cached), and the config is judged on text no
solver saw:

- SmolLM2: perplexity on the first ``eval_windows`` 512-token windows of the evaluation half;
  held-out loss = ``log(ppl) - log(ppl_full)``;
- MiniLM: the 50 ``lee.cor`` documents; loss = ``1 - mean cosine`` to the full embeddings
  (Pearson / Spearman against the human scores are recorded too).

Score of a run = its held-out loss divided by the ``uniform`` solver's at the same task (the
issue's goal: below 0.5). Deterministic solvers run once (seed 0); the ``agent`` runs every
seed. Output folder as the other suites: ``runs.jsonl`` (one line per run, appended and
fsynced, so ``--resume`` skips finished runs), ``config.json``, ``results.md``,
``summary.json``, ``pictures/`` (heat map of each task's best config, loss ratios).
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mallocgame import registry
from mallocgame.bench import stats
from mallocgame.bench.records import RunLog, host_info, read_jsonl
from mallocgame.bench.render import save_png
from mallocgame.errors import InputError
from mallocgame.io import atomic_write_bytes, atomic_write_text
from mallocgame.rank import solvers as rs
from mallocgame.rank.config import BUDGET_KINDS, MODEL_SHAPES
from mallocgame.rank.plots import heatmap_bytes
from mallocgame.rank.tables import RankTables

if TYPE_CHECKING:  # these modules import jax
    from mallocgame.rank.calibration import RankSetup
    from mallocgame.rank.evaluator import Evaluator
    from mallocgame.rank.models.minilm import Params
    from mallocgame.rank.runtime import Model

#: rank solvers whose answer does not depend on the seed: one run per task
DETERMINISTIC = tuple(s.name for s in registry.specs("rank") if s.deterministic)
DEFAULT_BUDGETS = (0.5, 0.3)
DEFAULT_SOLVERS = ("uniform", "spectral", "fisher", "greedy")


def default_solvers() -> list[str]:
    """The suite's solvers when none are named: :data:`DEFAULT_SOLVERS`, and the agent where
    it can load."""
    return [*DEFAULT_SOLVERS, *(["agent"] if rs.available("agent") else [])]


class HeldOut:
    """Held-out fidelity of a model's parameter sets, the full model's computed once."""

    def __init__(self, model: Model, name: str, eval_windows: int, window: int) -> None:
        # deferred: jax (the models and their fidelity)
        from mallocgame.rank import text
        from mallocgame.rank.fidelity import minilm_fidelity
        from mallocgame.rank.models import minilm as mm
        from mallocgame.rank.models import smollm2 as sm

        self.model, self.name = model, name
        if name == "smollm2":
            split = text.background_split()
            self.windows = text.token_windows(
                lambda s: sm.encode(model, s), split.evaluation, window, eval_windows
            )
            self.full = {"ppl": sm.perplexity(model, self.windows)}
        else:
            self.docs, self.human = text.lee_docs(), text.lee_human_similarity()
            self.emb = mm.embed_sentences(model, self.docs)
            self.full = minilm_fidelity(model, model.params, self.docs, self.human, full=self.emb)

    def __call__(self, params: Params) -> dict[str, float]:
        # deferred: jax
        from mallocgame.rank.fidelity import minilm_fidelity
        from mallocgame.rank.models import smollm2 as sm

        if self.name == "smollm2":
            ppl = sm.perplexity(self.model, self.windows, params=params)
            return {
                "ppl": ppl,
                "ppl_full": self.full["ppl"],
                "loss": float(np.log(ppl) - np.log(self.full["ppl"])),
            }
        f = minilm_fidelity(self.model, params, self.docs, self.human, full=self.emb)
        return {**f, "loss": 1.0 - f["cos_mean"]}


@dataclasses.dataclass
class RankBenchConfig:
    out: Path
    models: list[str]
    budgets: list[float]
    solvers: list[str]
    seeds: int = 3
    time_limit: float | None = None
    eval_windows: int = 16
    max_evals: int = 150
    top_k: int = 3
    #: what the budgets count (:data:`mallocgame.rank.config.BUDGET_KINDS`)
    budget_kind: str = "flops"
    resume: bool = False
    pictures: bool = True
    progress: bool = True
    command: str = ""


def solve_and_judge(
    tables: RankTables,
    setup: RankSetup,
    ev: Evaluator,
    held: HeldOut,
    budget: float,
    solver: str,
    *,
    seed: int = 0,
    time_limit: float | None = None,
    max_evals: int = 150,
    top_k: int = 3,
    calibration_loss: bool = True,
    solver_kw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One rank solver at one budget: its config, FLOPs, calibration loss (optional, measured
    with ``ev``) and held-out fidelity (``held``), with the solve's time and evaluations.
    ``solver_kw``: further keyword arguments of the solver (e.g. ``refine``'s). Where ``ev``
    keeps a per-group split (``group_template``), the answer keeps it too."""
    from mallocgame.rank.runtime import attention_flops, lowrank_params  # deferred: jax

    t0 = time.perf_counter()
    kw = {"max_evals": max_evals, "top_k": top_k} if solver in ("greedy", "refine") else {}
    kw.update(solver_kw or {})
    n0 = ev.n_evaluated
    idx = rs.solve(tables, budget, solver, evaluator=ev, seed=seed, time_limit=time_limit, **kw)
    solve_s = time.perf_counter() - t0
    evaluations = ev.n_evaluated - n0
    rcfg = ev.keep_groups(tables.config(idx, budget=budget, solver=solver))
    kv = tables.with_budget_kind("kv-cache").fraction(idx)
    groups = {}
    if rcfg.grouped:  # the evaluator kept a split: so does the answer
        groups = {
            "qk_groups": [list(x) for x in rcfg.groups_list("qk")],
            "v_groups": [list(x) for x in rcfg.groups_list("v")],
        }
    params = lowrank_params(setup.model, setup.calib, rcfg, bases=setup.bases)
    return {
        "budget_kind": tables.budget_kind,
        "flops_fraction": attention_flops(rcfg)["fraction"],
        "kv_cache_fraction": kv,
        "r_qk": list(rcfg.r_qk),
        "r_v": list(rcfg.r_v),
        **groups,
        "calibration_loss": float(ev(idx)[0]) if calibration_loss else None,
        "solve_s": solve_s,
        "solver_evaluations": evaluations,
        "heldout": held(params),
    }


def _task(model: str, budget: float) -> str:
    return f"{model}@{budget:g}"


def _key(r: dict[str, Any]) -> tuple[str, float, str, int]:
    return (r["model"], float(r["budget"]), r["solver"], int(r["seed"]))


def check_config(cfg: RankBenchConfig) -> None:
    for m in cfg.models:
        if m not in MODEL_SHAPES:
            raise InputError(
                f"unknown model {m!r}; expected one of {sorted(MODEL_SHAPES)}", field="instances"
            )
    for b in cfg.budgets:
        if not 0.0 < b <= 1.0:
            raise InputError(f"budget must be in (0, 1], got {b:g}", field="budgets")
    for s in cfg.solvers:
        if s not in registry.names("rank"):
            raise InputError(
                f"unknown rank solver {s!r}; expected one of {registry.names('rank')}",
                field="solvers",
            )
    if cfg.budget_kind not in BUDGET_KINDS:
        raise InputError(
            f"expected one of {list(BUDGET_KINDS)}, got {cfg.budget_kind!r}", field="budget-kind"
        )
    if "uniform" not in cfg.solvers:
        raise InputError("the rank suite scores against 'uniform': include it", field="solvers")
    if cfg.seeds < 1:
        raise InputError(f"must be at least 1, got {cfg.seeds}", field="seeds")


def _prepare(cfg: RankBenchConfig) -> None:
    out = cfg.out
    if out.exists() and any(out.iterdir()) and not cfg.resume:
        raise InputError(
            f"{out} is not empty: pass --resume to continue it, or another --out", field="out"
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    doc: dict[str, Any] = {"schema": 1, "mode": "rank", "invocations": []}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"not JSON: {e}", path) from None
        if doc.get("mode") != "rank":
            raise InputError(f"{out} holds a {doc.get('mode')!r} bench, not 'rank'", field="out")
        kinds = {i.get("config", {}).get("budget_kind", "flops") for i in doc["invocations"]}
        if kinds - {cfg.budget_kind}:
            raise InputError(
                f"{out} holds a bench at {sorted(kinds)[0]!r} budgets, not {cfg.budget_kind!r}: "
                "one budget kind per folder",
                field="budget-kind",
            )
    conf = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    doc["invocations"].append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": cfg.command,
            "config": conf,
            "host": host_info(),
        }
    )
    atomic_write_text(path, json.dumps(doc, indent=2))


def run_rank_bench(cfg: RankBenchConfig) -> dict[str, Any]:
    """Runs the missing (model, budget, solver, seed) runs, then writes the report."""
    # deferred: jax (the tables, the models and their evaluator)
    from mallocgame.rank import calibration, measure
    from mallocgame.rank.evaluator import Evaluator

    check_config(cfg)
    _prepare(cfg)
    log = RunLog(cfg.out / "runs.jsonl")
    done = {_key(r) for r in log.records}
    outcome: dict[str, Any] = {"runs_done": 0, "runs_skipped": 0, "errors": 0, "unavailable": {}}
    for name in cfg.solvers:
        if not rs.available(name):
            outcome["unavailable"][name] = "not importable (see `mallocgame rank --solver`)"
    for model in cfg.models:
        todo = [
            (b, s, seed)
            for b in cfg.budgets
            for s in cfg.solvers
            if s not in outcome["unavailable"]
            for seed in (range(1) if s in DETERMINISTIC else range(cfg.seeds))
            if (model, b, s, seed) not in done
        ]
        outcome["runs_skipped"] += sum(
            1 for r in log.records if r["model"] == model and float(r["budget"]) in cfg.budgets
        )
        if not todo:
            continue
        t0 = time.perf_counter()
        tables = measure.build_tables(model).with_budget_kind(cfg.budget_kind)
        spec = calibration.CalibSpec.from_dict(tables.meta["calibration"])
        setup = calibration.load_setup(spec)
        ev = Evaluator(setup, tables.choices)
        held = HeldOut(setup.model, model, cfg.eval_windows, spec.window)
        if cfg.progress:
            print(f"{model}: tables and full model in {time.perf_counter() - t0:.0f} s", flush=True)
        for b, s, seed in todo:
            t1 = time.perf_counter()
            rec: dict[str, Any] = {
                "model": model,
                "model_hash": tables.model_hash,
                "budget": b,
                "budget_kind": cfg.budget_kind,
                "solver": s,
                "seed": seed,
                "time_limit_s": cfg.time_limit,
                "eval_windows": cfg.eval_windows if model == "smollm2" else None,
                "calibration": spec.to_dict(),
            }
            try:
                rec.update(
                    status="ok",
                    **solve_and_judge(
                        tables,
                        setup,
                        ev,
                        held,
                        b,
                        s,
                        seed=seed,
                        time_limit=cfg.time_limit,
                        max_evals=cfg.max_evals,
                        top_k=cfg.top_k,
                    ),
                )
            except Exception as e:  # recorded, the bench goes on
                rec.update(
                    status="error",
                    error=f"{type(e).__name__}: {e}",
                    traceback=traceback.format_exc(limit=5),
                )
                outcome["errors"] += 1
            rec["wall_s"] = time.perf_counter() - t1
            log.append(rec)
            outcome["runs_done"] += 1
            if cfg.progress:
                what = (
                    f"held-out loss {rec['heldout']['loss']:.4f}, FLOPs {rec['flops_fraction']:.3f}"
                    f", KV cache {rec['kv_cache_fraction']:.3f}"
                    if rec["status"] == "ok"
                    else rec["error"]
                )
                print(
                    f"{model} budget {b:g} {s} seed {seed}: {what} ({rec['wall_s']:.0f} s)",
                    flush=True,
                )
    outcome["report"] = write_rank_report(cfg.out, pictures=cfg.pictures)
    return outcome


# --------------------------------------------------------------------------- report
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
                    _task(*t): float(np.median(v)) for t, v in rat.get(s, {}).items()
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
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - w / 2, [_task(*t) for t in tasks])
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
