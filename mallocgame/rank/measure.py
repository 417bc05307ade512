"""The rank game's tables, measured: :func:`build_tables` fills
:class:`~mallocgame.rank.tables.RankTables` from a model's calibration
(:mod:`mallocgame.rank.calibration`) and the calibration-loss evaluator
(:mod:`mallocgame.rank.evaluator`):

- ``energy[p, c]``: the fraction of the part's spectrum its rank keeps. Whitened: squared
  singular values of ``Cq^{1/2} Ck^{1/2}`` (query-key; the expected squared score error of
  rank ``r`` is the sum of the dropped ones) and of ``Co^{1/2} Wo`` (values), pooled over the
  layer's KV-head groups; PCA: eigenvalues of the key / head-output covariances.
- ``sens[p, c]``: the evaluator's loss with only part ``p`` at ``choices[c]`` (``P * (C - 1)``
  evaluations, one batch).
- ``fisher[p]``: sum of squared gradients of a calibration loss w.r.t. the part's projection
  weights (query-key: ``wq, wk``; values: ``wv, wo``), by ``jax.vjp`` layer by layer. SmolLM2:
  the mean next-token NLL of each loss window (empirical Fisher, one gradient per window).
  MiniLM's full model has zero embedding loss, so its Fisher is that of a unit Gaussian
  likelihood around the embeddings, estimated with random probes: gradients of
  ``sum_d u_d . e_d`` with ``u_d ~ N(0, I)`` (``E[(u . J)^2] = diag(J^T J)``), over
  ``fisher_probes`` draws.

Tables are cached on disk under ``$MALLOCGAME_CACHE/rank`` (default ``~/.cache/mallocgame/rank``)
keyed by model hash, choices, method and calibration spec, written atomically; the FLOP costs,
which depend on ``seq_len``, are computed, not stored.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.io import cache_dir
from mallocgame.rank.calibration import (
    CalibSpec,
    RankSetup,
    load_model,
    load_setup,
    model_file_hash,
    spec_key,
)
from mallocgame.rank.config import MODEL_SHAPES, per_head, per_head_keys
from mallocgame.rank.evaluator import Evaluator
from mallocgame.rank.models import minilm as _minilm
from mallocgame.rank.models import smollm2 as _smollm2
from mallocgame.rank.runtime import Calibration, Model, has_head_view, head_view, sym_pow
from mallocgame.rank.tables import (
    DEFAULT_CHOICES,
    DEFAULT_SEQ_LEN,
    PART_KINDS,
    RankTables,
    cost_table,
)


def _spectra(model: Model, calib: Calibration, method: str) -> list[tuple[list, list]]:
    """Per layer, the per-group (per-unit) query-key and value spectra (module doc)."""
    cfg = model.config
    G, H = cfg.n_kv_heads, cfg.n_heads
    n = H // G
    out = []
    for i, p in enumerate(model.params["layers"]):
        st = calib.layers[i]
        wo = np.asarray(p["wo"], np.float64)
        qk, v = [], []
        for g in range(G):
            heads = slice(g * n, (g + 1) * n)
            cq, ck, co = st.cq[heads].mean(0), st.ck[g], st.co[heads].mean(0)
            if method == "whitened":
                cq_h, _ = sym_pow(cq)
                ck_h, _ = sym_pow(ck)
                qk.append(np.linalg.svd(cq_h @ ck_h, compute_uv=False) ** 2)
                m = np.concatenate(list(wo[heads]), axis=1)
                co_h, _ = sym_pow(co)
                v.append(np.linalg.svd(co_h @ m, compute_uv=False) ** 2)
            else:
                qk.append(np.linalg.eigvalsh((ck + ck.T) / 2))
                v.append(np.linalg.eigvalsh((co + co.T) / 2))
        out.append((qk, v))
    return out


def energy_table(setup: RankSetup, choices: Sequence[int]) -> np.ndarray:
    """``energy[P, C]`` from the calibration spectra (see the module doc); per query head for
    the parts a per-head method fits per head."""
    model, calib, method = setup.model, setup.calib, setup.spec.method
    if per_head(method) and has_head_view(model):
        spectra = _spectra(*head_view(model, calib), "whitened")
        if not per_head_keys(method):  # query-key bases stay per group
            group = _spectra(model, calib, "whitened")
            spectra = [(g[0], h[1]) for g, h in zip(group, spectra, strict=True)]
    else:
        spectra = _spectra(model, calib, "whitened" if per_head(method) else method)
    rows = []
    for qk, v in spectra:
        for kind in PART_KINDS:
            # pool the groups: energy kept at rank r = sum of each group's top r / total
            vals = [np.sort(np.maximum(s, 0.0))[::-1] for s in (qk if kind == "qk" else v)]
            total = max(sum(float(s.sum()) for s in vals), 1e-300)
            e = np.array([sum(float(s[:r].sum()) for s in vals) / total for r in choices])
            e[-1] = 1.0
            rows.append(np.clip(e, 0.0, 1.0))
    return np.stack(rows)


def sens_table(
    evaluator: Evaluator,
    progress: Callable[[str], None] | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """``sens[P, C]``: loss with one part lowered at a time (0 at full rank). ``known``:
    entries already measured (the same evaluator's losses, NaN where not), kept as they are."""
    C = len(evaluator.choices)
    P = 2 * evaluator.n_layers
    sens = np.zeros((P, C))
    if known is not None:
        sens[:, : C - 1] = known[:, : C - 1]
    t0 = time.perf_counter()
    for p in range(P):
        cs = np.nonzero(np.isnan(sens[p, : C - 1]) | (known is None))[0]
        if len(cs) == 0:
            continue
        rows = np.full((len(cs), P), C - 1, np.int64)
        rows[:, p] = cs
        sens[p, cs] = evaluator(rows)
        if progress is not None:
            progress(
                f"sens: part {p + 1}/{P} ({evaluator.n_evaluated} runs, "
                f"{time.perf_counter() - t0:.0f} s)"
            )
    return sens


def _vjp_fn(setup: RankSetup) -> Callable:
    """jitted ``(attn params, other params, x, g, [mask]) -> (d attn params, d x)`` of a layer."""
    model = setup.model
    cfg = model.config
    if setup.name == "smollm2":

        def f(pa, rest, x, g):
            _, pull = jax.vjp(lambda a, y: _smollm2.block({**rest, **a}, cfg, y, False)[0], pa, x)
            return pull(g)

    else:

        def f(pa, rest, x, g, mask):
            _, pull = jax.vjp(
                lambda a, y: _minilm.block({**rest, **a}, cfg, y, mask, False)[0], pa, x
            )
            return pull(g)

    return jax.jit(f)


_FISHER_KEYS = {"qk": ("wq", "wk"), "v": ("wv", "wo")}


def fisher_table(setup: RankSetup, probes: int = 4, seed: int = 0) -> np.ndarray:
    """``fisher[P]``: summed squared gradients of the calibration loss (see the module doc)."""
    model = setup.model
    cfg = model.config
    layers = model.params["layers"]
    L = len(layers)
    keys = _FISHER_KEYS["qk"] + _FISHER_KEYS["v"]
    split = [
        ({k: p[k] for k in keys}, {k: v for k, v in p.items() if k not in keys}) for p in layers
    ]
    vjp = _vjp_fn(setup)
    fisher = np.zeros(2 * L)

    def backward(xs: list, g: jax.Array, extra: tuple = ()) -> None:
        for i in range(L - 1, -1, -1):
            pa, rest = split[i]
            gp, g = vjp(pa, rest, xs[i], g, *extra)
            for j, kind in enumerate(PART_KINDS):
                fisher[2 * i + j] += sum(float(jnp.sum(gp[k] ** 2)) for k in _FISHER_KEYS[kind])

    if setup.name == "smollm2":
        eps = cfg.rms_eps

        def nll_mean(x, ids):
            return _smollm2._token_nll(model.params, x, ids, eps) / (ids.shape[1] - 1)

        grad_x = jax.jit(jax.grad(nll_mean))
        for w in np.asarray(setup.loss_data, np.int32):
            ids = jnp.asarray(w[None])
            x = model.params["tok_emb"][ids]
            xs = []
            for p in layers:
                xs.append(x)
                x, _ = _smollm2.block(p, cfg, x, False)
            backward(xs, grad_x(x, ids))
    else:
        rng = np.random.default_rng(seed)
        docs = list(setup.loss_data)
        for i0 in range(0, len(docs), 32):
            ids, mask = _minilm.tokenize(model, docs[i0 : i0 + 32])
            ids, mask = jnp.asarray(ids), jnp.asarray(mask)
            x = _minilm.embed(model.params, cfg, ids)
            xs = []
            for p in layers:
                xs.append(x)
                x, _ = _minilm.block(p, cfg, x, mask, False)
            for _ in range(probes):
                u = jnp.asarray(rng.normal(size=(ids.shape[0], cfg.d_model)), jnp.float32)
                g = jax.grad(lambda y, u=u, mask=mask: jnp.sum(u * _minilm.pool(y, mask)))(x)
                backward(xs, g, (mask,))
    return fisher


def progress_to_stderr(msg: str) -> None:
    """``[rank tables] MSG`` on stderr: :func:`build_tables`' default progress."""
    print(f"[rank tables] {msg}", file=sys.stderr, flush=True)


def _default_tables(
    model: Model, spec: CalibSpec, fisher_probes: int, choices: tuple[int, ...]
) -> RankTables | None:
    """The cached tables of the default choices for the same weights, calibration spec and
    Fisher probes (found by their cache key, so they were measured exactly as these would
    be), if ``choices`` differ from the default and share ranks with it; else None."""
    default = DEFAULT_CHOICES[spec.model]
    if choices == default or not set(choices[:-1]) & set(default[:-1]):
        return None
    key = spec_key(
        model.model_hash, spec, {"choices": list(default), "fisher_probes": fisher_probes}
    )
    path = cache_dir("rank") / f"tables-{spec.model}-{key}.npz"
    if not path.is_file():
        return None
    try:
        t = RankTables.load(str(path), DEFAULT_SEQ_LEN[spec.model])
    except (OSError, ValueError, KeyError):
        return None
    if t.model_hash != model.model_hash or t.choices != default or not np.all(np.isfinite(t.sens)):
        return None
    t.meta["path"] = str(path)
    return t


def cost_only_tables(
    model_name: str,
    method: str = "whitened",
    choices: Sequence[int] | None = None,
    seq_len: int | None = None,
) -> RankTables:
    """:meth:`RankTables.cost_only` for ``model_name``'s weights, nothing measured (defaults
    as in :func:`build_tables`)."""
    return RankTables.cost_only(
        model_name,
        model_file_hash(model_name),
        tuple(int(c) for c in (choices or DEFAULT_CHOICES[model_name])),
        seq_len or DEFAULT_SEQ_LEN[model_name],
        method,
    )


def build_tables(
    model_name: str,
    *,
    choices: Sequence[int] | None = None,
    seq_len: int | None = None,
    method: str = "whitened",
    spec: CalibSpec | None = None,
    evaluator: Evaluator | None = None,
    fisher_probes: int = 4,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = progress_to_stderr,
) -> RankTables:
    """The rank game's tables for a model (cached on disk; see the module doc).

    ``spec`` defaults to :meth:`CalibSpec.default` with ``method``; ``seq_len`` to 512
    (SmolLM2) / 256 (MiniLM); ``choices`` to ``DEFAULT_CHOICES[model_name]``.
    """
    if model_name not in MODEL_SHAPES:
        raise ValueError(f"unknown model {model_name!r}; expected one of {sorted(MODEL_SHAPES)}")
    spec = spec or CalibSpec.default(model_name, method)
    if spec.model != model_name:
        raise ValueError(f"calibration spec is for {spec.model!r}, not {model_name!r}")
    choices = tuple(int(c) for c in (choices or DEFAULT_CHOICES[model_name]))
    seq_len = seq_len or DEFAULT_SEQ_LEN[model_name]
    cost_table(model_name, choices, seq_len, spec.method)  # validates choices
    model = load_model(model_name)
    key = spec_key(
        model.model_hash, spec, {"choices": list(choices), "fisher_probes": fisher_probes}
    )
    path = cache_dir("rank") / f"tables-{model_name}-{key}.npz"
    meta = {"calibration": spec.to_dict(), "fisher_probes": fisher_probes, "cache": str(path)}
    if use_cache and path.is_file():
        try:
            t = RankTables.load(str(path), seq_len)
        except (OSError, ValueError, KeyError):
            t = None
        if t is not None and t.model_hash == model.model_hash and t.choices == choices:
            t.meta = meta | {"cached": True}
            return t
    t0 = time.perf_counter()
    base = _default_tables(model, spec, fisher_probes, choices) if use_cache else None
    setup = load_setup(spec, use_cache)
    if evaluator is None or evaluator.setup is not setup or evaluator.choices != choices:
        evaluator = Evaluator(setup, choices)
    if progress:
        progress(f"{model_name}: energy and Fisher")
    energy = energy_table(setup, choices)
    known = None
    if base is None:
        fisher = fisher_table(setup, probes=fisher_probes)
    else:
        # Same weights, calibration spec and Fisher probes (the cache key says so): the Fisher
        # pass does not depend on the choices, and the one-part runs of shared ranks are the
        # same runs; only the new ranks' columns are measured.
        fisher = base.fisher.copy()
        known = np.full((2 * MODEL_SHAPES[model_name].n_layers, len(choices)), np.nan)
        for c, r in enumerate(choices):
            if r in base.choices:
                known[:, c] = base.sens[:, base.choices.index(r)]
        meta["reused"] = base.meta["path"]
        if progress:
            new = [r for r in choices[:-1] if r not in base.choices]
            progress(
                f"{model_name}: sens of ranks {new} measured, the rest from {base.meta['path']}"
            )
    sens = sens_table(evaluator, progress, known)
    tables = RankTables(
        model_name,
        model.model_hash,
        seq_len,
        spec.method,
        choices,
        energy,
        sens,
        fisher,
        meta=meta | {"cached": False, "seconds": time.perf_counter() - t0},
    )
    if use_cache:
        tables.save(str(path))
    return tables
