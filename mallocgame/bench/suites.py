"""Instances and suites of the bench, and the capacities they are solved at.

An instance is named on the command line as

- ``zoo:NAME`` or a bare zoo name (``workloads.zoo.ZOO``), compiled by XLA in a subprocess (so
  that JAX's threads never live in the bench process, which forks a child per run) and cached
  as ``OUT/workloads/zoo-NAME.workload.json.gz``; ``zoo-small:NAME`` is the entry's tiny
  version (``small=True``);
- a file: minimalloc CSV (``A.1048576.csv``: the number is the capacity) or
  ``*.workload.json[.gz]``;
- a folder: every CSV and workload file in it (sorted), or, when it holds none, an XLA dump
  folder read by :func:`mallocgame.memory.sources.load_workload`;
- ``tiny:K``: small synthetic instances (6-8 buffers, with instructions and FLOPs) that
  exhaustive search can solve, for tests and for checking the exact solver.

Suites (``--suite``): ``zoo``, ``zoo-small``, ``challenging`` (minimalloc's challenging
benchmarks), ``traces`` (real traces from idealloc's collection), ``tiny``. Datasets are read
from ``$MALLOCGAME_DATASETS`` or ``<repo>/../shared/datasets``.

Capacities (``--capacities``): ``10%`` (of the instance's peak live bytes), bytes (``1048576``,
``4MiB``), ``auto`` (the capacity in a minimalloc file name, else 25% for ``malloc`` and 100%
for ``pack``), or ``inf`` (``pack`` only: room for everything, so the packing's peak is the
result).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mallocgame.errors import InputError
from mallocgame.io import REPO, datasets_dir
from mallocgame.memory.sources import capacity_from_name
from mallocgame.memory.targets import parse_capacity
from mallocgame.memory.workload import Workload

SUITES = ("zoo", "zoo-small", "challenging", "traces", "tiny")
DEFAULT_SUITE = {"malloc": "zoo", "pack": "challenging"}
DEFAULT_CAPACITIES = {"malloc": ("10%", "25%", "50%"), "pack": ("auto",)}
NUM_TINY = 4
ZOO_TIMEOUT_S = 1800.0


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    """One instance: ``name`` (unique in a bench), ``source`` (how to load it)."""

    name: str
    source: str
    kind: str  # zoo | file | dump | tiny

    @property
    def name_capacity(self) -> int | None:
        return capacity_from_name(self.source) if self.kind == "file" else None


# --------------------------------------------------------------------------- zoo
def zoo_names() -> list[str]:
    """The zoo's entries, listed by a subprocess (JAX stays out of this process)."""
    code = "import json; from workloads import zoo; print(json.dumps(list(zoo.ZOO)))"
    r = _python(code, [], timeout=300)
    if r.returncode != 0:
        raise InputError(f"cannot list the zoo: {_last_line(r.stderr)}", field="suite")
    return list(json.loads(r.stdout.strip().splitlines()[-1]))


def _python(code: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("JAX_PLATFORMS", "cpu")
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO),
    )


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def extract_zoo(name: str, small: bool, cache_dir: Path) -> tuple[Workload, float]:
    """Compile zoo entry ``name`` in a subprocess, cached in ``cache_dir``. Returns the
    workload and the extraction's wall time (0 when cached)."""
    path = cache_dir / f"zoo{'-small' if small else ''}-{name}.workload.json.gz"
    if path.exists():
        return Workload.load(path), 0.0
    cache_dir.mkdir(parents=True, exist_ok=True)
    code = (
        "import json, sys; from workloads import zoo\n"
        "w = zoo.extract(sys.argv[1], **json.loads(sys.argv[2]))\n"
        "w.save(sys.argv[3])\n"
    )
    t0 = time.perf_counter()
    try:
        r = _python(
            code,
            [name, json.dumps({"small": True} if small else {}), str(path)],
            timeout=ZOO_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise InputError(
            f"compiling zoo entry {name!r} took more than {ZOO_TIMEOUT_S:.0f} s", field="instances"
        ) from None
    if r.returncode != 0:
        raise InputError(
            f"compiling zoo entry {name!r} failed: {_last_line(r.stderr)}", field="instances"
        )
    return Workload.load(path), time.perf_counter() - t0


# --------------------------------------------------------------------------- tiny
def tiny_workload(k: int) -> Workload:
    """Synthetic instance ``k`` (0 <= k < NUM_TINY): 6-8 buffers of 512-byte multiples, a few
    instructions with FLOPs (even ``k``) or the trace proxy (odd ``k``). Deterministic."""
    rng = np.random.default_rng(1000 + k)
    n = 6 + k % 3
    horizon = 6
    starts = rng.integers(0, horizon - 1, size=n)
    ends = np.minimum(starts + rng.integers(1, 4, size=n), horizon)
    sizes = rng.integers(1, 6, size=n) * 512
    if k % 2:
        return Workload.from_intervals(
            f"tiny-{k}", np.arange(n), sizes, starts, ends, source={"reader": "tiny"}
        )
    # One instruction per position, touching every buffer live there with its size in bytes;
    # FLOPs chosen so that some instructions are compute-bound on tpuv4i, others memory-bound.
    ptr, buf, nbytes, flops = [0], [], [], []
    for pos in range(horizon):
        live = np.flatnonzero((starts <= pos) & (ends > pos))
        buf.extend(live.tolist())
        nbytes.extend(sizes[live].astype(float).tolist())
        ptr.append(len(buf))
        mem = float(sizes[live].sum()) / 614e9
        flops.append(float(rng.uniform(0.2, 1.2)) * mem * 138e12)
    return Workload(
        name=f"tiny-{k}",
        ids=np.arange(n),
        sizes=sizes,
        starts=starts,
        ends=ends,
        instr_flops=np.array(flops),
        access_ptr=np.array(ptr),
        access_buffer=np.array(buf, dtype=np.int64),
        access_bytes=np.array(nbytes),
        source={"reader": "tiny"},
    )


# --------------------------------------------------------------------------- resolution
_WORKLOAD_SUFFIXES = (".csv", ".workload.json", ".workload.json.gz", ".json", ".json.gz")


def _is_instance_file(p: Path) -> bool:
    return p.is_file() and any(p.name.endswith(s) for s in _WORKLOAD_SUFFIXES)


def _file_name(p: Path) -> str:
    return p.name.split(".")[0]


def suite_instances(suite: str) -> list[InstanceSpec]:
    if suite not in SUITES:
        raise InputError(
            f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}", field="suite"
        )
    if suite in ("zoo", "zoo-small"):
        return [InstanceSpec(n, f"{suite}:{n}", "zoo") for n in zoo_names()]
    if suite == "tiny":
        return [InstanceSpec(f"tiny-{k}", f"tiny:{k}", "tiny") for k in range(NUM_TINY)]
    folder = (
        datasets_dir() / {"challenging": "minimalloc-challenging", "traces": "ml-traces"}[suite]
    )
    if not folder.is_dir():
        raise InputError(f"suite {suite!r} needs {folder} (set MALLOCGAME_DATASETS)", field="suite")
    return _expand_folder(folder)


def _expand_folder(folder: Path) -> list[InstanceSpec]:
    files = sorted(p for p in folder.iterdir() if _is_instance_file(p))
    if not files:
        return [InstanceSpec(folder.name, str(folder), "dump")]
    return [InstanceSpec(_file_name(p), str(p), "file") for p in files]


def resolve_instances(items: list[str], suite: str | None, mode: str) -> list[InstanceSpec]:
    """The instances named on the command line, plus the suite's (the mode's default suite
    when neither is given). Names are made unique (``folder/name`` on a clash)."""
    specs: list[InstanceSpec] = []
    if suite:
        specs += suite_instances(suite)
    zoo: list[str] | None = None
    for item in items:
        if item.startswith(("zoo:", "zoo-small:")):
            prefix, name = item.split(":", 1)
            zoo = zoo if zoo is not None else zoo_names()
            if name not in zoo:
                raise InputError(
                    f"no zoo entry {name!r}; the zoo has {', '.join(zoo)}", field="instances"
                )
            specs.append(InstanceSpec(name, f"{prefix}:{name}", "zoo"))
            continue
        if item.startswith("tiny:"):
            try:
                k = int(item[5:])
            except ValueError:
                k = -1
            if not 0 <= k < NUM_TINY:
                raise InputError(
                    f"tiny instances are tiny:0 .. tiny:{NUM_TINY - 1}, got {item!r}",
                    field="instances",
                )
            specs.append(InstanceSpec(f"tiny-{k}", item, "tiny"))
            continue
        p = Path(item)
        if p.is_dir():
            specs += _expand_folder(p)
        elif p.is_file():
            specs.append(InstanceSpec(_file_name(p), str(p), "file"))
        else:
            zoo = zoo if zoo is not None else zoo_names()
            if item in zoo:
                specs.append(InstanceSpec(item, f"zoo:{item}", "zoo"))
            else:
                raise InputError(
                    "not a file, folder, zoo entry (zoo:NAME), or tiny:K", item, field="instances"
                )
    if not specs:
        specs = suite_instances(DEFAULT_SUITE[mode])
    # Unique names, first come first kept; a repeated source is dropped.
    seen_src: set[str] = set()
    names: dict[str, int] = {}
    out: list[InstanceSpec] = []
    for s in specs:
        if s.source in seen_src:
            continue
        seen_src.add(s.source)
        name = s.name
        if s.source.startswith("zoo-small:"):
            name = f"{s.name}-small"
        if name in names:
            name = f"{Path(s.source).parent.name}/{name}"
        names[name] = 1
        out.append(dataclasses.replace(s, name=name))
    return out


def load_instance(spec: InstanceSpec, cache_dir: Path) -> tuple[Workload, float]:
    """The workload of ``spec`` and the seconds it took to extract (zoo; 0 otherwise)."""
    if spec.kind == "tiny":
        return tiny_workload(int(spec.source.split(":", 1)[1])), 0.0
    if spec.kind == "zoo":
        prefix, name = spec.source.split(":", 1)
        return extract_zoo(name, prefix == "zoo-small", cache_dir)
    from mallocgame.memory.sources import load_workload

    return load_workload(spec.source), 0.0


# --------------------------------------------------------------------------- capacities
def parse_capacities(text: str | list[str] | None, mode: str) -> list[str]:
    """Check a comma-separated capacity list; raise :class:`InputError` (field
    ``capacities``) naming the bad entry."""
    if text is None:
        return list(DEFAULT_CAPACITIES[mode])
    items = text if isinstance(text, list) else [t.strip() for t in str(text).split(",")]
    out: list[str] = []
    for it in items:
        if not it:
            raise InputError(f"empty entry in the capacity list {text!r}", field="capacities")
        if it in ("auto",):
            out.append(it)
            continue
        if it in ("inf", "none"):
            if mode != "pack":
                raise InputError(
                    "capacity 'inf' means 'minimise the peak' and needs the pack mode",
                    field="capacities",
                )
            out.append("inf")
            continue
        try:
            parse_capacity(it, 1 << 40)
        except InputError as e:
            raise InputError(f"{e.message} (entry {it!r})", field="capacities") from None
        out.append(it)
    if len(set(out)) != len(out):
        raise InputError(f"repeated entry in the capacity list {text!r}", field="capacities")
    return out


def capacity_bytes(
    spec: str, workload: Workload, instance: InstanceSpec, mode: str, alignment: int
) -> int:
    """Bytes for capacity ``spec`` on ``workload`` (see the module doc)."""
    if spec == "auto":
        named = instance.name_capacity
        if named is not None:
            return named
        spec = "25%" if mode == "malloc" else "100%"
    if spec == "inf":
        a = max(1, alignment)
        return int((-(-workload.sizes // a) * a).sum())
    cap = parse_capacity(spec, workload.peak_live_bytes())
    return max(cap, 1)


def capacity_label(spec: str) -> str:
    """A file-name-safe form of a capacity spec."""
    return spec.replace("%", "pct").replace("/", "_")
