"""Latency of the low-rank attention runtime vs the full model, measured in the same run.

    python benchmarks/bench_rank_latency.py --model smollm2 --seq-lens 512,2048 --ranks 32
    python benchmarks/bench_rank_latency.py --model smollm2 --seq-lens 4096,8192 --layers 4
    python benchmarks/bench_rank_latency.py --model minilm --seq-lens 128,512 --ranks 16 --json
    python benchmarks/bench_rank_latency.py --seq-lens 512,2048,4096,8192 --ranks 32 \
        --fidelity-json runs/rank_fidelity.json --config ranks.json

``--config`` (repeatable) times a rank config file (from ``mallocgame rank``);
``--fidelity-json`` times every config chosen in a ``benchmarks/bench_rank_fidelity.py`` run
for this model (named ``solver@budget``). Beside each measured ratio the FLOPs' *ideal* is
reported: the attention-FLOP fraction, the time ratio the config would reach if time fell
with FLOPs (softmax and masking do not shrink with rank, so the measured ratio stays above it).

Scope ``attention`` (default) jits the attention blocks of the first ``--layers`` layers as one
function (``x <- x + attention(norm(x))`` per layer, batch 1) and times it; scope ``forward``
times the whole model forward (one jitted call per layer). The low-rank parameters come from
the real runtime (:func:`mallocgame.rank.runtime.lowrank_params`) with bases calibrated on
``--cal-windows`` windows of the calibration text (values do not change the timing, shapes do).
Each configuration is compiled first (compile time reported apart) and then timed
``--repeats`` times; the median is reported, with the ratio to the full model at the same
sequence length, and the attention-FLOP fraction of the config.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.io import atomic_write_text
from mallocgame.rank import text
from mallocgame.rank.config import METHODS, RankConfig
from mallocgame.rank.latency import attention_stack as _attention_stack
from mallocgame.rank.latency import cast_layers as _cast_layers
from mallocgame.rank.latency import time_call as _time
from mallocgame.rank.models import minilm as mm
from mallocgame.rank.models import smollm2 as sm
from mallocgame.rank.runtime import attention_flops, calibrate, lowrank_params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["smollm2", "minilm"], default="smollm2")
    ap.add_argument("--seq-lens", default="512,2048", help="comma-separated sequence lengths")
    ap.add_argument("--ranks", default="32", help="comma-separated uniform ranks (r_qk = r_v)")
    ap.add_argument("--method", choices=list(METHODS), default="whitened")
    ap.add_argument("--scope", choices=["attention", "forward"], default="attention")
    ap.add_argument(
        "--layers", type=int, default=None, help="attention scope: first N layers (default all)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cal-windows", type=int, default=1, help="SmolLM2 calibration windows of 512")
    ap.add_argument("--config", action="append", default=[], help="a rank config JSON to time")
    ap.add_argument(
        "--fidelity-json",
        default=None,
        help="time the configs of a bench_rank_fidelity.py run (rows of this model)",
    )
    ap.add_argument(
        "--fidelity-solvers",
        default=None,
        help="only these solvers of --fidelity-json (comma list)",
    )
    ap.add_argument(
        "--attention-impl",
        choices=list(sm.ATTENTION_IMPLS),
        default="blocked",
        help="SmolLM2 attention core: blocked (default, the runtime's), dpa "
        "(jax.nn.dot_product_attention, XLA) or cudnn (its fused flash kernel, GPU, bfloat16)",
    )
    ap.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default=None,
        help="activations and attention weights (default float32; bfloat16 with cudnn)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--json-out", default=None, help="also write the JSON object to this file (after each row)"
    )
    a = ap.parse_args(argv)
    dtype = jnp.dtype(a.dtype or ("bfloat16" if a.attention_impl == "cudnn" else "float32"))
    if a.attention_impl != "blocked" and a.model != "smollm2":
        ap.error(f"--attention-impl {a.attention_impl} is implemented for SmolLM2 only")
    if a.attention_impl == "cudnn" and jax.default_backend() != "gpu":
        ap.error(
            f"--attention-impl cudnn needs a GPU; JAX's backend here is {jax.default_backend()}"
        )

    seq_lens = [int(s) for s in a.seq_lens.split(",")]
    ranks = [int(r) for r in a.ranks.split(",")]
    split = text.background_split()
    if a.model == "smollm2":
        model = sm.load_smollm2()
        calib = calibrate(
            model,
            text.token_windows(
                lambda s: sm.encode(model, s), split.calibration, 512, a.cal_windows
            ),
        )
    else:
        model = mm.load_minilm()
        calib = calibrate(model, list(split.calibration[:16]))
    cfg = model.config
    n_layers = a.layers or cfg.n_layers
    configs = [("full", RankConfig.uniform(a.model, model.model_hash, method=a.method))]
    configs += [
        (f"r{r}", RankConfig.uniform(a.model, model.model_hash, r, r, method=a.method))
        for r in ranks
    ]
    for path in a.config:
        c = RankConfig.from_dict(json.loads(Path(path).read_text()), where=path)
        c.check_model(a.model, model.model_hash, where=path)
        configs.append((Path(path).stem, c))
    if a.fidelity_json:
        keep = set(a.fidelity_solvers.split(",")) if a.fidelity_solvers else None
        for r in json.loads(Path(a.fidelity_json).read_text())["rows"]:
            if r["model"] != a.model or (keep is not None and r["solver"] not in keep):
                continue
            c = RankConfig(a.model, r["model_hash"], r["r_qk"], r["r_v"], 512, method=a.method)
            c.check_model(a.model, model.model_hash, where=a.fidelity_json)
            configs.append((f"{r['solver']}@{r['budget']:g}", c))
    params = {name: lowrank_params(model, calib, c) for name, c in configs}
    if dtype != jnp.float32:
        params = {k: {**p, "layers": _cast_layers(p["layers"], dtype)} for k, p in params.items()}
    stack = _attention_stack(model, n_layers, a.attention_impl)
    rng = np.random.default_rng(0)

    def _summary(rows: list[dict]) -> dict:
        return {
            "model": a.model,
            "model_hash": model.model_hash,
            "scope": a.scope,
            "layers": n_layers if a.scope == "attention" else cfg.n_layers,
            "method": a.method,
            "attention_impl": a.attention_impl,
            "dtype": str(dtype),
            "repeats": a.repeats,
            "device": str(jax.devices()[0]),
            "machine": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
            "jax": jax.__version__,
            "matmul_precision": str(jax.config.jax_default_matmul_precision),
            "rows": rows,
        }

    rows = []
    for L in seq_lens:
        if a.scope == "attention":
            x = jnp.asarray(rng.normal(size=(1, L, cfg.d_model)), dtype)
        else:
            ids = rng.integers(0, cfg.vocab_size, size=(1, L)).astype(np.int32)
        base = None
        for name, c in configs:
            p = params[name]
            if a.scope == "attention":

                def fn(p=p, x=x):
                    return stack(p["layers"], x)

            elif a.model == "smollm2":

                def fn(p=p, ids=ids):
                    return sm.hidden_states(p, cfg, ids)[0]

            else:

                def fn(p=p, ids=ids):
                    return mm.hidden_states(p, cfg, ids, np.ones_like(ids, np.float32))[0]

            sec, first = _time(fn, a.repeats)
            base = sec if name == "full" else base
            fl = attention_flops(
                c, seq_len=L, n_layers=n_layers if a.scope == "attention" else None
            )
            row = {
                "seq_len": L,
                "config": name,
                "r_qk": c.r_qk[0],
                "r_v": c.r_v[0],
                "seconds": sec,
                "first_call_seconds": first,
                "ratio_vs_full": sec / base,
                "attention_flops_fraction": fl["fraction"],
                "speedup": base / sec,
                "ideal_speedup": 1.0 / fl["fraction"],
            }
            if a.attention_impl != "blocked":
                # the fused call pads r_qk and r_v to the wider of the two per layer
                n = n_layers if a.scope == "attention" else cfg.n_layers
                pad = sum(2 * max(q, v) for q, v in zip(c.r_qk[:n], c.r_v[:n], strict=True))
                row["padded_dims_fraction"] = pad / (2 * cfg.head_dim * n)
            rows.append(row)
            if a.json_out:
                atomic_write_text(Path(a.json_out), json.dumps(_summary(rows), indent=1) + "\n")
            if not a.json:
                r = rows[-1]
                print(
                    f"L={L:5d} {name:12s} {sec * 1e3:9.2f} ms  ratio {r['ratio_vs_full']:.3f}  "
                    f"flops (ideal ratio) {fl['fraction']:.3f}  speed-up {r['speedup']:.2f}x of "
                    f"ideal {r['ideal_speedup']:.2f}x  (first call {first:.1f} s)",
                    flush=True,
                )
    out = _summary(rows)
    if a.json_out:
        atomic_write_text(Path(a.json_out), json.dumps(out, indent=1) + "\n")
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
