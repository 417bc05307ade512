"""Fidelity of the low-rank runtime on held-out text, and the measurements behind ``rank-eval``.

- Correlations (:func:`pearson`, :func:`spearman`) and MiniLM's agreement with the human
  similarity scores of ``lee.cor`` (:func:`minilm_similarity_scores`, :func:`minilm_fidelity`);
  SmolLM2's perplexity on evaluation windows (:func:`smollm2_fidelity`).
- :func:`evaluate_config`: a rank config's fidelity on the evaluation text (SmolLM2: perplexity
  on the evaluation half of ``lee_background.cor``; MiniLM: cosine to the full embeddings and
  correlation with the human scores), attention FLOPs and, optionally, the measured attention
  latency, each against full attention (``mallocgame rank-eval``).
- :func:`evaluate_decode`: and decoding with the low-rank KV cache against the full model (a
  bucketed config switching buckets as the context grows, :mod:`mallocgame.rank.buckets`).
- :func:`uniform_sweep`: the fidelity of uniform ranks with their own calibration
  (``python -m mallocgame.cli.rank``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.rank import buckets, decode, text
from mallocgame.rank.calibration import load_model, load_setup, model_file_hash, spec_of
from mallocgame.rank.config import MODEL_SHAPES, ModelMismatchError, RankConfig
from mallocgame.rank.latency import attention_latency
from mallocgame.rank.models import minilm as _minilm
from mallocgame.rank.models import smollm2 as _smollm2
from mallocgame.rank.models.minilm import MiniLM
from mallocgame.rank.models.smollm2 import SmolLM
from mallocgame.rank.runtime import attention_flops, calibrate, lowrank_params
from mallocgame.rank.tables import cost_table


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    xs = x[order]
    i = 0
    while i < len(xs):  # average the ranks of ties
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2
        i = j + 1
    return r


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64), np.asarray(b, np.float64))[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64)))


def minilm_similarity_scores(embeddings: np.ndarray, human: np.ndarray) -> dict[str, float]:
    """Pearson / Spearman of cosine similarity with human scores over all pairs i < j."""
    e = np.asarray(embeddings, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    i, j = np.triu_indices(len(e), 1)
    cos = (e @ e.T)[i, j]
    return {"pearson": pearson(cos, human[i, j]), "spearman": spearman(cos, human[i, j])}


def minilm_fidelity(
    model: MiniLM,
    params: dict[str, Any],
    docs: Sequence[str],
    human: np.ndarray,
    full: np.ndarray | None = None,
) -> dict[str, float]:
    """Low-rank vs full MiniLM on the Lee documents: mean/min cosine of each document's two
    embeddings, and both models' correlations with the human scores (``full``: the original
    model's embeddings of ``docs``, if already computed)."""
    full = _minilm.embed_sentences(model, docs) if full is None else full
    low = _minilm.embed_sentences(model, docs, params=params)
    cos = np.sum(full * low, axis=1)
    f, lo = minilm_similarity_scores(full, human), minilm_similarity_scores(low, human)
    return {
        "cos_mean": float(cos.mean()),
        "cos_min": float(cos.min()),
        "pearson_full": f["pearson"],
        "spearman_full": f["spearman"],
        "pearson": lo["pearson"],
        "spearman": lo["spearman"],
    }


def smollm2_fidelity(
    model: SmolLM, params: dict[str, Any], windows: np.ndarray, batch_size: int = 2
) -> float:
    """Perplexity of the (low-rank) SmolLM2 on evaluation windows ``[N, L]``."""
    return _smollm2.perplexity(model, windows, params=params, batch_size=batch_size)


# ----------------------------------------------------------------------------- rank-eval


def _config_setup(cfg: RankConfig, path: str) -> tuple[Any, Any, Any]:
    """(model, calibration spec, :class:`~mallocgame.rank.calibration.RankSetup`) of a config;
    the weight file's hash is checked first, so another model's config is refused before
    loading it."""
    try:
        cfg.check_model(cfg.model, model_file_hash(cfg.model), path)
        model = load_model(cfg.model)
        cfg.check_model(model.config.name, model.model_hash, path)
    except ModelMismatchError as e:
        raise InputError(str(e), path, field="model_hash") from None
    spec = spec_of(cfg, path)
    return model, spec, load_setup(spec)


def _config_params(cfg: RankConfig, path: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model, calibration spec, low-rank parameters) of a config (of a bucketed config: the
    ranks of the bucket of the calibration window's length, the evaluation windows')."""
    model, spec, setup = _config_setup(cfg, path)
    ranks = cfg.for_context(spec.window)
    return model, spec, lowrank_params(model, setup.calib, ranks, bases=setup.bases)


def bucket_summary(cfg: RankConfig) -> list[dict[str, Any]]:
    """A bucketed config's buckets: ``up_to``, ranks, KV-cache fraction (by the kv-cache cost
    table) and attention FLOPs fraction at the config's ``seq_len``; [] without buckets."""
    if cfg.context_buckets is None:
        return []
    out = []
    for i, b in enumerate(cfg.context_buckets):
        c = cfg.bucket_config(i)
        out.append(
            {
                "up_to": b.up_to,
                "r_qk": list(b.r_qk),
                "r_v": list(b.r_v),
                "kv_cache_fraction": kv_cache_fraction(c),
                "flops_fraction": attention_flops(c)["fraction"],
            }
        )
    return out


def evaluate_config(
    cfg: RankConfig,
    path: str,
    eval_windows: int = 16,
    latency: bool = False,
    latency_seq_len: int | None = None,
    repeats: int = 3,
    eval_docs: int | None = None,
) -> dict[str, Any]:
    """Fidelity, FLOPs and (optionally) latency of a rank config against full attention
    (``path`` names the config in errors and in the result)."""
    model, spec, params = _config_params(cfg, path)
    fl = attention_flops(cfg)
    out: dict[str, Any] = {
        "config": path,
        "model": cfg.model,
        "model_hash": cfg.model_hash,
        "seq_len": cfg.seq_len,
        "method": cfg.method,
        "budget": cfg.budget,
        "solver": cfg.meta.get("solver"),
        "r_qk": list(cfg.r_qk),
        "r_v": list(cfg.r_v),
        "calibration": spec.to_dict(),
        "flops_fraction": fl["fraction"],
        "attention_flops": fl["total"],
        "attention_flops_full": fl["full"],
    }
    if cfg.bucketed:
        i = cfg.bucket_index(spec.window)
        out["context_buckets"] = bucket_summary(cfg)
        out["ppl_bucket"] = {
            "index": i,
            "up_to": cfg.context_buckets[i].up_to,
            "window": spec.window,
            "note": f"held-out perplexity with the ranks of the bucket of the evaluation window "
            f"length ({spec.window} tokens)",
        }
    t0 = time.perf_counter()
    if cfg.model == "smollm2":
        split = text.background_split()
        w = text.token_windows(
            lambda s: _smollm2.encode(model, s), split.evaluation, spec.window, eval_windows
        )
        full = _smollm2.perplexity(model, w)
        low = _smollm2.perplexity(model, w, params=params)
        out.update(
            eval_windows=len(w),
            window=spec.window,
            ppl_full=full,
            ppl=low,
            loss=float(np.log(low) - np.log(full)),
        )
    else:
        docs, human = text.lee_docs(), text.lee_human_similarity()
        if eval_docs is not None:
            docs, human = docs[:eval_docs], human[:eval_docs, :eval_docs]
        f = minilm_fidelity(model, params, docs, human)
        out.update(eval_docs=len(docs), **f, loss=1.0 - f["cos_mean"])
    out["fidelity_seconds"] = time.perf_counter() - t0
    if latency:
        L = latency_seq_len or cfg.seq_len
        lat = attention_latency(model, {"full": model.params, "lowrank": params}, L, repeats)
        out["latency"] = {
            "seq_len": L,
            "repeats": repeats,
            "full_s": lat["full"]["seconds"],
            "lowrank_s": lat["lowrank"]["seconds"],
            "ratio": lat["lowrank"]["seconds"] / lat["full"]["seconds"],
            "flops_fraction": attention_flops(cfg, seq_len=L)["fraction"],
        }
    return out


def evaluate_decode(
    cfg: RankConfig,
    path: str,
    context: int,
    new_tokens: int,
    batch: int = 1,
    eval_windows: int = 16,
    repeats: int = 3,
) -> dict[str, Any]:
    """:func:`evaluate_config` (held-out perplexity) and decoding with the low-rank KV cache
    against the full model, measured back to back in this call (:func:`decode.measure_decode`):
    the prompts are the first ``batch`` windows of ``context`` tokens of the evaluation half of
    ``lee_background.cor``, ``new_tokens`` greedy tokens each. SmolLM2 only."""
    if cfg.model != "smollm2":
        raise InputError(
            f"a {cfg.model} config; decoding needs a causal decoder (smollm2)", path, field="model"
        )
    for name, v in (("context", context), ("new-tokens", new_tokens), ("batch", batch)):
        if v < 1:
            raise InputError(f"must be >= 1, got {v}", field=name)
    model, spec, setup = _config_setup(cfg, path)
    limit = model.config.context_length
    if context + new_tokens > limit:
        raise InputError(
            f"{context} + --new-tokens {new_tokens} tokens exceed the model's context of "
            f"{limit} tokens",
            field="context",
        )
    try:
        if cfg.bucketed:
            plan = buckets.bucket_plan(model, setup.calib, cfg, setup.bases)
        else:
            params = lowrank_params(model, setup.calib, cfg, bases=setup.bases)
            decode.check_decodable(params)
    except decode.DecodeUnsupportedError as e:
        raise InputError(str(e), path, field="layers") from None
    out = evaluate_config(cfg, path, eval_windows)
    prompts = text.token_windows(
        lambda s: _smollm2.encode(model, s), text.background_split().evaluation, context, batch
    )
    if len(prompts) < batch:
        raise InputError(
            f"the evaluation text holds {len(prompts)} windows of {context} tokens, fewer than "
            f"{batch}",
            field="batch",
        )
    t0 = time.perf_counter()
    if cfg.bucketed:
        low = buckets.measure_bucketed_decode(model, plan, prompts, new_tokens, repeats)
        full = decode.measure_decode(model, {"full": model.params}, prompts, new_tokens, repeats)
        full = full["full"]
    else:
        m = decode.measure_decode(
            model, {"lowrank": params, "full": model.params}, prompts, new_tokens, repeats
        )
        low, full = m["lowrank"], m["full"]
    out.update(
        kv_cache_bytes=low["kv_cache_bytes"],
        kv_cache_bytes_full=full["kv_cache_bytes"],
        kv_cache_ratio=low["kv_cache_bytes"] / full["kv_cache_bytes"],
        kv_cache_bytes_per_token=low["kv_cache_bytes_per_token"],
        kv_cache_bytes_per_token_full=full["kv_cache_bytes_per_token"],
        kv_cache_fraction_budgeted=kv_cache_fraction(cfg),
        decode_tokens_per_s=low["decode_tokens_per_s"],
        decode_tokens_per_s_full=full["decode_tokens_per_s"],
        decode_speedup=low["decode_tokens_per_s"] / full["decode_tokens_per_s"],
        attention_s_per_token=low["attention_s_per_token"],
        attention_s_per_token_full=full["attention_s_per_token"],
        attention_speedup=full["attention_s_per_token"] / low["attention_s_per_token"],
        decode={
            "context": context,
            "new_tokens": new_tokens,
            "batch": batch,
            "cache_size": context + new_tokens,
            "repeats": repeats,
            "tokens_agree": float(np.mean(low["tokens"] == full["tokens"])),
            "prefill_s": low["prefill_s"],
            "prefill_s_full": full["prefill_s"],
            "decode_step_s": low["decode_step_s"],
            "decode_step_s_full": full["decode_step_s"],
            "seconds": time.perf_counter() - t0,
        },
    )
    if cfg.bucketed:
        out["decode"].update(first_bucket=low["first_bucket"], last_bucket=low["last_bucket"])
        out["switches"] = low["switches"]
    return out


def kv_cache_fraction(cfg: RankConfig) -> float:
    """The config's KV-cache bytes per token as a fraction of the full model's, by the cost
    table of the ``kv-cache`` budget (what the decode cache measures; tested)."""
    hd = cfg.shape.head_dim
    choices = tuple(sorted({*cfg.r_qk, *cfg.r_v, hd}))
    cost, full = cost_table(cfg.model, choices, cfg.seq_len, cfg.method, "kv-cache")
    ranks = [r for pair in zip(cfg.r_qk, cfg.r_v, strict=True) for r in pair]
    idx = [choices.index(r) for r in ranks]
    return float(cost[np.arange(len(idx)), idx].sum() / full)


# ----------------------------------------------------------------------------- uniform sweep


def uniform_sweep(
    model_name: str,
    pairs: Sequence[tuple[int | None, int | None]],
    method: str = "whitened",
    seq_len: int = 512,
    cal_windows: int = 8,
    eval_windows: int | None = None,
    cal_docs: int = 150,
) -> dict[str, Any]:
    """Fidelity of uniform ranks ``pairs`` (``(r_qk, r_v)``, None = full) on the Lee corpora,
    with a calibration of its own: SmolLM2's bases from the first ``cal_windows`` windows of
    ``seq_len`` tokens of the calibration half of ``lee_background.cor``, perplexity on
    ``eval_windows`` windows of the evaluation half (default all); MiniLM's bases from the
    first ``cal_docs`` calibration documents, fidelity on ``lee.cor`` and the human scores.
    One row per pair, with its attention FLOPs as a fraction of full attention."""
    if model_name not in MODEL_SHAPES:
        raise ValueError(f"unknown model {model_name!r}; expected one of {sorted(MODEL_SHAPES)}")
    t0 = time.time()
    split = text.background_split()
    rows = []
    if model_name == "smollm2":
        model = _smollm2.load_smollm2()

        def enc(s: str) -> np.ndarray:
            return _smollm2.encode(model, s)

        cal_w = text.token_windows(enc, split.calibration, seq_len, cal_windows)
        ev_w = text.token_windows(enc, split.evaluation, seq_len, eval_windows)
        calib = calibrate(model, cal_w)
        base = {"full_ppl": _smollm2.perplexity(model, ev_w)}
        for rq, rv in pairs:
            cfg = RankConfig.uniform("smollm2", model.model_hash, rq, rv, seq_len, method=method)
            ppl = _smollm2.perplexity(model, ev_w, params=lowrank_params(model, calib, cfg))
            rows.append(
                {
                    "r_qk": cfg.r_qk[0],
                    "r_v": cfg.r_v[0],
                    "ppl": ppl,
                    "flops_fraction": attention_flops(cfg)["fraction"],
                }
            )
        info = {"cal_windows": len(cal_w), "eval_windows": len(ev_w), "seq_len": seq_len}
    else:
        model = _minilm.load_minilm()
        docs, human = text.lee_docs(), text.lee_human_similarity()
        calib = calibrate(model, list(split.calibration[:cal_docs]))
        full = _minilm.embed_sentences(model, docs)
        base = minilm_similarity_scores(full, human)
        for rq, rv in pairs:
            cfg = RankConfig.uniform("minilm", model.model_hash, rq, rv, 256, method=method)
            f = minilm_fidelity(model, lowrank_params(model, calib, cfg), docs, human, full=full)
            rows.append(
                {
                    "r_qk": cfg.r_qk[0],
                    "r_v": cfg.r_v[0],
                    **f,
                    "flops_fraction": attention_flops(cfg)["fraction"],
                }
            )
        info = {"cal_docs": cal_docs, "cal_tokens": calib.n_tokens, "eval_docs": len(docs)}
    return {
        "model": model_name,
        "model_hash": model.model_hash,
        "method": method,
        **info,
        **base,
        "rows": rows,
        "seconds": time.time() - t0,
    }
