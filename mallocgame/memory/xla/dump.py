"""Finding the files of each compiled module in an XLA dump folder, and choosing one module."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mallocgame.errors import InputError

_FILE_RE = re.compile(
    r"^(module_(\d+)\.(.+?))\.([A-Za-z0-9_.\-]*?after_optimizations)"
    r"(-buffer-assignment-values|-buffer-assignment|-live-range|-memory-usage-report)?\.txt$"
)
# File name suffix -> the kind of file, the key of DumpModule.files.
_KINDS = {
    None: "hlo",
    "-buffer-assignment": "buffer_assignment",
    "-buffer-assignment-values": "values",
    "-live-range": "live_range",
}


@dataclass
class DumpModule:
    """The files of one module in a dump folder."""

    prefix: str  # module_0006.jit_f
    module_id: int
    name: str  # jit_f
    stage: str  # cpu_after_optimizations
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # "hlo", "buffer_assignment", ...

    def expected(self, kind: str) -> Path:
        suffix = {v: k for k, v in _KINDS.items()}[kind] or ""
        return self.folder / f"{self.prefix}.{self.stage}{suffix}.txt"

    def value_count(self) -> int:
        p = self.files.get("buffer_assignment")
        if p is None:
            return 0
        try:
            with open(p, "rb") as f:
                return sum(1 for line in f if line.startswith(b" value: <"))
        except OSError:
            return 0


def find_modules(path: str | os.PathLike[str]) -> list[DumpModule]:
    """The modules whose after-optimizations dump files lie in folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("not a folder (expected an XLA dump folder)", str(folder))
    mods: dict[tuple[str, str], DumpModule] = {}
    for entry in sorted(os.listdir(folder)):
        m = _FILE_RE.match(entry)
        if not m or m.group(5) == "-memory-usage-report":
            continue
        key = (m.group(1), m.group(4))
        mod = mods.setdefault(
            key,
            DumpModule(
                prefix=m.group(1),
                module_id=int(m.group(2)),
                name=m.group(3),
                stage=m.group(4),
                folder=folder,
            ),
        )
        mod.files[_KINDS[m.group(5)]] = folder / entry
    return sorted(mods.values(), key=lambda d: (d.module_id, d.stage))


def select_module(folder: Path, module: str | None) -> tuple[DumpModule, list[str]]:
    """The module of ``folder`` that ``module`` names (see :func:`read_dump_folder`), and the
    candidates it was chosen from, as ``PREFIX.STAGE``."""
    mods = find_modules(folder)
    if not mods:
        raise InputError(
            "no XLA module dumps found (expected files like "
            "module_0000.NAME.cpu_after_optimizations.txt; "
            "dump with XLA_FLAGS='--xla_dump_to=DIR --xla_dump_hlo_as_text')",
            str(folder),
        )
    names = [f"{d.prefix}.{d.stage}" for d in mods]
    if module is not None:
        exact = [d for d in mods if module in (d.name, d.prefix, f"{d.prefix}.{d.stage}")]
        cands = exact or [d for d in mods if module in f"{d.prefix}.{d.stage}"]
        if not cands:
            raise InputError(
                f"no module matching {module!r}; modules here: {', '.join(names)}",
                str(folder),
                field="module",
            )
    else:
        cands = mods
    chosen = max(cands, key=lambda d: (d.value_count(), d.module_id))
    return chosen, [f"{d.prefix}.{d.stage}" for d in cands]
