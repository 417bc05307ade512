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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mallocgame import registry
from mallocgame.bench.rank_report import DETERMINISTIC, write_rank_report
from mallocgame.bench.records import RunLog, host_info
from mallocgame.errors import InputError
from mallocgame.io import atomic_write_text
from mallocgame.rank import solvers as rs
from mallocgame.rank.config import BUDGET_KINDS, MODEL_SHAPES
from mallocgame.rank.tables import RankTables

if TYPE_CHECKING:  # these modules import jax
    from mallocgame.rank.calibration import RankSetup
    from mallocgame.rank.evaluator import Evaluator
    from mallocgame.rank.models.minilm import Params
    from mallocgame.rank.runtime import Model

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
    #: a Ray cluster for the runs (auto | ADDRESS; :mod:`mallocgame.bench.rank_distributed`)
    ray: str | None = None
    ray_cpus: float = 1.0


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


class Judge:
    """One model's rank tables (at the bench's budget kind), calibration setup, evaluator and
    held-out text, built once: :meth:`run` solves and judges one run into its record (an error
    is recorded, not raised). A plain class: the bench's own, or a Ray actor's with ``--ray``
    (:mod:`mallocgame.bench.rank_distributed`)."""

    def __init__(self, model: str, budget_kind: str, eval_windows: int) -> None:
        # deferred: jax (the tables, the models and their evaluator)
        from mallocgame.rank import calibration, measure
        from mallocgame.rank.evaluator import Evaluator

        t0 = time.perf_counter()
        self.model, self.budget_kind, self.eval_windows = model, budget_kind, eval_windows
        self.tables = measure.build_tables(model).with_budget_kind(budget_kind)
        self.spec = calibration.CalibSpec.from_dict(self.tables.meta["calibration"])
        self.setup = calibration.load_setup(self.spec)
        self.ev = Evaluator(self.setup, self.tables.choices)
        self.held = HeldOut(self.setup.model, model, eval_windows, self.spec.window)
        self.setup_s = time.perf_counter() - t0

    def run(
        self,
        budget: float,
        solver: str,
        seed: int,
        time_limit: float | None,
        max_evals: int,
        top_k: int,
    ) -> dict[str, Any]:
        t1 = time.perf_counter()
        rec: dict[str, Any] = {
            "model": self.model,
            "model_hash": self.tables.model_hash,
            "budget": budget,
            "budget_kind": self.budget_kind,
            "solver": solver,
            "seed": seed,
            "time_limit_s": time_limit,
            "eval_windows": self.eval_windows if self.model == "smollm2" else None,
            "calibration": self.spec.to_dict(),
        }
        try:
            rec.update(
                status="ok",
                **solve_and_judge(
                    self.tables,
                    self.setup,
                    self.ev,
                    self.held,
                    budget,
                    solver,
                    seed=seed,
                    time_limit=time_limit,
                    max_evals=max_evals,
                    top_k=top_k,
                ),
            )
        except Exception as e:  # recorded, the bench goes on
            rec.update(
                status="error",
                error=f"{type(e).__name__}: {e}",
                traceback=traceback.format_exc(limit=5),
            )
        rec["wall_s"] = time.perf_counter() - t1
        return rec


#: one run still to make: (budget, solver, seed)
Run = tuple[float, str, int]
#: runs a model's runs, yielding their records in the runs' order: (cfg, model, runs) -> records
Dispatch = Callable[["RankBenchConfig", str, list[Run]], Iterator[dict[str, Any]]]


def judge_locally(cfg: RankBenchConfig, model: str, todo: list[Run]) -> Iterator[dict[str, Any]]:
    """The runs one after another, in this process."""
    judge = Judge(model, cfg.budget_kind, cfg.eval_windows)
    if cfg.progress:
        print(f"{model}: tables and full model in {judge.setup_s:.0f} s", flush=True)
    for b, s, seed in todo:
        yield judge.run(b, s, seed, cfg.time_limit, cfg.max_evals, cfg.top_k)


def run_rank_bench(cfg: RankBenchConfig, dispatch: Dispatch | None = None) -> dict[str, Any]:
    """Runs the missing (model, budget, solver, seed) runs, then writes the report.
    ``dispatch`` runs a model's runs (default :func:`judge_locally`; ``--ray``:
    :func:`mallocgame.bench.rank_distributed.run_rank_bench`)."""
    check_config(cfg)
    _prepare(cfg)
    dispatch = dispatch or judge_locally
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
        for rec in dispatch(cfg, model, todo):
            log.append(rec)
            outcome["runs_done"] += 1
            outcome["errors"] += rec["status"] != "ok"
            if cfg.progress:
                what = (
                    f"held-out loss {rec['heldout']['loss']:.4f}, FLOPs {rec['flops_fraction']:.3f}"
                    f", KV cache {rec['kv_cache_fraction']:.3f}"
                    if rec["status"] == "ok"
                    else rec["error"]
                )
                print(
                    f"{model} budget {rec['budget']:g} {rec['solver']} seed {rec['seed']}: "
                    f"{what} ({rec['wall_s']:.0f} s)",
                    flush=True,
                )
    outcome["report"] = write_rank_report(cfg.out, pictures=cfg.pictures)
    return outcome
