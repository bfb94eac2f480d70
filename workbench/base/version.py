"""The code versions that caches are keyed by.

Models no kernel file; it decides which cached results still describe the
code. :func:`code_version` hashes every source file of the package (Python,
assembly, linker script, scenarios): change any of them and every cached
result is stale. :func:`emulator_version` hashes only what decides an
emulated outcome (the i386 sources, the scenarios and the emulator's
modules), so editing a figure does not rerun the emulator.

Both are recomputed from the files on every call (a file's digest is
remembered while its size, modification time and inode stay the same, so
a call costs a few ``stat`` calls), so a source edited in a live notebook
kernel changes the key at once. :func:`loaded_code_version` is the version
this process saw first: what a worker process, which never reloads a
module, is running.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

#: the package version (``workbench.__version__``)
VERSION = "0.1.0"

__all__ = ["VERSION", "EMULATOR_PACKAGES", "code_version", "emulator_version", "files_digest", "loaded_code_version"]

_PKG = Path(__file__).resolve().parents[1]
_SUFFIXES = {".py", ".S", ".inc", ".ld", ".toml", ".h"}
#: the modules whose code decides what an emulated call does
EMULATOR_PACKAGES = ("kernel", "emulate", "base")
#: path -> ((size, mtime_ns, ctime_ns, inode), sha256 of the contents)
_MEMO: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
_LOADED: list[str] = []


def _file_hash(path: str) -> bytes:
    st = os.stat(path)
    sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    hit = _MEMO.get(path)
    if hit is not None and hit[0] == sig:
        return hit[1]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).digest()
    _MEMO[path] = (sig, digest)
    return digest


def files_digest(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """16 hex digits of SHA-256 over the names (relative to *root*, else base names) and contents of *paths*."""
    h = hashlib.sha256()
    for p in sorted(map(os.fspath, paths)):
        name = os.path.relpath(p, root) if root is not None else os.path.basename(p)
        h.update(name.encode() + b"\0" + _file_hash(p))
    return h.hexdigest()[:16]


def _sources(packages=None) -> list[str]:
    roots = [str(_PKG)] if packages is None else [os.path.join(_PKG, p) for p in packages]
    out = []
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x != "__pycache__" and not x.startswith(".")]
            out += [os.path.join(d, f) for f in files if os.path.splitext(f)[1] in _SUFFIXES]
    return out


def code_version() -> str:
    """Hash of every source file of the package as it is on disk now (16 hex digits)."""
    return files_digest(_sources(), _PKG)


def emulator_version() -> str:
    """Hash of the emulator's sources on disk now: the i386 and x86_64 text, scenarios and emulator modules."""
    return files_digest(_sources(EMULATOR_PACKAGES), _PKG)


def loaded_code_version() -> str:
    """:func:`code_version` as this process first saw it (the code a worker process runs)."""
    if not _LOADED:
        _LOADED.append(code_version())
    return _LOADED[0]
