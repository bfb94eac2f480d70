"""The figures job's record: a rerun with nothing changed is answered from the files it wrote.

After a complete run of :func:`workbench.figures.job.regenerate` (every
figure, no ``--only``), the ``figures`` command records what it wrote:
each output's SHA-256 (sweeps, summary tables, figures and their input
manifests) and the report it printed, under a key of everything the
outputs are a function of (:func:`job_key`): the package's code version,
the grid (full or quick), the seed, the output directory, the assembler
and linker that build the emulated kernel (as the image cache is keyed)
and the versions of Python and of the numeric and plotting libraries.
The next run with the same key reads every recorded file back and checks
its SHA-256; when all match, the files on disk are byte for byte what the
job would write again (same code, same seed: reproducible to the bit), so
it lists the same files and warnings and stops, without loading pandas, the sweep
caches or the emulator. Any difference (a file missing, changed or a
symlink; a source file edited; another seed or grid; a record that does
not parse) runs the whole job as before. The backend and the number of
workers are not in the key: they do not change a bit of the outputs.

The record is ``data/cache/figures/job[_quick].json``, written atomically
after the job's last file. The job models no kernel file; the kernel side
of the key is binutils building ``arch/x86/kernel/ftrace_32.S``'s stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from workbench.base.paths import cache_dir
from workbench.base.store import read_regular, write_atomic
from workbench.base.version import code_version

__all__ = ["LIBRARIES", "job_key", "read_record", "record_path", "write_record"]

#: distributions whose versions are in the key (what computes, stores and draws the outputs)
LIBRARIES = ("capstone", "joblib", "matplotlib", "numpy", "pandas", "pyarrow", "pyelftools", "unicorn")


def _tool(tool: str) -> str:
    """The first line of ``tool --version`` (binutils), or ``missing``."""
    if shutil.which(tool) is None:
        return "missing"
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
    return (out.splitlines() or ["?"])[0]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def job_key(quick: bool, seed: int, outdir: str | os.PathLike) -> str:
    """SHA-256 of everything a complete figures job's outputs depend on (see the module docstring)."""
    parts = {"code": code_version(), "run": "quick" if quick else "full", "seed": int(seed),
             "outdir": os.path.abspath(outdir), "as": _tool("as"), "ld": _tool("ld"),
             "python": sys.version, **{f"lib:{d}": _version(d) for d in LIBRARIES}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def record_path(quick: bool) -> Path:
    """Where the record of a complete (full or quick) job is kept."""
    return cache_dir("figures") / f"job{'_quick' if quick else ''}.json"


def _sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of the regular file *path* (never through a symlink), or None."""
    try:
        data = read_regular(path)
    except OSError:
        return None
    return None if data is None else hashlib.sha256(data).hexdigest()


def write_record(quick: bool, key: str, files: list, checked: list, problems: list) -> None:
    """Record a complete job: *files* (what it reports as written), *checked* (further files the
    next run's figures depend on: their input manifests), their SHA-256 now, and its *problems*."""
    digests = {}
    for p in [*files, *checked]:
        d = _sha256(p)
        if d is None:  # an output that is not a regular file now: record nothing, the next run recomputes
            return
        digests[str(p)] = d
    write_atomic(record_path(quick), json.dumps({"key": key, "files": [str(p) for p in files], "sha256": digests,
                                           "problems": list(problems)}, indent=1, sort_keys=True).encode())


def read_record(quick: bool, key: str) -> tuple[list, list] | None:
    """``(files, problems)`` of the recorded job if its key is *key* and every recorded file is still
    the one written then; else None."""
    try:
        rec = json.loads(read_regular(record_path(quick)) or b"")
    except (OSError, ValueError):
        return None
    if (not isinstance(rec, dict) or rec.get("key") != key or not isinstance(rec.get("files"), list)
            or not isinstance(rec.get("sha256"), dict) or not isinstance(rec.get("problems"), list)
            or not set(map(str, rec["files"])) <= set(rec["sha256"])):
        return None
    if any(not isinstance(d, str) or _sha256(p) != d for p, d in rec["sha256"].items()):
        return None
    return list(rec["files"]), list(map(str, rec["problems"]))
