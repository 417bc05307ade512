"""``mallocgame rank-eval``: a rank config's fidelity, FLOPs, latency and decode speed.

``add_eval_parser(subparsers)`` registers it (called by :func:`mallocgame.cli.main.build_parser`).
The measurements are :mod:`mallocgame.rank.fidelity`'s (``evaluate_config``,
``evaluate_decode``); this module parses and prints.
"""

from __future__ import annotations

import argparse
import json
import sys

from mallocgame.cli.argtypes import positive_int
from mallocgame.cli.common import fmt_bytes, load_rank_config_arg, progress
from mallocgame.errors import InputError
from mallocgame.rank.config import RankConfig


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank-eval",
        help="fidelity, attention FLOPs and latency of a rank config against full attention",
        description="Load the model the rank config names (refused for other weights), apply the "
        "ranks with the bases of the config's calibration, and report fidelity on the evaluation "
        "text (SmolLM2: perplexity on the evaluation half of lee_background.cor; MiniLM: cosine to "
        "the full embeddings and Pearson/Spearman against the human scores on lee.cor), attention "
        "FLOPs and, with --latency, measured attention time, each against full attention.",
    )
    p.add_argument("config", help="rank config JSON (from `mallocgame rank`)")
    p.add_argument(
        "--eval-windows",
        type=positive_int,
        default=16,
        help="SmolLM2 evaluation windows (default 16 of 73)",
    )
    p.add_argument(
        "--eval-docs",
        type=positive_int,
        default=None,
        help="MiniLM: only the first N lee.cor documents (default all 50)",
    )
    p.add_argument(
        "--latency", action="store_true", help="also time attention (jitted, batch 1) vs full"
    )
    p.add_argument(
        "--latency-seq-len",
        type=positive_int,
        default=None,
        help="sequence length of the timing (default: the config's)",
    )
    p.add_argument(
        "--repeats", type=positive_int, default=3, help="timed repeats (median; default 3)"
    )
    p.add_argument(
        "--decode",
        action="store_true",
        help="smollm2: also prefill --context tokens of evaluation text and decode --new-tokens "
        "greedily with the low-rank KV cache, against the full model in the same run: tokens "
        "per second, cache bytes, attention time per step",
    )
    p.add_argument("--context", type=int, default=512, help="--decode: prompt tokens (default 512)")
    p.add_argument(
        "--new-tokens", type=int, default=32, help="--decode: tokens to generate (default 32)"
    )
    p.add_argument(
        "--batch", type=int, default=1, help="--decode: sequences decoded together (default 1)"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(fn=cmd_rank_eval)


# --------------------------------------------------------------------------- rank-eval
def check_decode_args(args: argparse.Namespace, cfg: RankConfig) -> None:
    """One-line :class:`InputError` naming the option for bad ``--decode`` input (the context
    against the model's is checked once the model is loaded)."""
    for name in ("context", "new_tokens", "batch"):
        v = getattr(args, name)
        if v < 1:
            raise InputError(f"must be >= 1, got {v}", field=name.replace("_", "-"))
    if not args.decode:
        return
    if cfg.model != "smollm2":
        raise InputError(
            f"{args.config} is a {cfg.model} config; decoding needs a causal decoder (smollm2)",
            field="decode",
        )


def cmd_rank_eval(args: argparse.Namespace) -> int:
    # deferred: JAX and the models
    from mallocgame.rank.fidelity import evaluate_config, evaluate_decode

    cfg = load_rank_config_arg(args.config)
    check_decode_args(args, cfg)
    with progress(f"evaluating {args.config}", quiet=args.json):
        if args.decode:
            r = evaluate_decode(
                cfg,
                args.config,
                context=args.context,
                new_tokens=args.new_tokens,
                batch=args.batch,
                eval_windows=args.eval_windows,
                repeats=args.repeats,
            )
        else:
            r = evaluate_config(
                cfg,
                args.config,
                args.eval_windows,
                args.latency,
                args.latency_seq_len,
                args.repeats,
                args.eval_docs,
            )
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    solver = f" ({r['solver']})" if r["solver"] else ""
    print(
        f"{args.config}: {r['model']} {r['model_hash']}{solver}, attention FLOPs "
        f"{r['flops_fraction']:.4f} of full at L={r['seq_len']}"
    )
    if r["model"] == "smollm2":
        print(
            f"  perplexity {r['ppl']:.3f} vs full {r['ppl_full']:.3f} "
            f"({r['eval_windows']} evaluation windows of {r['window']} tokens; "
            f"log ratio {r['loss']:.4f})"
        )
    else:
        print(
            f"  cosine to full embeddings: mean {r['cos_mean']:.4f}, min {r['cos_min']:.4f} "
            f"({r['eval_docs']} lee.cor documents)"
        )
        print(
            f"  human scores: Pearson {r['pearson']:.3f} (full {r['pearson_full']:.3f}), "
            f"Spearman {r['spearman']:.3f} (full {r['spearman_full']:.3f})"
        )
    if "ppl_bucket" in r:
        b = r["ppl_bucket"]
        print(f"  {b['note']}: context bucket {b['index']} (up to {b['up_to']} tokens)")
    if "latency" in r:
        lat = r["latency"]
        print(
            f"  attention latency at L={lat['seq_len']}: {lat['lowrank_s'] * 1e3:.1f} ms vs full "
            f"{lat['full_s'] * 1e3:.1f} ms (ratio {lat['ratio']:.3f}, "
            f"FLOPs {lat['flops_fraction']:.3f}; median of {lat['repeats']})"
        )
    if "decode" in r:
        d = r["decode"]
        print(
            f"  decode at context {d['context']} + {d['new_tokens']} new tokens, batch "
            f"{d['batch']}: {r['decode_tokens_per_s']:.1f} tokens/s vs full "
            f"{r['decode_tokens_per_s_full']:.1f} ({r['decode_speedup']:.3f}x)"
        )
        print(
            f"  KV cache {r['kv_cache_bytes'] / 2**20:.2f} MiB vs full "
            f"{r['kv_cache_bytes_full'] / 2**20:.2f} MiB (ratio {r['kv_cache_ratio']:.4f}); "
            f"attention per step {r['attention_s_per_token'] * 1e3:.2f} ms vs full "
            f"{r['attention_s_per_token_full'] * 1e3:.2f} ms ({r['attention_speedup']:.3f}x)"
        )
        print(f"  greedy tokens equal to the full model's: {d['tokens_agree']:.3f}")
        if "switches" in r:
            print(
                f"  context buckets: prefilled with bucket {d['first_bucket']}, "
                f"{len(r['switches'])} switches, decoded last with bucket {d['last_bucket']}"
            )
        for sw in r.get("switches", []):
            print(
                f"    at position {sw['position']}: bucket {sw['from_bucket']} -> "
                f"{sw['to_bucket']}, cache re-projected in {sw['seconds'] * 1e3:.2f} ms, then "
                f"{fmt_bytes(sw['cache_bytes'])}"
            )
    sys.stdout.flush()
    return 0
