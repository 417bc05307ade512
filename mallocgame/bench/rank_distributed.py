"""The rank bench on a Ray cluster: ``mallocgame bench rank ... --ray [auto|ADDRESS]``.

A rank run needs its model's rank tables, calibration setup, evaluator and held-out text: a
:class:`~mallocgame.bench.rank.Judge`, seconds to minutes to build. So the runs of a model go to
``judges`` Ray actors that each build one Judge once (``ray_cpus`` CPUs each; as many as the
cluster's CPUs allow, at most one per run) and take the runs one at a time as they free up. Each
run's record is the local bench's (:meth:`Judge.run`: a solver's error is recorded and the bench
goes on); an actor that dies (killed, out of memory) costs its run, recorded as an error, and
Ray restarts it for the next. Records are yielded in the runs' order, so ``runs.jsonl`` reads
as locally and ``--resume`` works across both. Ray is optional (the ``ray`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mallocgame.bench import rank
from mallocgame.bench.rank import Judge, RankBenchConfig, Run
from mallocgame.cluster import connect, import_ray


def judges_for(ray: Any, cfg: RankBenchConfig, runs: int) -> int:
    """How many actors a model's ``runs`` get: the cluster's CPUs over ``ray_cpus``, at least
    one, at most one per run."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return max(1, min(int(runs), int(cpus // max(cfg.ray_cpus, 1e-9))))


def run_rank_bench(cfg: RankBenchConfig) -> dict[str, Any]:
    """:func:`mallocgame.bench.rank.run_rank_bench` with every run on the cluster ``cfg.ray``
    names (joined here; a Ray started here is shut down at the end)."""
    ray = import_ray()  # before anything is written: without ray, nothing happens
    owns = connect(ray, cfg.ray or "auto")
    try:
        return rank.run_rank_bench(cfg, lambda c, m, t: _dispatch(ray, c, m, t))
    finally:
        if owns:
            ray.shutdown()


def _dispatch(
    ray: Any, cfg: RankBenchConfig, model: str, todo: list[Run]
) -> Iterator[dict[str, Any]]:
    remote = ray.remote(Judge).options(num_cpus=cfg.ray_cpus, max_restarts=-1, max_task_retries=0)
    actors = [
        remote.remote(model, cfg.budget_kind, cfg.eval_windows)
        for _ in range(judges_for(ray, cfg, len(todo)))
    ]
    if cfg.progress:
        print(f"{model}: {len(todo)} runs on {len(actors)} Ray actors", flush=True)
    free = list(range(len(actors)))
    pending: dict[Any, tuple[int, int]] = {}  # ref -> (run index, actor index)
    results: dict[int, dict[str, Any]] = {}
    nxt, emitted = 0, 0
    try:
        while emitted < len(todo):
            while free and nxt < len(todo):
                a = free.pop()
                b, s, seed = todo[nxt]
                ref = actors[a].run.remote(b, s, seed, cfg.time_limit, cfg.max_evals, cfg.top_k)
                pending[ref] = (nxt, a)
                nxt += 1
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, a = pending.pop(ref)
            free.append(a)
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayError as e:  # the actor died: the run is an error
                results[i] = _died(cfg, model, todo[i], e)
            while emitted in results:
                yield results.pop(emitted)
                emitted += 1
    finally:
        for actor in actors:
            ray.kill(actor)


def _died(cfg: RankBenchConfig, model: str, run: Run, e: Exception) -> dict[str, Any]:
    b, s, seed = run
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return {
        "model": model,
        "budget": b,
        "budget_kind": cfg.budget_kind,
        "solver": s,
        "seed": seed,
        "time_limit_s": cfg.time_limit,
        "status": "error",
        "error": f"the Ray actor died: {type(e).__name__}: {first}",
        "wall_s": 0.0,
    }
