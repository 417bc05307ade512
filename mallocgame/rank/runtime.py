"""Low-rank attention runtime: learn bases from calibration text, compute attention in fewer dims.

Per layer and per key-value head group ``g`` (SmolLM2: 3 groups of 3 query heads; MiniLM: one
head per group), calibration collects second moments of the attention activations on real
text (:func:`calibrate`). From them, :func:`lowrank_params` builds a transformed copy of the
model's parameters in which

- **query-key** (rank ``r_qk``): queries are mapped by ``A_g[hd, r]`` and centred keys by
  ``B_g[hd, r]`` so that ``q . k ~ (q A_g) . ((k - mu_k) B_g)`` (the dropped ``q . mu_k`` is
  constant along each softmax row). For SmolLM2 this happens after RoPE, at run time; for
  MiniLM the maps fold into ``wq, bq, wk, bk``. Scores cost ``L * L * r_qk`` per head.
- **values** (rank ``r_v``): centred values are projected by ``A^v_g[hd, r]`` folded into
  ``wv``/``bv`` (values are *computed* in ``r`` dims), ``P (v A^v)`` costs ``L * L * r_v`` per
  head, and the output projection is refitted per query head by least squares on the
  calibration attention outputs (``wo[h] <- (A^T C_h A)^{-1} A^T C_h wo[h]``); the value mean
  returns as an output bias (softmax rows sum to one, so this is exact).

Methods (``RankConfig.method``):

- ``"whitened"`` (default): the basis minimising the expected squared error of the scores
  (``E (q (I - A B^T) k)^2``: best rank-``r`` approximation of ``Cq^{1/2} Ck^{1/2}``, with
  ``Cq`` averaged over the group's query heads) and of the head outputs
  (``E |o (I - A B) Wo|^2``: best rank-``r`` approximation of ``Co^{1/2} Wo``).
- ``"pca"``: one orthonormal basis ``U`` of the principal directions of the centred
  post-RoPE keys, for both q and k (``q . k ~ (q U) . (k U)``), and of the centred head
  outputs for the values.
- ``"whitened+heads"``: ``"whitened"`` with one basis per *query head* instead of one per
  key-value group (SmolLM2: each of a group's 3 query heads gets its own key map ``B_h`` and
  value map ``A^v_h``, fitted to its own queries and outputs). The scores and ``P v`` cost the
  same ``L * L * r`` per head; keys and values are projected once per query head (``L * hd *
  r`` each, linear in ``L``). The layer is computed as if every query head had its own
  key-value head (:func:`head_view`; the runtime repeats the post-RoPE keys). Per-group
  ranks give each head of a group the group's rank.

At full rank both are exact; with ``bypass_full`` (default) a layer at full rank keeps the
original weights and skips the projection (no extra FLOPs). Shapes are stated per module:
``H`` query heads, ``G`` KV heads, ``hd`` head dim, ``D`` model dims, ``L`` tokens.
:func:`attention_flops` counts a config's attention FLOPs; the runtime's fidelity on held-out
text is measured by :mod:`mallocgame.rank.fidelity`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from mallocgame.rank.config import (
    MODEL_SHAPES,
    ModelMismatchError,
    RankConfig,
    per_head,
    per_head_keys,
)
from mallocgame.rank.models import minilm as _minilm
from mallocgame.rank.models import smollm2 as _smollm2

Model = _minilm.MiniLM | _smollm2.SmolLM


@dataclasses.dataclass(frozen=True, eq=False)
class LayerStats:
    """Token-averaged moments of one layer's attention (numpy float64).

    ``cq[H, hd, hd]``: E[q q^T] (post-RoPE for SmolLM2); ``mk[G, hd]``, ``ck[G, hd, hd]``: mean
    and covariance of keys; ``mv[G, hd]``: value mean; ``co[H, hd, hd]``: E[(o - mv)(o - mv)^T]
    of each query head's attention output ``o``.
    """

    cq: np.ndarray
    mk: np.ndarray
    ck: np.ndarray
    mv: np.ndarray
    co: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
    """Per-layer statistics of a model on calibration text."""

    model: str
    model_hash: str
    n_tokens: int
    layers: tuple[LayerStats, ...]

    def save(self, path: str) -> None:
        arrays = {
            f"{k}{i}": getattr(s, k)
            for i, s in enumerate(self.layers)
            for k in ("cq", "mk", "ck", "mv", "co")
        }
        np.savez(
            path, model=self.model, model_hash=self.model_hash, n_tokens=self.n_tokens, **arrays
        )

    @classmethod
    def load(cls, path: str) -> Calibration:
        z = np.load(path)
        n = len([k for k in z.files if k.startswith("cq")])
        layers = tuple(
            LayerStats(*(z[f"{k}{i}"] for k in ("cq", "mk", "ck", "mv", "co"))) for i in range(n)
        )
        return cls(str(z["model"]), str(z["model_hash"]), int(z["n_tokens"]), layers)


def _is_smollm(model: Model) -> bool:
    return isinstance(model, _smollm2.SmolLM)


def _finish(sums: list[dict[str, np.ndarray]], G: int, n_rep: int) -> tuple[LayerStats, ...]:
    out = []
    for s in sums:
        n = float(s["n"])
        mk = s["k1"] / n
        mv = s["v1"] / n
        mvh = np.repeat(mv, n_rep, axis=0)  # [H, hd]: each query head's group mean
        o1 = s["o1"] / n
        co = s["o2"] / n - np.einsum("hi,hj->hij", o1, mvh) - np.einsum("hi,hj->hij", mvh, o1)
        co = co + np.einsum("hi,hj->hij", mvh, mvh)
        ck = s["k2"] / n - np.einsum("gi,gj->gij", mk, mk)
        out.append(LayerStats(cq=s["q2"] / n, mk=mk, ck=ck, mv=mv, co=co))
    return tuple(out)


def _accumulate(total: list[dict] | None, stats: list[dict]) -> list[dict]:
    stats = [{k: np.asarray(v, np.float64) for k, v in s.items()} for s in stats]
    if total is None:
        return stats
    return [{k: a[k] + b[k] for k in a} for a, b in zip(total, stats, strict=True)]


def calibrate(model: Model, data: np.ndarray | Sequence[str], batch_size: int = 2) -> Calibration:
    """Collect attention statistics of the original model.

    SmolLM2: ``data`` is token windows ``[N, L]`` (e.g. from the calibration split);
    MiniLM: ``data`` is a list of documents (batched ``batch_size * 16`` at a time).
    """
    cfg = model.config
    total = None
    ntok = 0
    if _is_smollm(model):
        windows = np.asarray(data, np.int32)
        for i in range(0, len(windows), batch_size):
            _, stats = _smollm2.hidden_states(
                model.params, cfg, windows[i : i + batch_size], capture=True
            )
            total = _accumulate(total, stats)
        ntok = int(windows.size)
    else:
        docs = list(data)
        bs = batch_size * 16
        for i in range(0, len(docs), bs):
            ids, mask = _minilm.tokenize(model, docs[i : i + bs])
            _, stats = _minilm.hidden_states(model.params, cfg, ids, mask, capture=True)
            total = _accumulate(total, stats)
            ntok += int(mask.sum())
    assert total is not None
    G = cfg.n_kv_heads
    return Calibration(cfg.name, model.model_hash, ntok, _finish(total, G, cfg.n_heads // G))


# ----------------------------------------------------------------------------- per-head view


_HEAD_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def has_head_view(model: Model) -> bool:
    cfg = model.config
    return _is_smollm(model) and cfg.n_kv_heads != cfg.n_heads


def head_view(model: Model, calib: Calibration | None = None) -> tuple[Model, Calibration | None]:
    """SmolLM2 seen with one key-value head per query head: values' weights and the key and
    value statistics repeated ``n = H / G`` times (group-major), ``n_kv_heads = H``. Bases and
    low-rank parameters computed on this view are per query head (``"whitened+heads"``). The
    keys' weights stay as stored (the runtime repeats the post-RoPE keys). Cached per model
    and calibration."""
    views = _HEAD_VIEWS.setdefault(model, {})
    cfg = model.config
    n = cfg.n_heads // cfg.n_kv_heads
    if "model" not in views:
        layers = []
        for p in model.params["layers"]:
            q = dict(p, wv=jnp.repeat(p["wv"], n, axis=1))
            if "bv" in p:
                q["bv"] = jnp.repeat(p["bv"], n, axis=0)
            layers.append(q)
        views["model"] = dataclasses.replace(
            model,
            config=dataclasses.replace(cfg, n_kv_heads=cfg.n_heads),
            params={**model.params, "layers": layers},
        )
    if calib is None:
        return views["model"], None
    key = ("calib", id(calib))
    if key not in views or views[key][0]() is not calib:
        rep = lambda a: np.repeat(a, n, axis=0)  # noqa: E731
        layers = tuple(
            LayerStats(cq=st.cq, mk=rep(st.mk), ck=rep(st.ck), mv=rep(st.mv), co=st.co)
            for st in calib.layers
        )
        view = Calibration(calib.model, calib.model_hash, calib.n_tokens, layers)
        views[key] = (weakref.ref(calib), view)
    return views["model"], views[key][1]


def _per_head_ranks(ranks: Sequence[int] | None, r: int, G: int, n: int) -> tuple[int, ...]:
    """Per-group ranks (or ``r`` everywhere) as one rank per query head; per-head ranks (as
    many as query heads) as they are."""
    if ranks is not None and len(ranks) != G:
        return tuple(int(x) for x in ranks)
    return tuple(int(x) for x in (ranks if ranks is not None else (r,) * G) for _ in range(n))


def _from_head_view(
    model: Model, i: int, p: dict[str, Any], values_kept: bool, method: str
) -> dict:
    """A layer computed on :func:`head_view` with the stored value weights back where the
    values keep their full rank (so that only low-rank values are computed per head), and
    with ``"whitened+vheads"`` the query-key maps back to one per group (the view repeats
    each group's maps over its heads: keys are then projected once per group)."""
    if values_kept:
        orig = model.params["layers"][i]
        p = {**p, "wv": orig["wv"]}
        if "bv" in orig:
            p["bv"] = orig["bv"]
    if not per_head_keys(method) and "qk_b" in p:
        n = model.config.n_heads // model.config.n_kv_heads
        p = {**p, **{k: p[k][::n] for k in ("qk_a", "qk_b", "k_mean")}}
    return p


# ----------------------------------------------------------------------------- bases


def sym_pow(c: np.ndarray, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(C^{1/2}, C^{-1/2}) of a symmetric PSD matrix, eigenvalues floored at ridge * mean."""
    lam, v = np.linalg.eigh((c + c.T) / 2)
    lam = np.maximum(lam, 0) + ridge * max(float(lam.mean()), 1e-30)
    return (v * np.sqrt(lam)) @ v.T, (v / np.sqrt(lam)) @ v.T


def _top_eig(c: np.ndarray) -> np.ndarray:
    lam, v = np.linalg.eigh((c + c.T) / 2)
    return v[:, ::-1]


@dataclasses.dataclass(frozen=True, eq=False)
class LayerBases:
    """Full ordered bases of one layer (truncate columns to a rank).

    ``qk_a[G, hd, hd]``, ``qk_b[G, hd, hd]``: query and key maps; ``v_a[G, hd, hd]``: value map.
    """

    qk_a: np.ndarray
    qk_b: np.ndarray
    v_a: np.ndarray


def layer_bases(stats: LayerStats, wo: np.ndarray, method: str = "whitened") -> LayerBases:
    """Bases for one layer from its statistics and its output projection ``wo[H, hd, D]``."""
    G = stats.ck.shape[0]
    H = stats.cq.shape[0]
    n = H // G
    qa, qb, va = [], [], []
    for g in range(G):
        heads = slice(g * n, (g + 1) * n)
        cq = stats.cq[heads].mean(0)
        ck = stats.ck[g]
        co = stats.co[heads].mean(0)
        m = np.concatenate(list(np.asarray(wo[heads], np.float64)), axis=1)  # [hd, n * D]
        if method == "whitened":
            cq_h, cq_ih = sym_pow(cq)
            ck_h, ck_ih = sym_pow(ck)
            u, s, vt = np.linalg.svd(cq_h @ ck_h)
            qa.append(cq_ih @ u * np.sqrt(s))
            qb.append(ck_ih @ vt.T * np.sqrt(s))
            co_h, co_ih = sym_pow(co)
            # Left singular vectors of Co^{1/2} M = eigenvectors of Co^{1/2} M M^T Co^{1/2}.
            va.append(co_ih @ _top_eig(co_h @ (m @ m.T) @ co_h))
        elif method == "pca":
            u = _top_eig(ck)
            qa.append(u)
            qb.append(u)
            va.append(_top_eig(co))
        else:
            raise ValueError(f"unknown method {method!r}; expected 'whitened' or 'pca'")
    return LayerBases(np.stack(qa), np.stack(qb), np.stack(va))


def _refit_wo(a: np.ndarray, co: np.ndarray, wo_h: np.ndarray, method: str) -> np.ndarray:
    """Output projection for reduced values ``o A``: least squares on the head's outputs."""
    if method == "pca":
        return a.T @ wo_h
    co = co + 1e-6 * max(float(np.trace(co)) / len(co), 1e-30) * np.eye(len(co))
    return np.linalg.solve(a.T @ co @ a, a.T @ co @ wo_h)


# ----------------------------------------------------------------------------- params


_BASES_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ATTN = ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "qk_a", "qk_b", "k_mean")


def lowrank_params(
    model: Model,
    calib: Calibration,
    ranks: RankConfig,
    bypass_full: bool = True,
    bases: Sequence[LayerBases] | None = None,
) -> dict[str, Any]:
    """The model's parameters transformed for the ranks of ``ranks`` (see the module doc).

    Refuses (``ModelMismatchError``) a config or a calibration made for other weights.
    The bases are computed once per calibration and method, and cached with the calibration.
    """
    cfg = model.config
    ranks.check_model(cfg.name, model.model_hash)
    if calib.model_hash != model.model_hash:
        raise ModelMismatchError(
            f"calibration is for {calib.model} weights with hash {calib.model_hash} (expected), "
            f"but the loaded model has hash {model.model_hash} (actual)"
        )
    if bases is None:
        bases = cached_bases(model, calib, ranks.method)
    layers = []
    for i in range(len(model.params["layers"])):
        qg, vg = ranks.groups(i) if ranks.grouped else (None, None)
        layers.append(
            layer_params(
                model,
                calib,
                bases[i],
                i,
                ranks.r_qk[i],
                ranks.r_v[i],
                ranks.method,
                bypass_full,
                qk_groups=qg,
                v_groups=vg,
            )
        )
    return {**model.params, "layers": layers}


def cached_bases(model: Model, calib: Calibration, method: str) -> list[LayerBases]:
    """:func:`model_bases`, computed once per calibration, model and method (cached with the
    calibration): the bases :func:`lowrank_params` uses when it is given none."""
    key = (model.model_hash, method)
    cache = _BASES_CACHE.setdefault(calib, {})
    if key not in cache:
        cache[key] = model_bases(model, calib, method)
    return cache[key]


def layer_params(
    model: Model,
    calib: Calibration,
    bases: LayerBases,
    i: int,
    r_qk: int,
    r_v: int,
    method: str = "whitened",
    bypass_full: bool = True,
    qk_groups: Sequence[int] | None = None,
    v_groups: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Layer ``i``'s parameters transformed for ranks ``(r_qk, r_v)`` with its full ``bases``
    (the per-layer step of :func:`lowrank_params`; no hash checks here).

    ``qk_groups`` / ``v_groups`` (SmolLM2): one rank per key-value group instead; where they
    differ, each group's maps are kept apart (tuples of per-group arrays, see
    :func:`_grouped_layer_params`), so that each group computes in its own rank.

    ``method="whitened+heads"`` wants the per-head ``bases`` of :func:`model_bases` and gives
    per-head maps (tuples of ``H`` maps where groups differ)."""
    cfg = model.config
    hd, G, H = cfg.head_dim, cfg.n_kv_heads, cfg.n_heads
    n = H // G
    if per_head(method):
        if not has_head_view(model):
            method = "whitened"
        else:
            view, vcal = head_view(model, calib)
            qh = _per_head_ranks(qk_groups, r_qk, G, n)
            vh = _per_head_ranks(v_groups, r_v, G, n)
            p = layer_params(view, vcal, bases, i, r_qk, r_v, "whitened", bypass_full, qh, vh)
            return _from_head_view(model, i, p, bypass_full and all(r == hd for r in vh), method)
    p = model.params["layers"][i]
    st, b = calib.layers[i], bases
    qg = tuple(qk_groups) if qk_groups is not None else (r_qk,) * G
    vg = tuple(v_groups) if v_groups is not None else (r_v,) * G
    if len(set(qg)) > 1 or len(set(vg)) > 1:
        if not _is_smollm(model):
            raise ValueError("per-group ranks apply to grouped-query models (smollm2)")
        return _grouped_layer_params(model, calib, bases, i, qg, vg, method, bypass_full)
    rq, rv = qg[0], vg[0]
    if bypass_full and rq == hd and rv == hd:
        return dict(p)
    q = {k: np.asarray(p[k], np.float64) for k in _ATTN if k in p}
    new = dict(p)
    if not (bypass_full and rq == hd):
        a, bk = b.qk_a[:, :, :rq], b.qk_b[:, :, :rq]
        if _is_smollm(model):
            new.update(qk_a=a, qk_b=bk, k_mean=st.mk)
        else:  # fold into the projections (one head per group)
            new["wq"] = np.einsum("dhk,hkr->dhr", q["wq"], a)
            new["bq"] = np.einsum("hk,hkr->hr", q["bq"], a)
            new["wk"] = np.einsum("dhk,hkr->dhr", q["wk"], bk)
            new["bk"] = np.einsum("hk,hkr->hr", q["bk"] - st.mk, bk)
    if not (bypass_full and rv == hd):
        a = b.v_a[:, :, :rv]  # [G, hd, rv]
        bv = q.get("bv", np.zeros((G, hd)))
        new["wv"] = np.einsum("dgk,gkr->dgr", q["wv"], a)
        new["bv"] = np.einsum("gk,gkr->gr", bv - st.mv, a)
        wo = q["wo"]
        new["wo"] = np.stack([_refit_wo(a[h // n], st.co[h], wo[h], method) for h in range(H)])
        mvh = np.repeat(st.mv, n, axis=0)
        new["bo"] = q.get("bo", np.zeros(cfg.d_model)) + np.einsum("hk,hkd->d", mvh, wo)
    return {k: jnp.asarray(v, jnp.float32) if k in _ATTN else v for k, v in new.items()}


def _grouped_layer_params(
    model: Model,
    calib: Calibration,
    bases: LayerBases,
    i: int,
    qg: tuple[int, ...],
    vg: tuple[int, ...],
    method: str,
    bypass_full: bool,
) -> dict[str, Any]:
    """SmolLM2 layer ``i`` with per-group ranks: ``qk_a``/``qk_b`` become tuples of per-group
    ``[hd, r_g]`` maps (absent when every group is full and ``bypass_full``); ``wv``, ``bv``,
    ``wo`` become tuples of per-group ``[D, r_g]``, ``[r_g]``, ``[n, r_g, D]`` (the group's
    query heads), or stay as stored when every group's values are full."""
    cfg = model.config
    hd, G, H = cfg.head_dim, cfg.n_kv_heads, cfg.n_heads
    n = H // G
    p = model.params["layers"][i]
    st = calib.layers[i]
    q = {k: np.asarray(p[k], np.float64) for k in _ATTN if k in p}
    new = dict(p)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    if not (bypass_full and all(r == hd for r in qg)):
        new["qk_a"] = tuple(f32(bases.qk_a[g][:, : qg[g]]) for g in range(G))
        new["qk_b"] = tuple(f32(bases.qk_b[g][:, : qg[g]]) for g in range(G))
        new["k_mean"] = f32(st.mk)
    if not (bypass_full and all(r == hd for r in vg)):
        bv = q.get("bv", np.zeros((G, hd)))
        wv, bvs, wos = [], [], []
        for g in range(G):
            a = bases.v_a[g][:, : vg[g]]  # [hd, r_g]
            wv.append(f32(q["wv"][:, g, :] @ a))
            bvs.append(f32((bv[g] - st.mv[g]) @ a))
            wos.append(
                f32(
                    np.stack(
                        [
                            _refit_wo(a, st.co[h], q["wo"][h], method)
                            for h in range(g * n, (g + 1) * n)
                        ]
                    )
                )
            )
        new["wv"], new["bv"], new["wo"] = tuple(wv), tuple(bvs), tuple(wos)
        mvh = np.repeat(st.mv, n, axis=0)
        new["bo"] = f32(q.get("bo", np.zeros(cfg.d_model)) + np.einsum("hk,hkd->d", mvh, q["wo"]))
    return {k: (f32(v) if k in _ATTN and not isinstance(v, tuple) else v) for k, v in new.items()}


def masked_layer_params(
    model: Model,
    calib: Calibration,
    bases: LayerBases,
    i: int,
    qg: Sequence[int],
    vg: Sequence[int],
    method: str = "whitened",
    multiple: int = 8,
) -> dict[str, Any]:
    """Layer ``i`` with per-group ranks in the plain (stacked) layout: the per-group maps of
    :func:`_grouped_layer_params` padded with zero columns to the widest group's rank (rounded
    up to ``multiple``, at most the head dim) and stacked. The same attention (zero columns add
    nothing to the scores; zero value dims meet zero rows of the output projection), at the
    FLOPs of the widest group: for measuring fidelity, where shapes shared with plain configs
    save XLA compilations."""
    cfg = model.config
    hd = cfg.head_dim
    if per_head(method):
        if has_head_view(model):
            G = cfg.n_kv_heads
            n = cfg.n_heads // G
            qg, vg = _per_head_ranks(qg, 0, G, n), _per_head_ranks(vg, 0, G, n)
            view, vcal = head_view(model, calib)
            p = _grouped_layer_params(view, vcal, bases, i, qg, vg, "whitened", True)
            p = _from_head_view(model, i, p, all(r == hd for r in vg), method)
            return _stack_padded(p, hd, multiple)
        method = "whitened"
    p = _grouped_layer_params(model, calib, bases, i, tuple(qg), tuple(vg), method, True)
    return _stack_padded(p, hd, multiple)


def _stack_padded(p: dict[str, Any], hd: int, multiple: int) -> dict[str, Any]:
    """Per-group tuples of maps padded with zero columns to one width and stacked."""

    def padded(arrays: tuple, axis: int) -> list:
        w = min(hd, -(-max(a.shape[axis] for a in arrays) // multiple) * multiple)
        out = []
        for a in arrays:
            pad = [(0, 0)] * a.ndim
            pad[axis] = (0, w - a.shape[axis])
            out.append(jnp.pad(a, pad))
        return out

    if isinstance(p.get("qk_a"), tuple):
        p["qk_a"] = jnp.stack(padded(p["qk_a"], 1))
        p["qk_b"] = jnp.stack(padded(p["qk_b"], 1))
    if isinstance(p["wv"], tuple):
        p["wv"] = jnp.stack(padded(p["wv"], 1), axis=1)  # [D, G, w]
        p["bv"] = jnp.stack(padded(p["bv"], 0))  # [G, w]
        p["wo"] = jnp.concatenate(padded(p["wo"], 1))  # [H, w, D]
    return p


def model_bases(model: Model, calib: Calibration, method: str = "whitened") -> list[LayerBases]:
    """Full ordered bases of every layer (cache these when trying many rank configs); per
    query head for ``"whitened+heads"`` (``[H, hd, hd]`` maps)."""
    if per_head(method) and has_head_view(model):
        view, vcal = head_view(model, calib)
        out = [
            layer_bases(vcal.layers[i], np.asarray(p["wo"]), "whitened")
            for i, p in enumerate(model.params["layers"])
        ]
        if per_head_keys(method):
            return out
        n = model.config.n_heads // model.config.n_kv_heads
        group = model_bases(model, calib, "whitened")  # query-key maps per group, repeated
        return [
            LayerBases(np.repeat(g.qk_a, n, 0), np.repeat(g.qk_b, n, 0), h.v_a)
            for g, h in zip(group, out, strict=True)
        ]
    if per_head(method):
        method = "whitened"
    return [
        layer_bases(calib.layers[i], np.asarray(p["wo"]), method)
        for i, p in enumerate(model.params["layers"])
    ]


# ----------------------------------------------------------------------------- FLOPs


def attention_flops(
    config: RankConfig, seq_len: int | None = None, batch: int = 1, n_layers: int | None = None
) -> dict[str, float]:
    """Attention FLOPs (multiply-add = 2) of one forward pass under ``config``.

    Dense score matrices (the causal mask is applied, not exploited). Keys: ``qk`` (scores),
    ``pv`` (probabilities times values), ``basis`` (run-time projections into the query-key
    basis: SmolLM2 post-RoPE, 0 for MiniLM where they fold into the weights), ``total`` (the
    three), ``full`` (``qk + pv`` of the original model), ``fraction`` (total / full), and
    ``vo_proj`` (value and output projections, which shrink with ``r_v``; not in ``total``).
    ``seq_len`` defaults to the config's; ``n_layers``: only the first ``n_layers`` layers
    (as when timing the first layers' attention), default all.
    """
    s = MODEL_SHAPES[config.model]
    n = s.n_layers if n_layers is None else int(n_layers)
    if not 1 <= n <= s.n_layers:
        raise ValueError(f"n_layers must be in 1..{s.n_layers}, got {n_layers}")
    L = config.seq_len if seq_len is None else seq_len
    H, hd, D = s.n_heads, s.head_dim, s.d_model
    K, V = s.key_maps(config.method), s.value_maps(config.method)  # per group or per head
    qk = pv = basis = vo = 0.0
    for rq, rv in zip(config.r_qk[:n], config.r_v[:n], strict=True):
        qk += 2.0 * H * L * L * rq
        pv += 2.0 * H * L * L * rv
        if s.rope and rq < hd:
            basis += 2.0 * L * hd * rq * (H + K)
        vo += 2.0 * L * D * rv * (V + H)
    full = 4.0 * H * L * L * hd * n
    total = qk + pv + basis
    return {
        k: v * batch
        for k, v in dict(qk=qk, pv=pv, basis=basis, total=total, full=full, vo_proj=vo).items()
    } | {"fraction": total / full}
