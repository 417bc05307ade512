"""Adaptive ranks by context length: decoding that drops rank as the context grows.

A rank config may keep ranks per context-length bucket (``context_buckets``, version 3, see
:mod:`mallocgame.rank.config`): short contexts keep more rank, long ones less, no bucket more
than the one before it. :func:`bucket_plan` builds each bucket's low-rank parameters (with the
one set of bases of the config's calibration and method) and, for each switch, what the cache
must go through; :func:`generate_bucketed` prefills with the bucket of the prompt's length and,
before the step whose context (``position + 1`` tokens) passes the current bucket's ``up_to``,
re-projects the cache into the next bucket's ranks (:func:`reproject`) and continues with that
bucket's parameters. :func:`compose` makes a bucketed config of plain ones (``mallocgame
rank-buckets``); :func:`measure_bucketed_decode` is ``rank-eval --decode``'s measurement.

**The re-projection is exact.** The runtime's rank-``r`` maps are the first ``r`` columns of
one full per-layer basis (:func:`mallocgame.rank.runtime.layer_params`: ``qk_b[:, :, :r]``,
``v_a[:, :, :r]``, the same key mean and value mean at every rank), so per layer and part:

- from rank ``r0 < 64`` to ``r1 < r0``: the cache's last dimension is cut to ``r1``
  (``(k - mu_k) B[:, :r1]`` are the first ``r1`` columns of ``(k - mu_k) B[:, :r0]``);
- from full rank (the raw post-RoPE keys / values, the runtime's bypass) to ``r1``: the keys
  become ``(k - mu_k) B[:, :r1]`` (repeated per query head where the maps are), the values
  ``(v - mu_v) A^v[:, :r1]`` (likewise): what the rank-``r1`` maps compute from the same
  layer input (``wv A + (bv - mu_v) A``);
- equal ranks: untouched.

So after a switch each layer's cache is, up to float rounding, the rank-``r1`` cache of the
hidden states it was written from (tested). Those hidden states, of the tokens before the
switch, were computed with the earlier bucket's ranks in the layers below: a switched run
equals a run at the lower ranks from the start only where the buckets differ in one layer (the
last differing layer's inputs are the same in both runs; tested), and elsewhere differs from
it by what the higher ranks changed in the earlier tokens' states (no re-computation of the
context is done). The output projections are each bucket's own (refitted per rank).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.errors import InputError
from mallocgame.rank import decode
from mallocgame.rank.calibration import spec_of
from mallocgame.rank.config import ContextBucket, RankConfig
from mallocgame.rank.models import smollm2 as sm
from mallocgame.rank.runtime import Calibration, LayerBases, cached_bases, lowrank_params

# ----------------------------------------------------------------------------- composing


def compose(entries: Sequence[tuple[int | None, RankConfig, str]]) -> RankConfig:
    """One bucketed config of plain configs ``(up_to, config, path)`` in the order given
    (``up_to`` None: the model's context). Refused with a one-line :class:`InputError` naming
    the file and field: another model, weights, method, calibration or ``seq_len`` than the
    first's, per-group ranks, an already bucketed config, ``up_to`` not ascending (or given
    twice), a last bucket short of the model's context, a rank above the bucket before's.
    The top-level ranks and budget are those of the bucket holding ``seq_len``; ``meta``
    records each bucket's source, budget and solver, and the first's calibration."""
    if not entries:
        raise InputError("give at least one --bucket UP_TO:CONFIG.json", field="bucket")
    _, first, first_path = entries[0]
    spec0 = spec_of(first, first_path)
    hd = first.shape.head_dim
    buckets: list[ContextBucket] = []
    meta_buckets: list[dict[str, Any]] = []
    prev: tuple[int, RankConfig, str] | None = None
    for up_to, cfg, path in entries:
        up_to = cfg.shape.max_context if up_to is None else int(up_to)
        for name, ours, theirs in (
            ("model", cfg.model, first.model),
            ("model_hash", cfg.model_hash, first.model_hash),
            ("method", cfg.method, first.method),
            ("seq_len", cfg.seq_len, first.seq_len),
        ):
            if ours != theirs:
                raise InputError(
                    f"{name} {ours!r} differs from {theirs!r} of {first_path}: the buckets of a "
                    "config share one model, method and calibration",
                    path,
                    field=name,
                )
        if not spec_of(cfg, path).same_bases(spec0):
            raise InputError(
                f"calibration {spec_of(cfg, path).to_dict()} differs from {spec0.to_dict()} of "
                f"{first_path}: the buckets of a config share one set of bases",
                path,
                field="meta.calibration",
            )
        if cfg.bucketed:
            raise InputError("already a bucketed config", path, field="context_buckets")
        if cfg.grouped:
            raise InputError(
                "per-group ranks (qk_groups / v_groups) cannot be bucketed: the decode cache "
                "keeps one rank per layer and part",
                path,
                field="layers",
            )
        if up_to < 1:
            raise InputError(f"up_to must be >= 1, got {up_to}", path, field="bucket")
        if prev is not None:
            p_up, p_cfg, p_path = prev
            if up_to <= p_up:
                why = "given twice" if up_to == p_up else f"after {p_up} ({p_path})"
                raise InputError(
                    f"up_to {up_to} {why}: give the buckets in strictly ascending up_to",
                    path,
                    field="bucket",
                )
            for part in ("r_qk", "r_v"):
                for i, (r, r0) in enumerate(
                    zip(getattr(cfg, part), getattr(p_cfg, part), strict=True)
                ):
                    if r > r0:
                        raise InputError(
                            f"layer {i} {part} {r} (bucket up to {up_to}) is larger than {r0} in "
                            f"{p_path} (bucket up to {p_up}): a longer context keeps no more "
                            "rank (the cache only loses rank when it switches)",
                            path,
                            field=f"layers[{i}].{part}",
                        )
        assert all(r <= hd for r in cfg.r_qk + cfg.r_v)
        buckets.append(ContextBucket(up_to, cfg.r_qk, cfg.r_v))
        meta_buckets.append(
            {"up_to": up_to, "source": path, "budget": cfg.budget, "solver": cfg.meta.get("solver")}
        )
        prev = (up_to, cfg, path)
    last = buckets[-1].up_to
    if last < first.shape.max_context:
        raise InputError(
            f"the last bucket ends at {last}, short of {first.model}'s context of "
            f"{first.shape.max_context} tokens (use max:CONFIG.json)",
            entries[-1][2],
            field="bucket",
        )
    holder = next(j for j, b in enumerate(buckets) if first.seq_len <= b.up_to)
    meta: dict[str, Any] = {"composed_by": "rank-buckets", "context_buckets": meta_buckets}
    if "calibration" in first.meta:
        meta["calibration"] = first.meta["calibration"]
    return RankConfig.with_buckets(
        first,
        buckets,
        budget=entries[holder][1].budget,
        meta=meta,
        rank_multiple=min(c.rank_multiple for _, c, _ in entries),
    )


# ----------------------------------------------------------------------------- the plan

#: per layer and part, what a switch does: ``("keep", r)``, ``("slice", r)`` or
#: ``("project", r)`` (raw full-rank keys / values into the rank-``r`` basis)
Op = tuple[str, int]


@dataclasses.dataclass(frozen=True, eq=False)
class BucketPlan:
    """What :func:`generate_bucketed` runs: each bucket's ``up_to`` and parameters, and per
    switch into bucket ``j`` (``j >= 1``) the layers whose cache changes, their ops and maps."""

    config: RankConfig
    up_to: tuple[int, ...]
    params: tuple[dict[str, Any], ...]
    #: ``switch_layers[j - 1]``: the layers a switch into bucket ``j`` re-projects
    switch_layers: tuple[tuple[int, ...], ...]
    #: ``switch_ops[j - 1]``: their ``(keys op, values op)``, static for the jitted function
    switch_ops: tuple[tuple[tuple[Op, Op], ...], ...]
    #: ``switch_maps[j - 1]``: their arrays (``qk_b``/``k_mean``, ``v_a``/``v_mean`` to project)
    switch_maps: tuple[tuple[dict[str, jax.Array], ...], ...]

    def bucket_index(self, length: int) -> int:
        """The bucket of a context of ``length`` tokens (``ValueError`` beyond the last)."""
        for i, u in enumerate(self.up_to):
            if length <= u:
                return i
        raise ValueError(f"a context of {length} tokens is beyond the last bucket ({self.up_to})")


def bucket_plan(
    model: sm.SmolLM,
    calib: Calibration,
    cfg: RankConfig,
    bases: Sequence[LayerBases] | None = None,
) -> BucketPlan:
    """The :class:`BucketPlan` of ``cfg`` (a config without buckets is one bucket up to the
    model's context): every bucket's parameters with the same ``bases`` (default: the
    calibration's, :func:`~mallocgame.rank.runtime.cached_bases`), full-rank parts bypassed
    (so a part at rank 64 caches the raw keys / values). Raises
    :class:`~mallocgame.rank.decode.DecodeUnsupportedError` for per-group ranks."""
    if bases is None:
        bases = cached_bases(model, calib, cfg.method)
    if cfg.context_buckets is None:
        configs, up_to = [cfg], (cfg.shape.max_context,)
    else:
        configs = [cfg.bucket_config(i) for i in range(len(cfg.context_buckets))]
        up_to = tuple(b.up_to for b in cfg.context_buckets)
    params = tuple(lowrank_params(model, calib, c, bases=bases) for c in configs)
    for p in params:
        decode.check_decodable(p)
    hd = model.config.head_dim
    layers, ops, maps = [], [], []
    for j in range(1, len(configs)):
        a, b = configs[j - 1], configs[j]
        li, lo, lm = [], [], []
        for i in range(len(b.r_qk)):
            kop = _op(a.r_qk[i], b.r_qk[i], hd, f"layer {i} r_qk")
            vop = _op(a.r_v[i], b.r_v[i], hd, f"layer {i} r_v")
            if kop[0] == vop[0] == "keep":
                continue
            p1 = params[j]["layers"][i]
            m: dict[str, jax.Array] = {}
            if kop[0] == "project":
                m.update(qk_b=p1["qk_b"], k_mean=p1["k_mean"])
            if vop[0] == "project":
                va = bases[i].v_a[:, :, : vop[1]]  # [V, hd, r]: one map per group or head
                V = p1["wv"].shape[1]
                if va.shape[0] != V:
                    raise ValueError(f"layer {i}: {va.shape[0]} value maps, the params {V}")
                mv = calib.layers[i].mv  # [G, hd]
                m.update(
                    v_a=jnp.asarray(va, jnp.float32),
                    v_mean=jnp.asarray(np.repeat(mv, V // len(mv), axis=0), jnp.float32),
                )
            li.append(i)
            lo.append((kop, vop))
            lm.append(m)
        layers.append(tuple(li))
        ops.append(tuple(lo))
        maps.append(tuple(lm))
    return BucketPlan(cfg, up_to, params, tuple(layers), tuple(ops), tuple(maps))


def _op(r0: int, r1: int, hd: int, what: str) -> Op:
    if r1 > r0:
        raise ValueError(f"{what}: rank {r1} after {r0}; a switch only lowers rank")
    if r1 == r0:
        return ("keep", r1)
    return ("project", r1) if r0 == hd else ("slice", r1)


def _reproject(
    cache: list[dict[str, jax.Array]],
    maps: tuple[dict[str, jax.Array], ...],
    ops: tuple[tuple[Op, Op], ...],
) -> list[dict[str, jax.Array]]:
    out = []
    for c, m, ((kop, rk), (vop, rv)) in zip(cache, maps, ops, strict=True):
        k, v = c["k"], c["v"]
        if kop == "slice":
            k = k[..., :rk]
        elif kop == "project":  # raw post-RoPE keys [B, G, S, hd] -> [B, K, S, rk]
            k = sm._project_keys(k, m["qk_b"], m["k_mean"])
        if vop == "slice":
            v = v[..., :rv]
        elif vop == "project":  # raw values [B, G, S, hd] -> [B, V, S, rv]
            vv = sm._repeat_units(v, m["v_a"].shape[0], 1) - m["v_mean"][None, :, None, :]
            v = jnp.einsum("bgld,gdr->bglr", vv, m["v_a"]).astype(c["v"].dtype)
        out.append({"k": k.astype(c["k"].dtype), "v": v})
    return out


#: the cache of the layers a switch changes, re-projected: ``(cache, maps, ops) -> cache``
reproject = jax.jit(_reproject, static_argnames=("ops",))


def switch_cache(plan: BucketPlan, j: int, cache: decode.Cache, fn: Any = None) -> decode.Cache:
    """``cache`` (bucket ``j - 1``'s ranks) in bucket ``j``'s (exact, see the module doc);
    ``fn``: :data:`reproject` compiled for these shapes (default: jitted on the call)."""
    layers = plan.switch_layers[j - 1]
    if not layers:
        return list(cache)
    fn = fn or (lambda c, m: reproject(c, m, plan.switch_ops[j - 1]))
    sub = fn([cache[i] for i in layers], plan.switch_maps[j - 1])
    out = list(cache)
    for i, c in zip(layers, sub, strict=True):
        out[i] = c
    return out


def _struct(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


# ----------------------------------------------------------------------------- generation


def generate_bucketed(
    plan: BucketPlan,
    cfg: sm.SmolLMConfig,
    prompt: np.ndarray,
    new_tokens: int,
    keep_logits: bool = False,
) -> tuple[decode.Generation, decode.Cache]:
    """:func:`mallocgame.rank.decode.generate` with context buckets: prefill ``prompt[B, L]``
    with the bucket of ``L`` tokens, then before the step at position ``t`` whose context
    ``t + 1`` passes the current bucket's ``up_to``, re-project the cache into the next
    bucket's ranks (:func:`switch_cache`; timed until its arrays are ready, each re-projection
    and each bucket's step compiled ahead and reported apart) and go on with its parameters.
    Greedy; the cache has ``L + new_tokens`` positions. Returns the :class:`Generation` (with
    ``first_bucket`` and ``switches``) and the final cache."""
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    prompt = np.asarray(prompt, np.int32)
    B, L = prompt.shape
    size = L + new_tokens
    b = plan.bucket_index(L)
    last_b = plan.bucket_index(size)
    t0 = time.perf_counter()
    last, cache = decode.prefill(plan.params[b], cfg, prompt, size)
    tok = jnp.argmax(last, axis=-1).astype(jnp.int32)
    jax.block_until_ready((tok, cache))
    t1 = time.perf_counter()
    steps, switch_fns, switch_compile = {}, {}, {}
    shapes = _struct(cache)
    for j in range(b, last_b + 1):
        if j > b:  # the re-projection into bucket j, for the shapes of bucket j - 1's cache
            layers, ops, maps = (
                plan.switch_layers[j - 1],
                plan.switch_ops[j - 1],
                plan.switch_maps[j - 1],
            )
            sub = [shapes[i] for i in layers]
            tc = time.perf_counter()
            switch_fns[j] = reproject.lower(sub, maps, ops).compile() if layers else None
            switch_compile[j] = time.perf_counter() - tc
            new = jax.eval_shape(lambda c, m, o=ops: _reproject(c, m, o), sub, maps)
            shapes = list(shapes)
            for i, s in zip(layers, _struct(new), strict=True):
                shapes[i] = s
        steps[j] = decode.step.lower(plan.params[j], cfg, shapes, tok, jnp.int32(L)).compile()
    compile_s = time.perf_counter() - t1 - sum(switch_compile.values())
    switches: list[decode.Switch] = []
    first = b

    def before_step(t: int, cache: decode.Cache) -> decode.Cache:
        nonlocal b
        while t + 1 > plan.up_to[b]:
            fn = switch_fns[b + 1]
            ts = time.perf_counter()
            cache = switch_cache(plan, b + 1, cache, fn)
            jax.block_until_ready(cache)
            sec = time.perf_counter() - ts
            b += 1
            switches.append(
                decode.Switch(t, b - 1, b, sec, switch_compile[b], decode.cache_bytes(cache))
            )
        return cache

    tokens, logits, times, cache = decode.decode_steps(
        lambda c, tk, t: steps[b](plan.params[b], c, tk, t),
        last,
        tok,
        cache,
        L,
        new_tokens,
        keep_logits,
        before_step,
    )
    gen = decode.Generation(
        tokens=tokens,
        logits=logits,
        prefill_s=t1 - t0,
        compile_s=compile_s,
        step_s=times,
        cache_bytes=decode.cache_bytes(cache),
        cache_size=size,
        batch=B,
        first_bucket=first,
        switches=switches,
    )
    return gen, cache


def measure_bucketed_decode(
    model: sm.SmolLM, plan: BucketPlan, prompt: np.ndarray, new_tokens: int, repeats: int = 5
) -> dict[str, Any]:
    """:func:`mallocgame.rank.decode.measure_decode`'s entry for a bucketed decode
    (:func:`generate_bucketed`): the same keys (``kv_cache_bytes``: the final cache's
    ``nbytes``; ``attention_s_per_token``: one step's attention with the last bucket's
    parameters at the end of the cache), and ``first_bucket``, ``last_bucket`` and
    ``switches`` (:meth:`~mallocgame.rank.decode.Switch.to_dict` each)."""
    gen, cache = generate_bucketed(plan, model.config, prompt, new_tokens)
    last = gen.switches[-1].to_bucket if gen.switches else gen.first_bucket
    att, cache = decode.attention_step_seconds(
        plan.params[last], model.config, cache, gen.cache_size - 1, repeats=repeats
    )
    del cache
    return decode.decode_summary(gen, att) | {
        "first_bucket": gen.first_bucket,
        "last_bucket": last,
        "switches": [s.to_dict() for s in gen.switches],
    }
