"""The code versions that caches are keyed by.

:func:`code_version` hashes every source file of the package (Python,
assembly, linker script, scenarios): change any of them and every cached
result is stale. :func:`emulator_version` hashes only what decides an
emulated outcome (the i386 sources, the scenarios and the emulator's
modules), so editing a figure does not rerun the emulator.
"""

import functools
import hashlib
from pathlib import Path

__all__ = ["code_version", "emulator_version", "EMULATOR_PACKAGES"]

_PKG = Path(__file__).resolve().parents[1]
_SUFFIXES = {".py", ".S", ".inc", ".ld", ".toml"}
#: the modules whose code decides what an emulated call does
EMULATOR_PACKAGES = ("kernel", "emulate", "base")


def _digest(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(_PKG)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of every source file of the package."""
    return _digest(p for p in _PKG.rglob("*")
                   if p.suffix in _SUFFIXES and "__pycache__" not in p.parts)


@functools.lru_cache(maxsize=1)
def emulator_version() -> str:
    """Hash of the emulator's sources: the i386 text, scenarios and emulator modules."""
    return _digest(p for pkg in EMULATOR_PACKAGES for p in (_PKG / pkg).rglob("*")
                   if p.suffix in _SUFFIXES and "__pycache__" not in p.parts)
