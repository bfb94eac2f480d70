"""The code version that caches are keyed by.

A hash of every source file of the package (Python, assembly, linker
script, scenarios): change any of them and every cached result is stale.
"""

import functools
import hashlib
from pathlib import Path

__all__ = ["code_version"]

_PKG = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    h = hashlib.sha256()
    for p in sorted(_PKG.rglob("*")):
        if p.suffix in {".py", ".S", ".inc", ".ld", ".toml"} and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(_PKG)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]
