"""Greedy decoding of SmolLM2 with a KV cache kept in the low-rank runtime's bases.

A prompt ``[B, L]`` is prefilled (one jitted call per layer, the runtime's blocked causal
attention), then tokens are generated one at a time by a jitted step over all layers. Per layer
the cache holds exactly what :func:`mallocgame.rank.models.smollm2.project_qkv` computes:

- ``k[B, K, S, r_qk]``: the centred post-RoPE keys in the query-key basis (``K`` key maps: one
  per key-value group, or per query head with ``"whitened+heads"``); at full rank (a layer the
  runtime bypasses) the post-RoPE keys, ``[B, G, S, 64]``.
- ``v[B, V, S, r_v]``: the values in the value basis (the output projection refitted by the
  runtime, the value mean in its bias); at full rank the values as stored.

``S`` (the cache size) is fixed when the cache is allocated (prompt + new tokens), so the step
compiles once; each step writes its key and value at position ``t``
(``lax.dynamic_update_slice``, the cache buffers donated, so updated in place) and attends over
the whole cache with the positions after ``t`` masked. A step therefore reads the whole cache:
its time is that of a context of ``S`` tokens. Cache bytes are the ``nbytes`` of the arrays
(:func:`cache_bytes`).

:func:`generate` runs the loop (greedy: argmax); :func:`attention_step_seconds` times the
attention alone of one decode step; :func:`measure_decode` measures named parameter sets back
to back on one prompt (``mallocgame rank-eval --decode``). Layers with per-group ranks (tuples
of maps, config version 2) are not supported here (:class:`DecodeUnsupportedError`).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.errors import InputError
from mallocgame.rank.models import smollm2 as sm

Cache = list[dict[str, jax.Array]]


class DecodeUnsupportedError(InputError):
    """Parameters the low-rank decode loop cannot run (per-group ranks)."""


def check_decodable(params: Mapping[str, Any]) -> None:
    """Raise :class:`DecodeUnsupportedError` for layers with per-group maps (tuples)."""
    for i, p in enumerate(params["layers"]):
        if isinstance(p.get("qk_a"), tuple) or isinstance(p["wv"], tuple):
            raise DecodeUnsupportedError(
                f"layer {i} keeps per-group ranks (qk_groups / v_groups); decoding with a "
                "low-rank cache supports one rank per layer and part",
                field="layers",
            )


def layer_cache_dims(p: Mapping[str, Any], cfg: sm.SmolLMConfig) -> tuple[int, int, int, int]:
    """``(K, r_qk, V, r_v)``: key maps and their width, value maps and their width, of the
    cache of layer parameters ``p``."""
    if "qk_b" in p:
        K, _, rk = p["qk_b"].shape
    else:
        K, rk = cfg.n_kv_heads, cfg.head_dim
    _, V, rv = p["wv"].shape
    return int(K), int(rk), int(V), int(rv)


def cache_bytes(cache: Cache) -> int:
    """Bytes of a cache, summed over its arrays (``nbytes``)."""
    return int(sum(a.nbytes for c in cache for a in c.values()))


# ----------------------------------------------------------------------------- prefill


def _prefill_layer(p: dict, cfg: sm.SmolLMConfig, x: jax.Array, size: int):
    h = sm._rms_norm(x, p["attn_norm"], cfg.rms_eps)
    _, _, qu, keys, values = sm.project_qkv(p, cfg, h)
    a, _ = sm.attend_projected(p, cfg, qu, keys, values)
    x = x + a
    x = x + sm.mlp(p, cfg, x)
    pad = ((0, 0), (0, 0), (0, size - keys.shape[2]), (0, 0))
    return x, {"k": jnp.pad(keys, pad), "v": jnp.pad(values, pad)}


_prefill_layer_jit = jax.jit(_prefill_layer, static_argnames=("cfg", "size"))


def _logits(params: dict, cfg: sm.SmolLMConfig, x: jax.Array) -> jax.Array:
    return sm._rms_norm(x, params["out_norm"], cfg.rms_eps) @ params["tok_emb"].T


def prefill(
    params: dict, cfg: sm.SmolLMConfig, ids: np.ndarray, size: int
) -> tuple[jax.Array, Cache]:
    """Run the prompt ``ids[B, L]``: the logits ``[B, vocab]`` of its last position and the
    cache (``size >= L`` positions, the first ``L`` filled)."""
    check_decodable(params)
    ids = np.asarray(ids, np.int32)
    if ids.ndim != 2 or ids.shape[1] < 1 or size < ids.shape[1]:
        raise ValueError(f"prompt must be [B, L >= 1] with L <= size {size}, got {ids.shape}")
    x = params["tok_emb"][jnp.asarray(ids)]
    cache = []
    for p in params["layers"]:
        x, c = _prefill_layer_jit(p, cfg, x, size)
        cache.append(c)
    return _logits(params, cfg, x[:, -1]), cache


# ----------------------------------------------------------------------------- one step


def decode_attention(
    p: dict, cfg: sm.SmolLMConfig, h: jax.Array, c: dict[str, jax.Array], t: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One layer's attention for the normed states ``h[B, 1, D]`` of the token at position
    ``t``: its key and value written into the cache ``c`` at ``t``, then the query attends to
    positions ``0..t``. Returns ``(out[B, 1, D], new cache)``."""
    B = h.shape[0]
    H, hd = cfg.n_heads, cfg.head_dim
    _, _, qu, kn, vn = sm.project_qkv(p, cfg, h, positions=t[None])
    ck = jax.lax.dynamic_update_slice(c["k"], kn.astype(c["k"].dtype), (0, 0, t, 0))
    cv = jax.lax.dynamic_update_slice(c["v"], vn.astype(c["v"].dtype), (0, 0, t, 0))
    K, S, V = ck.shape[1], ck.shape[2], cv.shape[1]
    # heads are group-major: query head h = k * (H / K) + j = v * (H / V) + i
    q = qu.reshape(B, K, H // K, qu.shape[-1]).astype(ck.dtype)
    s = jnp.einsum("bkjr,bksr->bkjs", q, ck) / np.sqrt(hd).astype(np.float32)
    s = jnp.where(jnp.arange(S) <= t, s, jnp.finfo(s.dtype).min)
    a = jax.nn.softmax(s, axis=-1).reshape(B, V, H // V, S)
    o = jnp.einsum("bvjs,bvsd->bvjd", a, cv).reshape(B, H, cv.shape[-1])
    out = jnp.einsum("bhv,hvd->bd", o.astype(p["wo"].dtype), p["wo"])
    if "bo" in p:
        out = out + p["bo"]
    return out[:, None], {"k": ck, "v": cv}


def _step(params: dict, cfg: sm.SmolLMConfig, cache: Cache, tok: jax.Array, t: jax.Array):
    x = params["tok_emb"][tok][:, None, :]
    new = []
    for p, c in zip(params["layers"], cache, strict=True):
        a, c = decode_attention(p, cfg, sm._rms_norm(x, p["attn_norm"], cfg.rms_eps), c, t)
        x = x + a
        x = x + sm.mlp(p, cfg, x)
        new.append(c)
    lg = _logits(params, cfg, x[:, 0])
    return lg, jnp.argmax(lg, axis=-1).astype(jnp.int32), new


#: one decode step of every layer: (params, cache, tokens[B], t) -> (logits, next tokens, cache)
step = jax.jit(_step, static_argnames=("cfg",), donate_argnames=("cache",))


def _attention_only(params: dict, cfg: sm.SmolLMConfig, cache: Cache, h: jax.Array, t):
    out = h
    new = []
    for p, c in zip(params["layers"], cache, strict=True):
        a, c = decode_attention(p, cfg, h, c, t)
        out = out + a
        new.append(c)
    return out, new


#: every layer's attention of one decode step (cache read, scores, softmax, value sum; no MLP, no
#: logits) for the residual stream ``h[B, 1, d]`` at position ``t``: ``(h + sum of the layers'
#: attention outputs, the cache with position t written)``; jitted, the cache donated
attention_only = jax.jit(_attention_only, static_argnames=("cfg",), donate_argnames=("cache",))


# ----------------------------------------------------------------------------- generation


@dataclasses.dataclass(frozen=True)
class Switch:
    """One change of context bucket during a generation (:mod:`mallocgame.rank.buckets`):
    before the step at ``position`` the cache went from bucket ``from_bucket``'s ranks to
    ``to_bucket``'s in ``seconds`` (the jitted re-projection, compiled ahead in ``compile_s``,
    until its arrays were ready); ``cache_bytes``: the cache's ``nbytes`` after it."""

    position: int
    from_bucket: int
    to_bucket: int
    seconds: float
    compile_s: float
    cache_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Generation:
    """What :func:`generate` did: ``tokens[B, T]`` (greedy), ``logits[B, T + 1, vocab]`` (if
    kept: the prefill's last position, then each step's), the timings and the cache; with
    context buckets (:func:`mallocgame.rank.buckets.generate_bucketed`) the bucket of the
    prefill and the switches made."""

    tokens: np.ndarray
    logits: np.ndarray | None
    prefill_s: float
    compile_s: float
    step_s: list[float]
    cache_bytes: int
    cache_size: int
    batch: int
    #: the context bucket the prompt was prefilled with (0 without buckets)
    first_bucket: int = 0
    #: the bucket switches made, in order (none without buckets)
    switches: list[Switch] = dataclasses.field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        """Tokens decoded per second over the batch (``B`` per step; median step time)."""
        return self.batch / statistics.median(self.step_s)

    @property
    def cache_bytes_per_token(self) -> float:
        return self.cache_bytes / (self.batch * self.cache_size)


StepFn = Callable[[Cache, jax.Array, jax.Array], tuple[jax.Array, jax.Array, Cache]]


def decode_steps(
    step_fn: StepFn,
    last: jax.Array,
    tok: jax.Array,
    cache: Cache,
    L: int,
    new_tokens: int,
    keep_logits: bool,
    before_step: Callable[[int, Cache], Cache] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[float], Cache]:
    """The greedy decode loop after a prefill of ``L`` tokens (``last``: its last logits,
    ``tok``: their argmax): ``new_tokens`` steps ``step_fn(cache, tok, t) -> (logits, tok,
    cache)`` at positions ``t = L, L+1, ...``, each timed until its token is ready;
    ``before_step(t, cache) -> cache`` runs untimed before each (e.g. a bucket switch).
    Returns ``(tokens int32[B, new_tokens], logits [B, new_tokens, V] or None, step seconds,
    the final cache)``."""
    tokens, logits, times = [np.asarray(tok)], [np.asarray(last)] if keep_logits else [], []
    for i in range(new_tokens):
        t = L + i
        if before_step is not None:
            cache = before_step(t, cache)
        t2 = time.perf_counter()
        lg, tok, cache = step_fn(cache, tok, jnp.int32(t))
        tok.block_until_ready()
        times.append(time.perf_counter() - t2)
        if i < new_tokens - 1:
            tokens.append(np.asarray(tok))
        if keep_logits:
            logits.append(np.asarray(lg))
    return (
        np.stack(tokens, axis=1),
        np.stack(logits, axis=1) if keep_logits else None,
        times,
        cache,
    )


def generate(
    params: dict,
    cfg: sm.SmolLMConfig,
    prompt: np.ndarray,
    new_tokens: int,
    keep_logits: bool = False,
) -> tuple[Generation, Cache]:
    """Prefill ``prompt[B, L]`` and generate ``new_tokens`` tokens greedily. Every new token is
    fed through one decode step (``new_tokens`` steps, each timed; the step is compiled ahead,
    its compilation reported apart); the cache has ``L + new_tokens`` positions. Returns the
    :class:`Generation` and the final cache."""
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    prompt = np.asarray(prompt, np.int32)
    B, L = prompt.shape
    size = L + new_tokens
    t0 = time.perf_counter()
    last, cache = prefill(params, cfg, prompt, size)
    tok = jnp.argmax(last, axis=-1).astype(jnp.int32)
    jax.block_until_ready((tok, cache))
    t1 = time.perf_counter()
    compiled = step.lower(params, cfg, cache, tok, jnp.int32(L)).compile()
    compile_s = time.perf_counter() - t1
    tokens, logits, times, cache = decode_steps(
        lambda c, tk, t: compiled(params, c, tk, t), last, tok, cache, L, new_tokens, keep_logits
    )
    gen = Generation(
        tokens=tokens,
        logits=logits,
        prefill_s=t1 - t0,
        compile_s=compile_s,
        step_s=times,
        cache_bytes=cache_bytes(cache),
        cache_size=size,
        batch=B,
    )
    return gen, cache


def attention_step_seconds(
    params: dict, cfg: sm.SmolLMConfig, cache: Cache, t: int, repeats: int = 5, seed: int = 0
) -> tuple[float, Cache]:
    """Median seconds of the attention alone (every layer's :func:`decode_attention`, no MLP,
    no embedding) of one decode step at position ``t`` on ``cache``, over ``repeats`` calls
    (compiled ahead). Each call writes position ``t`` of the cache; returns the cache too."""
    B = cache[0]["k"].shape[0]
    h = jnp.asarray(np.random.default_rng(seed).normal(size=(B, 1, cfg.d_model)), jnp.float32)
    tt = jnp.int32(t)
    fn = attention_only.lower(params, cfg, cache, h, tt).compile()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out, cache = fn(params, cache, h, tt)
        out.block_until_ready()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), cache


def measure_decode(
    model: sm.SmolLM,
    params: Mapping[str, dict],
    prompt: np.ndarray,
    new_tokens: int,
    repeats: int = 5,
) -> dict[str, dict[str, Any]]:
    """Each named parameter set's decode on ``prompt[B, L]``, back to back in this call:
    ``{name: {decode_tokens_per_s, kv_cache_bytes, kv_cache_bytes_per_token,
    attention_s_per_token, prefill_s, compile_s, tokens}}``; ``attention_s_per_token``: the
    attention of one decode step (one token of each of the ``B`` sequences) at the end of the
    cache."""
    out = {}
    for name, p in params.items():
        gen, cache = generate(p, model.config, prompt, new_tokens)
        att, cache = attention_step_seconds(
            p, model.config, cache, gen.cache_size - 1, repeats=repeats
        )
        del cache
        out[name] = decode_summary(gen, att)
    return out


def decode_summary(gen: Generation, attention_s: float) -> dict[str, Any]:
    """A generation's figures as :func:`measure_decode` reports them (``attention_s``: the
    attention of one decode step, :func:`attention_step_seconds`)."""
    return {
        "decode_tokens_per_s": gen.tokens_per_s,
        "decode_step_s": statistics.median(gen.step_s),
        "kv_cache_bytes": gen.cache_bytes,
        "kv_cache_bytes_per_token": gen.cache_bytes_per_token,
        "attention_s_per_token": attention_s,
        "prefill_s": gen.prefill_s,
        "compile_s": gen.compile_s,
        "tokens": gen.tokens,
    }
