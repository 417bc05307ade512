"""``mallocgame rank-buckets``: compose per-bucket rank configs into one with ranks by context.

``add_parser(subparsers)`` registers it (called by :func:`mallocgame.cli.main.build_parser`).

- ``mallocgame rank-buckets --bucket 1024:kv75.json --bucket max:kv40.json --out
  adaptive.json``: contexts of up to 1024 tokens keep ``kv75.json``'s ranks, longer ones
  ``kv40.json``'s; the decode loop re-projects the cache when the context passes 1024
  (:mod:`mallocgame.rank.buckets`). ``max`` is the model's context (SmolLM2: 8192).

The configs must share one model, weights, method, calibration and ``seq_len``, come in
strictly ascending ``up_to``, and no bucket may keep a larger rank in any layer and part than
the one before it; a refusal is one line (exit 2) and writes nothing. The composition is
:func:`mallocgame.rank.buckets.compose`; this module parses, writes and prints.
"""

from __future__ import annotations

import argparse
import json

from mallocgame.cli.common import load_rank_config_arg
from mallocgame.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank-buckets",
        help="compose rank configs into one whose ranks fall as the context grows",
        description="Compose rank configs (e.g. from `mallocgame rank --budget-kind kv-cache` at "
        "different budgets) into one config with ranks per context-length bucket: decoding "
        "(`rank-eval --decode`) prefills with the bucket of the prompt's length and, when the "
        "context passes a bucket's UP_TO, re-projects the KV cache into the next bucket's "
        "(lower) ranks. Written atomically; nothing is written on a refusal.",
    )
    p.add_argument(
        "--bucket",
        action="append",
        required=True,
        metavar="UP_TO:CONFIG.json",
        help="contexts of at most UP_TO tokens (after the previous bucket's) keep CONFIG's ranks; "
        "repeat in ascending UP_TO, the last UP_TO at least the model's context (or 'max')",
    )
    p.add_argument("--out", required=True, help="the bucketed rank config to write")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(fn=cmd_rank_buckets)


def parse_bucket(text: str) -> tuple[int | None, str]:
    """``UP_TO:PATH`` as ``(up_to, path)`` (``max``: None, the model's context)."""
    up_to, sep, path = text.partition(":")
    if not sep or not path:
        raise InputError(f"expected UP_TO:CONFIG.json, got {text!r}", field="bucket")
    if up_to.strip().lower() == "max":
        return None, path
    try:
        n = int(up_to)
    except ValueError:
        raise InputError(
            f"expected UP_TO:CONFIG.json with UP_TO a positive integer or 'max', got {text!r}",
            field="bucket",
        ) from None
    if n < 1:
        raise InputError(f"UP_TO must be >= 1, got {n} in {text!r}", field="bucket")
    return n, path


def cmd_rank_buckets(args: argparse.Namespace) -> int:
    # deferred: the composition imports the runtime (JAX)
    from mallocgame.rank.buckets import compose
    from mallocgame.rank.config import save_rank_config
    from mallocgame.rank.fidelity import bucket_summary

    entries = []
    for text in args.bucket:
        up_to, path = parse_bucket(text)
        entries.append((up_to, load_rank_config_arg(path), path))
    cfg = compose(entries)
    save_rank_config(cfg, args.out)
    summary = {
        "out": args.out,
        "model": cfg.model,
        "model_hash": cfg.model_hash,
        "method": cfg.method,
        "seq_len": cfg.seq_len,
        "context_buckets": [
            {**b, "source": m["source"]}
            for b, m in zip(bucket_summary(cfg), cfg.meta["context_buckets"], strict=True)
        ],
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    n = len(summary["context_buckets"])
    print(f"{args.out}: {cfg.model} {cfg.model_hash} ({cfg.method}), {n} context buckets")
    lo = 0
    for b in summary["context_buckets"]:
        print(
            f"  contexts {lo + 1}..{b['up_to']}: {b['source']}, KV cache "
            f"{b['kv_cache_fraction']:.4f} of full per token, attention FLOPs "
            f"{b['flops_fraction']:.4f} of full at L={cfg.seq_len}"
        )
        lo = b["up_to"]
    return 0
