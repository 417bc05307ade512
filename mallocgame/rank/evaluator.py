"""A fast calibration-loss evaluator of rank choices (the rank game's measured loss).

:class:`Evaluator` maps choice vectors ``int64[N, P]`` (one rank index per part, parts as in
:mod:`mallocgame.rank.tables`) to calibration losses ``float64[N]``, lower is better, 0 at full,
on the loss text of a :class:`~mallocgame.rank.calibration.RankSetup`:

- SmolLM2: ``log(ppl_low) - log(ppl_full)`` on the loss windows;
- MiniLM: ``1 - mean cosine`` between low-rank and full embeddings of the loss documents.

It is fast in two ways. Results are memoised by rank config. And the forward is one jitted
call per layer, so the hidden state at each layer's input is cached, keyed by the ranks of the
layers before it: a config that agrees with a cached one on layers ``0..i-1`` runs only layers
``i..``. The full model's states are always kept (a config that differs from full only from
layer ``i`` on costs ``(n - i) / n`` of a forward); the states of the most recent configs are
kept too (a greedy search whose candidates differ from the current config in one layer reuses
that config's prefix). A rank config as the evaluator's per-layer keys:
:func:`mallocgame.rank.config.config_entries`.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.rank.calibration import RankSetup
from mallocgame.rank.config import MODEL_SHAPES, RankConfig, config_entries, inherit_groups
from mallocgame.rank.models import minilm as _minilm
from mallocgame.rank.models import smollm2 as _smollm2
from mallocgame.rank.runtime import layer_params, masked_layer_params
from mallocgame.rank.tables import DEFAULT_CHOICES


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
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
    the new rank (:func:`mallocgame.rank.config.rescale_groups`), so that a solver over the
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
        self.group_template: RankConfig | None = None
        self._reference = self._run_full()

    # -- data
    def _make_batches(self, batch_size: int) -> list[tuple[np.ndarray, ...]]:
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

    def _embed(self, batch: tuple[np.ndarray, ...]) -> jax.Array:
        if self.name == "smollm2":
            return self.model.params["tok_emb"][jnp.asarray(batch[0])]
        return _minilm.embed(self.model.params, self.cfg, jnp.asarray(batch[0]))

    def _block(self, p: dict, x: jax.Array, batch: tuple[np.ndarray, ...]) -> jax.Array:
        if self.name == "smollm2":
            return _smollm2.block(p, self.cfg, x, False)[0]
        return _minilm.block(p, self.cfg, x, jnp.asarray(batch[1]), False)[0]

    def _head(self, xs: list[jax.Array]) -> np.ndarray:
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
        :func:`~mallocgame.rank.config.layer_entry`)."""
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

    def _forward(self, ranks: tuple[tuple[int, int], ...], pin: bool = False) -> np.ndarray:
        i0, xs = self._lookup(ranks)
        for i in range(i0, self.n_layers):
            p = self.layer(i, *ranks[i])
            xs = [self._block(p, x, b) for x, b in zip(xs, self._batches, strict=True)]
            self._store(ranks[: i + 1], xs, pin)
        return self._head(xs)

    def _run_full(self) -> np.ndarray:
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

    def keep_groups(self, cfg: RankConfig) -> RankConfig:
        """``cfg`` with :attr:`group_template`'s split (rescaled in the parts whose rank
        differs), as :meth:`ranks_of` scores it; ``cfg`` itself without a template."""
        if self.group_template is None:
            return cfg
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
