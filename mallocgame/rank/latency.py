"""Measured attention latency of the low-rank runtime (shared by ``rank-eval --latency`` and
``benchmarks/bench_rank_latency.py``).

:func:`attention_stack` jits the attention blocks of the first ``n_layers`` layers as one
function (``x <- x + attention(norm(x))`` per layer for SmolLM2, ``x <- LN(x + attention(x))``
for MiniLM; batch 1, no MLP) so that timing it measures attention only. :func:`time_call`
runs a function once (compile, reported apart) and then ``repeats`` times, and returns the
median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.rank.models import minilm as mm
from mallocgame.rank.models import smollm2 as sm


def attention_stack(model: Any, n_layers: int, impl: str = "blocked") -> Callable:
    """A jitted function of (layer params list, x[1, L, D]) running n attention blocks.

    ``impl`` (SmolLM2 only): how the attention core runs (:data:`smollm2.ATTENTION_IMPLS`;
    ``"cudnn"`` is the fused GPU kernel and wants bfloat16 inputs, see :func:`cast_layers`)."""
    cfg = model.config
    if isinstance(model, sm.SmolLM):
        if impl not in sm.ATTENTION_IMPLS:
            raise ValueError(
                f"unknown attention impl {impl!r}; expected one of {sm.ATTENTION_IMPLS}"
            )

        def f(layers, x):
            for p in layers[:n_layers]:
                a, _ = sm.attention(p, cfg, sm._rms_norm(x, p["attn_norm"], cfg.rms_eps), impl=impl)
                x = x + a
            return x

    else:
        if impl != "blocked":
            raise ValueError(f"attention impl {impl!r} is implemented for SmolLM2 only")

        def f(layers, x):
            mask = jnp.ones(x.shape[:2], x.dtype)
            for p in layers[:n_layers]:
                a, _ = mm.attention(p, cfg, x, mask)
                x = mm._layer_norm(x + a, p["ln1_g"], p["ln1_b"], cfg.layer_norm_eps)
            return x

    return jax.jit(f)


def cast_layers(layers: list[dict[str, Any]], dtype: Any) -> list[dict[str, Any]]:
    """Each layer's floating-point arrays cast to ``dtype`` (e.g. bfloat16 for the fused GPU
    kernel); other entries as they are."""
    return [
        {
            k: v.astype(dtype)
            if hasattr(v, "dtype") and jnp.issubdtype(v.dtype, jnp.floating)
            else v
            for k, v in p.items()
        }
        for p in layers
    ]


def time_call(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(median seconds over ``repeats`` calls, seconds of the first call incl. compilation)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), first


def attention_latency(
    model: Any,
    params: dict[str, dict[str, Any]],
    seq_len: int,
    repeats: int = 3,
    n_layers: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Median attention time of each named parameter set on one random ``[1, seq_len, D]``
    input, measured back to back in this call: ``{name: {seconds, first_call_seconds}}``."""
    cfg = model.config
    stack = attention_stack(model, n_layers or cfg.n_layers)
    x = jnp.asarray(np.random.default_rng(seed).normal(size=(1, seq_len, cfg.d_model)), jnp.float32)
    out = {}
    for name, p in params.items():
        sec, first = time_call(lambda p=p: stack(p["layers"], x), repeats)
        out[name] = {"seconds": sec, "first_call_seconds": first}
    return out
