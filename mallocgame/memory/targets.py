"""Targets: the numbers of a machine that the cost model needs, each with its source.

A target file is JSON with ``name``, ``description`` and, for each number, an object
``{"value": NUMBER, "source": "where the number comes from"}``:
``fast_capacity_bytes``, ``alignment_bytes``, ``slow_bandwidth_bytes_per_s``,
``fast_bandwidth_bytes_per_s``, ``peak_flops_per_s``. Presets live beside this module.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from mallocgame.errors import InputError

PRESET_DIR = Path(__file__).with_name("targets")
DEFAULT_TARGET = "tpuv4i"
_FIELDS = (
    "fast_capacity_bytes",
    "alignment_bytes",
    "slow_bandwidth_bytes_per_s",
    "fast_bandwidth_bytes_per_s",
    "peak_flops_per_s",
)


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    fast_capacity_bytes: int
    alignment_bytes: int
    slow_bandwidth_bytes_per_s: float
    fast_bandwidth_bytes_per_s: float
    peak_flops_per_s: float
    description: str = ""
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def with_capacity(self, capacity: int) -> Target:
        return dataclasses.replace(self, fast_capacity_bytes=int(capacity))


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_target(name_or_path: str | Path) -> Target:
    """A preset by name (see :func:`list_presets`) or a target JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix and (PRESET_DIR / f"{name_or_path}.json").exists():
        path = PRESET_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise InputError(
            f"unknown target {str(name_or_path)!r}: not a preset ({', '.join(list_presets())}) "
            "nor a file"
        )
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON: {e.msg}", str(path), line=e.lineno) from None
    if not isinstance(d, dict):
        raise InputError("a target file must hold a JSON object", str(path))
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for f in _FIELDS:
        if f not in d:
            raise InputError("missing", str(path), field=f)
        entry = d[f]
        v = entry.get("value") if isinstance(entry, dict) else entry
        if isinstance(entry, dict):
            sources[f] = str(entry.get("source", ""))
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise InputError(f"must be a positive number, got {v!r}", str(path), field=f)
        values[f] = v
    if values["fast_bandwidth_bytes_per_s"] < values["slow_bandwidth_bytes_per_s"]:
        raise InputError(
            "fast memory must not be slower than slow memory",
            str(path),
            field="fast_bandwidth_bytes_per_s",
        )
    return Target(
        name=str(d.get("name", path.stem)),
        fast_capacity_bytes=int(values["fast_capacity_bytes"]),
        alignment_bytes=int(values["alignment_bytes"]),
        slow_bandwidth_bytes_per_s=float(values["slow_bandwidth_bytes_per_s"]),
        fast_bandwidth_bytes_per_s=float(values["fast_bandwidth_bytes_per_s"]),
        peak_flops_per_s=float(values["peak_flops_per_s"]),
        description=str(d.get("description", "")),
        sources=sources,
    )


_CAPACITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[kKmMgG]i?[bB]?|[bB])?\s*$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
}


def parse_capacity(text: str | int, peak_live_bytes: int) -> int:
    """``'25%'`` (of the workload's peak live bytes), ``'4MiB'``, ``'1048576'`` -> bytes."""
    if isinstance(text, int):
        cap = text
    else:
        m = _CAPACITY.match(str(text))
        if not m:
            raise InputError(
                f"cannot read capacity {text!r}: give bytes (1048576, 4MiB, 2MB) or a percentage "
                "of peak live bytes (25%)",
                field="capacity",
            )
        num, unit = float(m.group(1)), (m.group(2) or "")
        if unit == "%":
            cap = int(num / 100.0 * peak_live_bytes)
        else:
            key = unit.lower().rstrip("b")
            cap = int(num * _UNITS[key])
    if cap <= 0:
        raise InputError(f"capacity must be positive, got {text!r}", field="capacity")
    return cap
