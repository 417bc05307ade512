"""SmolLM2 decoding with a low-rank KV cache: rank configs at KV-cache budgets, against full.

    python benchmarks/rank_decode.py --context 256 --new-tokens 4 --json-out /tmp/d.json
    python benchmarks/rank_decode.py --solvers uniform,greedy,refine,agent --context 4096 \
        --json-out rank_decode.json

For each budget (fractions of the full KV cache's bytes per token, default 0.5 and 0.25), each
solver builds a config through the library (:func:`mallocgame.bench.rank.solve_and_judge` on
the ``kv-cache`` tables: the rank tables of ``mallocgame rank``, cached; ``refine`` starts
from greedy's answer and its evaluations are counted with greedy's), judged on held-out text
(perplexity on the first ``--eval-windows`` 512-token windows of the evaluation half of
``lee_background.cor``; loss = ``log(ppl / ppl_full)``, ``vs uniform`` = loss / uniform's at
the same budget). Then, in this one process and interleaved round by round (so that the
ratios compare configs measured under the same load):

- attention per decode step (:func:`mallocgame.rank.decode` ``_attention_only``: every
  layer's cache read, scores, softmax and value sum, no MLP) at position ``--context +
  --new-tokens - 1``, batch 1 and 8;
- whole-model decode steps (``decode.step``: all 30 layers, MLP and logits) at batch 1 and 8:
  tokens per second = batch / median step time.

The prompt is the first ``--context`` tokens of the evaluation half; it is prefilled once per
config at batch 1 and its cache repeated over the batch (a step's work does not depend on the
cache's values, and a batch-8 prefill at 4096 tokens costs minutes per config on a 2-core CPU).
Cache bytes are the cache arrays' ``nbytes``.

Peak memory (``--memory``, default on): per config (full, and the best solver's config of
each budget; ``--memory-all`` for every config) a subprocess runs the user's generation,
:func:`mallocgame.rank.decode.generate` on ``--memory-batch`` (8) different prompts of
``--context`` tokens (a real batch prefill, then ``--new-tokens`` greedy steps); the kernel's
resident-set high-water mark (``VmHWM``) is reset (``/proc/self/clear_refs``) just before the
generation and read after it: ``generation_peak_bytes`` = that peak minus the resident set
before it (weights and bases), measured, not computed.

Writes ``--json-out`` (every figure) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.io import atomic_write_text

SOLVERS = ("uniform", "greedy", "refine", "agent")


def _rss(field: str) -> int:
    """Bytes of a ``/proc/self/status`` field (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


# ----------------------------------------------------------------------------- configs


def build_configs(args: argparse.Namespace, out_dir: Path) -> tuple[Any, list[dict[str, Any]]]:
    """Per budget and solver: a config (written to ``out_dir``) and its held-out loss."""
    from mallocgame.bench.rank import HeldOut, solve_and_judge
    from mallocgame.rank import measure
    from mallocgame.rank.calibration import CalibSpec, load_setup
    from mallocgame.rank.config import save_rank_config
    from mallocgame.rank.evaluator import Evaluator

    spec = CalibSpec.default("smollm2")
    spec = CalibSpec("smollm2", args.cal_bases or spec.bases, args.cal_loss or spec.loss)
    measured = any(s != "uniform" for s in args.solvers)
    if measured:
        tables = measure.build_tables("smollm2", spec=spec)
    else:
        tables = measure.cost_only_tables("smollm2")
    tables = tables.with_budget_kind("kv-cache")
    setup = load_setup(spec)
    ev = Evaluator(setup, tables.choices)
    held = HeldOut(setup.model, "smollm2", args.eval_windows, spec.window)
    rows: list[dict[str, Any]] = []
    ch = list(tables.choices)
    for b in args.budgets:
        greedy_idx, greedy_evals = None, 0
        for s in args.solvers:
            t0 = time.perf_counter()
            kw: dict[str, Any] = {}
            if s == "refine":
                kw["refine_evals"] = args.refine_evals
                if greedy_idx is not None:
                    kw["init"] = greedy_idx
            r = solve_and_judge(
                tables,
                setup,
                ev,
                held,
                b,
                s,
                time_limit=args.agent_time if s == "agent" else None,
                max_evals=args.max_evals,
                solver_kw=kw,
            )
            idx = np.asarray(
                [ch.index(x) for pair in zip(r["r_qk"], r["r_v"], strict=True) for x in pair]
            )
            evals = r["solver_evaluations"]
            if s == "greedy":
                greedy_idx, greedy_evals = idx, evals
            if s == "refine" and "init" in kw:
                evals += greedy_evals  # refine went on from greedy's answer
            cfg = tables.config(idx, budget=b, solver=s, calibration=spec.to_dict())
            path = save_rank_config(cfg, out_dir / f"smollm2-kv{b:g}-{s}.json")
            row = {
                "budget": b,
                "solver": s,
                "config": str(path),
                "kv_cache_fraction": r["kv_cache_fraction"],
                "flops_fraction": r["flops_fraction"],
                "r_qk": r["r_qk"],
                "r_v": r["r_v"],
                "calibration_loss": r["calibration_loss"],
                "evaluations": evals,
                "solve_s": r["solve_s"],
                "heldout": r["heldout"],
                "wall_s": time.perf_counter() - t0,
            }
            rows.append(row)
            print(
                f"budget {b:g} {s}: KV cache {row['kv_cache_fraction']:.3f}, held-out ppl "
                f"{r['heldout']['ppl']:.2f} (loss {r['heldout']['loss']:.4f}), {evals} "
                f"evaluations, {row['wall_s']:.0f} s",
                flush=True,
            )
        uni = [r for r in rows if r["budget"] == b and r["solver"] == "uniform"]
        for r in rows:
            if r["budget"] == b and uni:
                r["loss_vs_uniform"] = r["heldout"]["loss"] / uni[0]["heldout"]["loss"]
    return setup, rows


# ----------------------------------------------------------------------------- timing


def _tile(cache: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    import jax.numpy as jnp

    return [{k: jnp.repeat(v, batch, axis=0) for k, v in c.items()} for c in cache]


def time_decode(
    setup: Any, named: dict[str, Any], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Attention per step and whole-model steps at each batch, for every parameter set in
    ``named`` (``{name: params}``), interleaved over ``--rounds`` rounds."""
    import jax
    import jax.numpy as jnp

    from mallocgame.rank import decode, text
    from mallocgame.rank.models import smollm2 as sm

    model = setup.model
    cfg = model.config
    C, N = args.context, args.new_tokens
    prompt = text.token_windows(
        lambda s: sm.encode(model, s), text.background_split().evaluation, C, 1
    )
    size = C + N
    t_att = size - 1
    state: dict[tuple[str, int], dict[str, Any]] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, params in named.items():
        t0 = time.perf_counter()
        last, cache = decode.prefill(params, cfg, prompt, size)
        tok = jnp.argmax(last, axis=-1).astype(jnp.int32)
        jax.block_until_ready((tok, cache))
        out[name] = {"prefill_s_batch1": time.perf_counter() - t0}
        for B in args.batches:
            c = _tile(cache, B)
            tk = jnp.repeat(tok, B, axis=0)
            h = jnp.asarray(np.random.default_rng(0).normal(size=(B, 1, cfg.d_model)), jnp.float32)
            t1 = time.perf_counter()  # compile and warm both functions
            a, c = decode.attention_only(params, cfg, c, h, jnp.int32(t_att))
            lg, tk, c = decode.step(params, cfg, c, tk, jnp.int32(C))
            jax.block_until_ready((a, tk, c))
            out[name][f"batch{B}"] = {
                "kv_cache_bytes": decode.cache_bytes(c),
                "cache_size": size,
                "compile_s": time.perf_counter() - t1,
                "attention_s": [],
                "step_s": [],
            }
            state[(name, B)] = {"cache": c, "tok": tk, "h": h, "pos": 1}
        del cache
        print(
            f"prefilled {name} at context {C} ({out[name]['prefill_s_batch1']:.1f} s; resident "
            f"{_rss('VmRSS') / 2**30:.2f} GiB)",
            flush=True,
        )
    for rnd in range(args.rounds):
        for name, params in named.items():
            for B in args.batches:
                st, rec = state[(name, B)], out[name][f"batch{B}"]
                for _ in range(args.attention_repeats):
                    t0 = time.perf_counter()
                    a, st["cache"] = decode.attention_only(
                        params, cfg, st["cache"], st["h"], jnp.int32(t_att)
                    )
                    a.block_until_ready()
                    rec["attention_s"].append(time.perf_counter() - t0)
                for _ in range(args.steps_per_round):
                    pos = C + st["pos"] % N
                    st["pos"] += 1
                    t0 = time.perf_counter()
                    _, st["tok"], st["cache"] = decode.step(
                        params, cfg, st["cache"], st["tok"], jnp.int32(pos)
                    )
                    st["tok"].block_until_ready()
                    rec["step_s"].append(time.perf_counter() - t0)
        print(f"timing round {rnd + 1}/{args.rounds} done", flush=True)
    for name in named:
        for B in args.batches:
            rec = out[name][f"batch{B}"]
            rec["attention_s_per_step"] = statistics.median(rec["attention_s"])
            rec["attention_s_per_token"] = rec["attention_s_per_step"] / B
            rec["decode_step_s"] = statistics.median(rec["step_s"])
            rec["decode_tokens_per_s"] = B / rec["decode_step_s"]
    return out


# ----------------------------------------------------------------------------- memory


def memory_child(args: argparse.Namespace) -> int:
    """One generation in this process: prints JSON with the measured peak (``--memory-child``)."""
    import jax

    from mallocgame.rank import decode, text
    from mallocgame.rank.calibration import load_setup, spec_of
    from mallocgame.rank.config import load_rank_config
    from mallocgame.rank.models import smollm2 as sm
    from mallocgame.rank.runtime import lowrank_params

    if args.memory_child == "full":
        from mallocgame.rank.calibration import load_model

        model = load_model("smollm2")
        params = model.params
    else:
        cfg = load_rank_config(args.memory_child)
        setup = load_setup(spec_of(cfg, args.memory_child))
        model = setup.model
        params = lowrank_params(model, setup.calib, cfg, bases=setup.bases)
        del setup
    prompts = text.token_windows(
        lambda s: sm.encode(model, s),
        text.background_split().evaluation,
        args.context,
        args.memory_batch,
    )
    jax.block_until_ready(params)
    import gc

    gc.collect()
    before = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    gen, cache = decode.generate(params, model.config, prompts, args.new_tokens)
    jax.block_until_ready(cache)
    wall = time.perf_counter() - t0
    peak = _rss("VmHWM")
    print(
        json.dumps(
            {
                "config": args.memory_child,
                "batch": int(prompts.shape[0]),
                "context": args.context,
                "new_tokens": args.new_tokens,
                "rss_before_bytes": before,
                "peak_rss_bytes": peak,
                "generation_peak_bytes": peak - before,
                "maxrss_lifetime_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "kv_cache_bytes": gen.cache_bytes,
                "prefill_s": gen.prefill_s,
                "decode_tokens_per_s": gen.tokens_per_s,
                "wall_s": wall,
            }
        )
    )
    return 0


def run_memory(config: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", config, "--context", str(args.context)]
    cmd += ["--new-tokens", str(args.new_tokens), "--memory-batch", str(args.memory_batch)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return {"config": config, "error": p.stderr.strip().splitlines()[-1:]}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["subprocess_s"] = time.perf_counter() - t0
    print(
        f"memory {config}: generation peak {r['generation_peak_bytes'] / 2**20:.0f} MiB "
        f"(cache {r['kv_cache_bytes'] / 2**20:.0f} MiB; {r['subprocess_s']:.0f} s)",
        flush=True,
    )
    return r


# ----------------------------------------------------------------------------- report


def table(doc: dict[str, Any]) -> str:
    full = doc["timing"]["full"]
    bs = doc["args"]["batches"]
    L = [
        "| budget | solver | KV cache (measured) | ppl | loss | vs uniform | evaluations | "
        + " | ".join(f"attention/step speedup b{b}" for b in bs)
        + " | "
        + " | ".join(f"decode tok/s b{b} (x full)" for b in bs)
        + " | generation peak MiB (x full) |",
        "|---|---|---|---|---|---|---|" + "---|" * (2 * len(bs) + 1),
    ]
    mem = {m["config"]: m for m in doc.get("memory", []) if "error" not in m}
    mfull = mem.get("full")

    def row(label, solver, t, h, extra, key):
        kv = t[f"batch{bs[0]}"]["kv_cache_bytes"] / full[f"batch{bs[0]}"]["kv_cache_bytes"]

        def at(x, b):
            return x[f"batch{b}"]

        att = " | ".join(
            f"{at(full, b)['attention_s_per_step'] / at(t, b)['attention_s_per_step']:.2f}"
            for b in bs
        )
        dec = " | ".join(
            f"{at(t, b)['decode_tokens_per_s']:.2f} "
            f"({at(t, b)['decode_tokens_per_s'] / at(full, b)['decode_tokens_per_s']:.2f})"
            for b in bs
        )
        m = mem.get(key)
        ms = "-"
        if m and mfull:
            ms = (
                f"{m['generation_peak_bytes'] / 2**20:.0f} "
                f"({m['generation_peak_bytes'] / mfull['generation_peak_bytes']:.2f})"
            )
        L.append(f"| {label} | {solver} | {kv:.3f} | {h} | {extra} | {att} | {dec} | {ms} |")

    row("1", "full", full, f"{doc['ppl_full']:.2f}", "0 | - | -", "full")
    for r in doc["configs"]:
        name = f"{r['budget']:g}/{r['solver']}"
        h = r["heldout"]
        extra = (
            f"{h['loss']:.4f} | {r.get('loss_vs_uniform', float('nan')):.3f} | {r['evaluations']}"
        )
        row(
            f"{r['budget']:g}",
            r["solver"],
            doc["timing"][name],
            f"{h['ppl']:.2f}",
            extra,
            r["config"],
        )
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="SmolLM2 decoding with low-rank KV caches at KV-cache budgets vs full "
        "(held-out loss vs uniform, attention per step, decode tokens/s, peak memory)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2] if __doc__ else None,
    )
    ap.add_argument("--budgets", default="0.5,0.25", help="KV-cache fractions (default 0.5,0.25)")
    ap.add_argument(
        "--solvers",
        default="uniform,greedy,refine",
        help=f"comma-separated, uniform first (of {','.join(SOLVERS)}; default "
        "uniform,greedy,refine)",
    )
    ap.add_argument("--context", type=int, default=4096, help="prompt tokens (default 4096)")
    ap.add_argument("--new-tokens", type=int, default=16, help="decoded tokens (default 16)")
    ap.add_argument("--batches", default="1,8", help="timed batch sizes (default 1,8)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    ap.add_argument("--attention-repeats", type=int, default=2, help="per round (default 2)")
    ap.add_argument("--steps-per-round", type=int, default=3, help="decode steps per round")
    ap.add_argument("--eval-windows", type=int, default=16, help="held-out 512-token windows")
    ap.add_argument("--cal-bases", type=int, default=None, help="calibration windows (default 8)")
    ap.add_argument("--cal-loss", type=int, default=None, help="loss windows (default 1)")
    ap.add_argument("--max-evals", type=int, default=45, help="greedy's measured evaluations")
    ap.add_argument("--refine-evals", type=int, default=60, help="refine's evaluations")
    ap.add_argument("--agent-time", type=float, default=240.0, help="agent seconds (default 240)")
    ap.add_argument("--memory-batch", type=int, default=8, help="batch of the memory runs")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--memory-all", action="store_true", help="peak memory of every config")
    ap.add_argument("--out-dir", default="out/rank_decode", help="configs folder")
    ap.add_argument("--json-out", default="rank_decode.json", help="results JSON")
    ap.add_argument(
        "--reuse-configs",
        default=None,
        metavar="JSON",
        help="take the configs and their held-out figures from this earlier --json-out instead "
        "of solving again (same calibration)",
    )
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child is not None:
        return memory_child(args)
    args.budgets = [float(x) for x in args.budgets.split(",")]
    args.solvers = [s for s in args.solvers.split(",") if s]
    args.batches = [int(x) for x in args.batches.split(",")]
    if args.solvers[0] != "uniform" or any(s not in SOLVERS for s in args.solvers):
        ap.error(f"--solvers: uniform first, then of {SOLVERS}")
    if min(args.batches) < 1 or args.context < 1 or args.new_tokens < 2:
        ap.error("--batches, --context >= 1 and --new-tokens >= 2")
    from mallocgame.rank.runtime import lowrank_params

    t_start = time.perf_counter()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from mallocgame.rank.config import load_rank_config

    if args.reuse_configs:
        from mallocgame.rank.calibration import load_setup, spec_of

        rows = json.loads(Path(args.reuse_configs).read_text())["configs"]
        rows = [r for r in rows if r["budget"] in args.budgets and r["solver"] in args.solvers]
        setup = load_setup(spec_of(load_rank_config(rows[0]["config"]), rows[0]["config"]))
    else:
        setup, rows = build_configs(args, out_dir)
    partial = {"configs": rows, "partial": True}
    atomic_write_text(args.json_out, json.dumps(partial, indent=1))
    named = {"full": setup.model.params}
    for r in rows:
        cfg = load_rank_config(r["config"])
        named[f"{r['budget']:g}/{r['solver']}"] = lowrank_params(
            setup.model, setup.calib, cfg, bases=setup.bases
        )
    t_cfg = time.perf_counter()
    timing = time_decode(setup, named, args)
    del named
    doc: dict[str, Any] = {
        "command": shlex.join([sys.executable.split("/")[-1], *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "args": {k: v for k, v in vars(args).items() if k != "memory_child"},
        "ppl_full": rows[0]["heldout"]["ppl_full"],
        "configs": rows,
        "timing": timing,
        "seconds": {"configs": t_cfg - t_start, "timing": time.perf_counter() - t_cfg},
    }
    atomic_write_text(args.json_out, json.dumps(doc, indent=1))
    if not args.no_memory:
        todo = ["full"]
        for b in args.budgets:
            at = [r for r in rows if r["budget"] == b]
            todo += (
                [r["config"] for r in at]
                if args.memory_all
                else [min(at, key=lambda r: r["heldout"]["loss"])["config"]]
            )
        doc["memory"] = [run_memory(c, args) for c in todo]
    doc["seconds"]["total"] = time.perf_counter() - t_start
    atomic_write_text(args.json_out, json.dumps(doc, indent=1))
    print(table(doc))
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
