"""Measurements behind the rank game: a fast calibration-loss evaluator and the tables.

Everything here uses the **calibration** half of ``lee_background.cor`` only (never the
evaluation half, never ``lee.cor`` or the human scores). A :class:`CalibSpec` names which text:

- SmolLM2: the bases are fitted on the first ``bases`` windows of ``window`` tokens; the loss
  is measured on the next ``loss`` windows (disjoint from the bases' windows).
- MiniLM: the bases are fitted on the first ``bases`` documents; the loss is measured on the
  next ``loss`` documents.

:class:`Evaluator` maps choice vectors ``int64[N, P]`` (one rank index per part, parts as in
:mod:`mallocgame.rank.tables`) to calibration losses ``float64[N]``, lower is better, 0 at full:

- SmolLM2: ``log(ppl_low) - log(ppl_full)`` on the loss windows;
- MiniLM: ``1 - mean cosine`` between low-rank and full embeddings of the loss documents.

It is fast in two ways. Results are memoised by rank config. And the forward is one jitted
call per layer, so the hidden state at each layer's input is cached, keyed by the ranks of the
layers before it: a config that agrees with a cached one on layers ``0..i-1`` runs only layers
``i..``. The full model's states are always kept (a config that differs from full only from
layer ``i`` on costs ``(n - i) / n`` of a forward); the states of the most recent configs are
kept too (a greedy search whose candidates differ from the current config in one layer reuses
that config's prefix).

:func:`build_tables` fills :class:`~mallocgame.rank.tables.RankTables`:

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
keyed by model hash, choices, method and calibration spec (the FLOP costs, which depend on
``seq_len``, are recomputed on load), written atomically.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.io import cache_dir
from mallocgame.rank import text
from mallocgame.rank.config import METHODS, MODEL_SHAPES, per_head, per_head_keys
from mallocgame.rank.lowrank import (
    Calibration,
    LayerBases,
    _has_head_view,
    _head_view,
    _sym_pow,
    calibrate,
    layer_params,
    masked_layer_params,
    model_bases,
)
from mallocgame.rank.models import minilm as _minilm
from mallocgame.rank.models import smollm2 as _smollm2
from mallocgame.rank.tables import DEFAULT_CHOICES, PART_KINDS, RankTables, cost_table

TABLES_VERSION = 1
DEFAULT_SEQ_LEN = {"smollm2": 512, "minilm": 256}


# ----------------------------------------------------------------------------- spec


@dataclasses.dataclass(frozen=True)
class CalibSpec:
    """Which calibration text fits the bases and which measures the loss (see module doc).

    ``bases``/``loss``: SmolLM2 windows of ``window`` tokens, MiniLM documents.
    """

    model: str
    bases: int
    loss: int
    window: int = 512
    method: str = "whitened"

    def __post_init__(self) -> None:
        if self.model not in MODEL_SHAPES:
            raise ValueError(
                f"unknown model {self.model!r}; expected one of {sorted(MODEL_SHAPES)}"
            )
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {list(METHODS)}")
        if self.bases < 1 or self.loss < 1 or self.window < 2:
            raise ValueError(f"calibration spec needs bases, loss >= 1 and window >= 2: {self}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def same_bases(self, other: CalibSpec) -> bool:
        """Whether ``other`` fits the runtime's bases as this does (model, method, the same
        bases windows): the loss windows only steer a search, not what a config means."""
        return dataclasses.replace(self, loss=other.loss) == other

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibSpec:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    @classmethod
    def default(cls, model: str, method: str = "whitened") -> CalibSpec:
        if model == "smollm2":
            return cls("smollm2", bases=8, loss=1, window=512, method=method)
        return cls("minilm", bases=120, loss=8, window=512, method=method)


# ----------------------------------------------------------------------------- setup


@dataclasses.dataclass(frozen=True, eq=False)
class RankSetup:
    """A loaded model with its calibration, full bases and calibration-loss text."""

    model: Any
    spec: CalibSpec
    calib: Calibration
    bases: tuple[LayerBases, ...]
    loss_data: Any  # SmolLM2: int32[W, window]; MiniLM: list of documents

    @property
    def name(self) -> str:
        return self.spec.model


def load_model(name: str) -> Any:
    if name == "smollm2":
        return _smollm2.load_smollm2()
    if name == "minilm":
        return _minilm.load_minilm()
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_SHAPES)}")


def model_file_hash(name: str) -> str:
    """The model hash of ``name``'s weight file, without loading the model."""
    from mallocgame.rank.models.common import file_hash, minilm_dir, smollm2_gguf

    if name == "smollm2":
        return file_hash(smollm2_gguf())
    if name == "minilm":
        return file_hash(minilm_dir() / "model.safetensors")
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_SHAPES)}")


def calibration_text(model: Any, spec: CalibSpec) -> tuple[Any, Any]:
    """(bases data, loss data) of the calibration split for ``spec``."""
    split = text.background_split()
    if spec.model == "smollm2":
        w = text.token_windows(
            lambda s: _smollm2.encode(model, s),
            split.calibration,
            spec.window,
            spec.bases + spec.loss,
        )
        if len(w) < spec.bases + spec.loss:
            raise ValueError(
                f"the calibration split has {len(w)} windows of {spec.window} tokens; "
                f"{spec.bases} + {spec.loss} requested"
            )
        return w[: spec.bases], w[spec.bases :]
    docs = list(split.calibration)
    if len(docs) < spec.bases + spec.loss:
        raise ValueError(
            f"the calibration split has {len(docs)} documents; {spec.bases} + {spec.loss} requested"
        )
    return docs[: spec.bases], docs[spec.bases : spec.bases + spec.loss]


def _key(fields: dict[str, Any]) -> str:
    blob = json.dumps({"v": TABLES_VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _spec_key(model_hash: str, spec: CalibSpec, extra: dict[str, Any] | None = None) -> str:
    return _key({"hash": model_hash, "spec": spec.to_dict(), **(extra or {})})


def calib_path(model_hash: str, spec: CalibSpec) -> Path:
    """The cached calibration of ``spec``: keyed by the model and the bases' text alone
    (``bases`` windows / documents of ``window`` tokens), so that runs with other loss windows
    or another method share it (the statistics do not depend on them)."""
    key = _key(
        {"hash": model_hash, "model": spec.model, "bases": spec.bases, "window": spec.window}
    )
    return cache_dir("rank") / f"calib-{spec.model}-{key}.npz"


@functools.lru_cache(maxsize=4)
def load_setup(spec: CalibSpec, use_cache: bool = True) -> RankSetup:
    """Model, calibration (cached on disk), bases and loss text for ``spec`` (memoised)."""
    model = load_model(spec.model)
    bases_data, loss_data = calibration_text(model, spec)
    path = calib_path(model.model_hash, spec)
    calib = None
    if use_cache and path.is_file():
        try:
            calib = Calibration.load(str(path))
        except (OSError, ValueError, KeyError):
            calib = None
        if calib is not None and calib.model_hash != model.model_hash:
            calib = None
    if calib is None:
        calib = calibrate(model, bases_data)
        if use_cache:
            import io

            from mallocgame.io import atomic_write_bytes

            buf = io.BytesIO()
            calib.save(buf)
            atomic_write_bytes(path, buf.getvalue())
    bases = tuple(model_bases(model, calib, spec.method))
    return RankSetup(model, spec, calib, bases, loss_data)


# ----------------------------------------------------------------------------- evaluator


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_malloc_trim() if sys.platform.startswith("linux") else None


_TRIMMED = [float("-inf")]  # when the heap was last trimmed (time.monotonic)


def _release_free_heap(every: float = 30.0) -> None:
    """Give the heap's free pages back to the OS, at most once per ``every`` seconds (glibc's
    ``malloc_trim``; nothing elsewhere). Each evaluation frees layer states of a few MB that
    the prefix cache's survivors pin in place, and glibc keeps such holes: without this a
    search with 8 loss windows held 4.5 GB after 35 evaluations where a trimmed one held 3.4
    GB, and one with 16 windows 11.8 GB after 25 minutes, 5.4 GB once trimmed
    (benchmarks/RESULTS.md, benchmarks/rank_evaluator_memory.py)."""
    now = time.monotonic()
    if _MALLOC_TRIM is not None and now - _TRIMMED[0] >= every:
        _MALLOC_TRIM(0)
        _TRIMMED[0] = now


class Evaluator:
    """Calibration loss of rank choices (see the module doc); memoised, prefix-cached.

    ``evaluator(choice_idx int64[N, P] or [P]) -> float64[N]``. ``n_evaluated`` counts the
    configs actually run (memo misses), ``n_calls`` all configs asked for.

    ``group_template`` (a :class:`~mallocgame.rank.config.RankConfig` with per-group ranks, or
    None): choice vectors then keep its split, in the parts whose rank they change brought to
    the new rank (:func:`mallocgame.rank.groups.rescale_groups`), so that a solver over the
    layer ranks (``refine``) works with a split in place.
    """

    def __init__(
        self,
        setup: RankSetup,
        choices: Sequence[int] | None = None,
        *,
        batch_size: int = 2,
        max_prefix_entries: int | None = None,
        max_layer_entries: int = 256,
    ) -> None:
        self.setup = setup
        self.model = setup.model
        self.cfg = self.model.config
        self.name = setup.name
        shape = MODEL_SHAPES[self.name]
        self.n_layers = shape.n_layers
        self.hd = shape.head_dim
        self.choices = tuple(int(c) for c in (choices or DEFAULT_CHOICES[self.name]))
        if self.choices[-1] != self.hd:
            raise ValueError(f"choices must end at the head dimension {self.hd}: {self.choices}")
        self.memo: dict[tuple[tuple[int, int], ...], float] = {}
        self.n_evaluated = 0
        self.n_calls = 0
        self.seconds = 0.0
        self._layers: collections.OrderedDict = collections.OrderedDict()
        self._max_layers = max_layer_entries
        self._prefix: collections.OrderedDict = collections.OrderedDict()
        self._max_prefix = max_prefix_entries or 4 * self.n_layers
        self._full = ((self.hd, self.hd),) * self.n_layers
        self._batches = self._make_batches(batch_size)
        self._pinned: dict[tuple, list] = {}
        #: per-group ranks that choice vectors keep (see :meth:`ranks_of`); None: equal split
        self.group_template: Any = None
        self._reference = self._run_full()

    # -- data
    def _make_batches(self, batch_size: int) -> list[tuple[Any, ...]]:
        if self.name == "smollm2":
            w = np.asarray(self.setup.loss_data, np.int32)
            return [(w[i : i + batch_size],) for i in range(0, len(w), batch_size)]
        docs = list(self.setup.loss_data)
        bs = 32
        out = []
        for i in range(0, len(docs), bs):
            ids, mask = _minilm.tokenize(self.model, docs[i : i + bs])
            out.append((ids, mask))
        return out

    def _embed(self, batch: tuple[Any, ...]) -> jax.Array:
        if self.name == "smollm2":
            return self.model.params["tok_emb"][jnp.asarray(batch[0])]
        return _minilm.embed(self.model.params, self.cfg, jnp.asarray(batch[0]))

    def _block(self, p: dict, x: jax.Array, batch: tuple[Any, ...]) -> jax.Array:
        if self.name == "smollm2":
            return _smollm2.block(p, self.cfg, x, False)[0]
        return _minilm.block(p, self.cfg, x, jnp.asarray(batch[1]), False)[0]

    def _head(self, xs: list[jax.Array]) -> Any:
        """SmolLM2: mean next-token NLL of each loss window, float64[W]; MiniLM: embeddings
        [N, D]."""
        if self.name == "smollm2":
            out = []
            for x, b in zip(xs, self._batches, strict=True):
                ids = b[0]
                for j in range(ids.shape[0]):
                    nll = _smollm2._token_nll(
                        self.model.params,
                        x[j : j + 1],
                        jnp.asarray(ids[j : j + 1]),
                        self.cfg.rms_eps,
                    )
                    out.append(float(nll) / (ids.shape[1] - 1))
            return np.asarray(out, np.float64)
        return np.concatenate(
            [
                np.asarray(_minilm.pool(x, jnp.asarray(b[1])), np.float64)
                for x, b in zip(xs, self._batches, strict=True)
            ]
        )

    # -- params and states
    def layer(
        self,
        i: int,
        rq: int,
        rv: int,
        qk_groups: tuple[int, ...] | None = None,
        v_groups: tuple[int, ...] | None = None,
    ) -> dict:
        """Layer ``i``'s parameters at ``(rq, rv)``, or at per-group ranks (SmolLM2; a layer
        entry of a ranks tuple may be ``(rq, rv, qk_groups, v_groups)``, see
        :func:`layer_entry`)."""
        key = (i, rq, rv, qk_groups, v_groups)
        p = self._layers.get(key)
        if p is None:
            s = self.setup
            if qk_groups is None and v_groups is None:
                p = layer_params(self.model, s.calib, s.bases[i], i, rq, rv, s.spec.method)
            else:  # masked plain layout: shapes of plain configs, no new compilation
                p = masked_layer_params(
                    self.model,
                    s.calib,
                    s.bases[i],
                    i,
                    qk_groups or (rq,) * self.cfg.n_kv_heads,
                    v_groups or (rv,) * self.cfg.n_kv_heads,
                    s.spec.method,
                )
            self._layers[key] = p
            if len(self._layers) > self._max_layers:
                self._layers.popitem(last=False)
        else:
            self._layers.move_to_end(key)
        return p

    def _lookup(self, ranks: tuple[tuple[int, int], ...]) -> tuple[int, list]:
        """The deepest cached layer input for a prefix of ``ranks``: (layer index, states)."""
        for i in range(len(ranks), 0, -1):
            key = ranks[:i]
            xs = self._pinned.get(key)
            if xs is None:
                xs = self._prefix.get(key)
                if xs is not None:
                    self._prefix.move_to_end(key)
            if xs is not None:
                return i, xs
        return 0, [self._embed(b) for b in self._batches]

    def _store(self, key: tuple, xs: list, pin: bool) -> None:
        if pin:
            self._pinned[key] = xs
            return
        self._prefix[key] = xs
        self._prefix.move_to_end(key)
        while len(self._prefix) > self._max_prefix:
            self._prefix.popitem(last=False)

    def _forward(self, ranks: tuple[tuple[int, int], ...], pin: bool = False) -> Any:
        i0, xs = self._lookup(ranks)
        for i in range(i0, self.n_layers):
            p = self.layer(i, *ranks[i])
            xs = [self._block(p, x, b) for x, b in zip(xs, self._batches, strict=True)]
            self._store(ranks[: i + 1], xs, pin)
        return self._head(xs)

    def _run_full(self) -> Any:
        return self._forward(self._full, pin=True)

    # -- public
    def ranks_of(self, choice_idx: Sequence[int]) -> tuple[tuple[int, int], ...]:
        idx = np.asarray(choice_idx, np.int64)
        if idx.shape != (2 * self.n_layers,):
            raise ValueError(f"expected {2 * self.n_layers} choice indices, got shape {idx.shape}")
        if idx.min() < 0 or idx.max() >= len(self.choices):
            raise ValueError(f"choice indices must be in 0..{len(self.choices) - 1}")
        r = np.asarray(self.choices)[idx]
        plain = tuple((int(a), int(b)) for a, b in zip(r[0::2], r[1::2], strict=True))
        if self.group_template is None:
            return plain
        cfg = dataclasses.replace(
            self.group_template,
            r_qk=[a for a, _ in plain],
            r_v=[b for _, b in plain],
            qk_groups=None,
            v_groups=None,
        )
        return config_entries(self.keep_groups(cfg))

    def keep_groups(self, cfg: Any) -> Any:
        """``cfg`` with :attr:`group_template`'s split (rescaled in the parts whose rank
        differs), as :meth:`ranks_of` scores it; ``cfg`` itself without a template."""
        if self.group_template is None:
            return cfg
        from mallocgame.rank.groups import inherit_groups

        return inherit_groups(cfg, self.group_template, rescale=True)[0]

    def window_losses_of_ranks(self, ranks: tuple[tuple[int, int], ...]) -> np.ndarray:
        """Calibration loss of per-layer ``(r_qk, r_v)`` ranks on each loss window (SmolLM2:
        ``mean NLL - full mean NLL`` per window) / document (MiniLM: ``1 - cosine``),
        float64[W] (memoised; their mean is :meth:`loss_of_ranks`)."""
        self.n_calls += 1
        hit = self.memo.get(ranks)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        out = self._forward(ranks)
        if self.name == "smollm2":
            per = np.asarray(out - self._reference, np.float64)
        else:
            per = 1.0 - np.sum(out * self._reference, axis=1)
        per.setflags(write=False)
        self.memo[ranks] = per
        self.n_evaluated += 1
        _release_free_heap()
        self.seconds += time.perf_counter() - t0
        return per

    def loss_of_ranks(self, ranks: tuple[tuple[int, int], ...]) -> float:
        """Calibration loss of per-layer ``(r_qk, r_v)`` ranks (memoised)."""
        return float(np.mean(self.window_losses_of_ranks(ranks)))

    def __call__(self, choice_idx: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        idx = np.asarray(choice_idx, np.int64)
        if idx.ndim == 1:
            idx = idx[None]
        return np.asarray([self.loss_of_ranks(self.ranks_of(row)) for row in idx], np.float64)

    def window_losses(self, choice_idx: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Per-window calibration losses of choice vectors, float64[N, W] (rows of
        :meth:`__call__` are their means)."""
        idx = np.asarray(choice_idx, np.int64)
        if idx.ndim == 1:
            idx = idx[None]
        return np.stack([self.window_losses_of_ranks(self.ranks_of(row)) for row in idx])

    def layer_error(self, ranks: tuple[tuple, ...], i: int) -> float:
        """Squared error of layer ``i``'s output at ``ranks[i]`` against the original layer's
        output, both on the layer's input under ``ranks[:i]`` (cached or pinned; computed
        otherwise), summed over the loss windows: one layer's work, a cheap proxy for
        comparing choices within one layer (e.g. splits of its rank among groups)."""
        ranks = tuple(ranks)
        j, xs = self._lookup(ranks[:i])  # the deepest cached input of a layer <= i
        for k in range(j, i):
            p = self.layer(k, *ranks[k])
            xs = [self._block(p, x, b) for x, b in zip(xs, self._batches, strict=True)]
        p = self.layer(i, *ranks[i])
        p0 = self.model.params["layers"][i]
        err = 0.0
        for x, b in zip(xs, self._batches, strict=True):
            d = self._block(p, x, b) - self._block(p0, x, b)
            err += float(jnp.sum(d * d))
        return err

    def pin(self, choice_idx: Sequence[int] | None) -> None:
        """Keep every layer input of one config (e.g. a local search's current one) cached
        until the next ``pin``, besides the full model's, so that each config that agrees with
        it on layers ``0..i-1`` runs layers ``i..`` only. ``None`` unpins."""
        self.pin_ranks(None if choice_idx is None else self.ranks_of(choice_idx))

    def pin_ranks(self, ranks: tuple[tuple, ...] | None) -> None:
        """:meth:`pin` for per-layer rank entries (as :meth:`loss_of_ranks` takes them)."""
        self._pinned = {k: v for k, v in self._pinned.items() if k == self._full[: len(k)]}
        if ranks is None:
            return
        xs = None
        for i in range(1, self.n_layers + 1):
            key = ranks[:i]
            hit = self._pinned.get(key)
            if hit is None:
                hit = self._prefix.get(key)
            if hit is None:  # recompute from here on, all pinned
                if xs is None:
                    xs = [self._embed(b) for b in self._batches]
                p = self.layer(i - 1, *ranks[i - 1])
                hit = [self._block(p, x, b) for x, b in zip(xs, self._batches, strict=True)]
            self._pinned[key] = hit
            xs = hit


def layer_entry(
    rq: int, rv: int, qk_groups: Sequence[int] | None = None, v_groups: Sequence[int] | None = None
) -> tuple:
    """One layer's entry of a ranks tuple for :meth:`Evaluator.loss_of_ranks`: ``(rq, rv)``, or
    ``(rq, rv, qk_groups, v_groups)`` when some group differs (one canonical form, so that the
    memo and the prefix caches see equal configs as equal)."""
    qg = None if qk_groups is None or len(set(qk_groups)) == 1 else tuple(int(r) for r in qk_groups)
    vg = None if v_groups is None or len(set(v_groups)) == 1 else tuple(int(r) for r in v_groups)
    if qg is None and vg is None:
        return (int(rq), int(rv))
    return (int(rq), int(rv), qg, vg)


def config_entries(cfg: Any) -> tuple[tuple, ...]:
    """A :class:`~mallocgame.rank.config.RankConfig` as per-layer entries (:func:`layer_entry`)."""
    return tuple(layer_entry(cfg.r_qk[i], cfg.r_v[i], *cfg.groups(i)) for i in range(len(cfg.r_qk)))


# ----------------------------------------------------------------------------- tables


def _spectra(model: Any, calib: Calibration, method: str) -> list[tuple[list, list]]:
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
                cq_h, _ = _sym_pow(cq)
                ck_h, _ = _sym_pow(ck)
                qk.append(np.linalg.svd(cq_h @ ck_h, compute_uv=False) ** 2)
                m = np.concatenate(list(wo[heads]), axis=1)
                co_h, _ = _sym_pow(co)
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
    if per_head(method) and _has_head_view(model):
        spectra = _spectra(*_head_view(model, calib), "whitened")
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


def _progress_to_stderr(msg: str) -> None:
    print(f"[rank tables] {msg}", file=sys.stderr, flush=True)


def _default_tables(
    model: Any, spec: CalibSpec, fisher_probes: int, choices: tuple[int, ...]
) -> RankTables | None:
    """The cached tables of the default choices for the same weights, calibration spec and
    Fisher probes (found by their cache key, so they were measured exactly as these would
    be), if ``choices`` differ from the default and share ranks with it; else None."""
    default = DEFAULT_CHOICES[spec.model]
    if choices == default or not set(choices[:-1]) & set(default[:-1]):
        return None
    key = _spec_key(
        model.model_hash, spec, {"choices": list(default), "fisher_probes": fisher_probes}
    )
    path = cache_dir("rank") / f"tables-{spec.model}-{key}.npz"
    if not path.is_file():
        return None
    try:
        t = RankTables.load(str(path))
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
    progress: Callable[[str], None] | None = _progress_to_stderr,
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
    cost, full_cost = cost_table(model_name, choices, seq_len, spec.method)  # validates choices
    model = load_model(model_name)
    key = _spec_key(
        model.model_hash, spec, {"choices": list(choices), "fisher_probes": fisher_probes}
    )
    path = cache_dir("rank") / f"tables-{model_name}-{key}.npz"
    meta = {"calibration": spec.to_dict(), "fisher_probes": fisher_probes, "cache": str(path)}
    if use_cache and path.is_file():
        try:
            t = RankTables.load(str(path))
        except (OSError, ValueError, KeyError):
            t = None
        if t is not None and t.model_hash == model.model_hash and t.choices == choices:
            return dataclasses.replace(
                t, seq_len=seq_len, cost=cost, full_cost=full_cost, meta=meta | {"cached": True}
            )
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
        cost,
        full_cost,
        energy,
        sens,
        fisher,
        meta=meta | {"cached": False, "seconds": time.perf_counter() - t0},
    )
    if use_cache:
        tables.save(str(path))
    return tables
