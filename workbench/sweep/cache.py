"""The sweep's point cache: one checked file per finished point.

Every finished point of a :func:`workbench.sweep.engine.sweep` is cached under
``data/cache/sweep/<code version>/``, keyed by the experiment, its
parameters, the seed and the code version that computed it
(:func:`workbench.base.version.code_version`, read from the sources at
every sweep). Entries are written atomically by the coordinating process as
results arrive (:mod:`workbench.base.store`), so an interrupted sweep keeps
what it finished and a rerun computes only the missing points. Each entry
carries the SHA-256 of its payload, its own key and its version: a torn,
corrupted or unreadable entry is detected, reported in one line, and
recomputed. The payload is JSON, whose floats round-trip exactly. Models no
kernel file.

Keys (and the sweep's seed streams) are hashes of a canonical JSON form
(:func:`canonical_json`), which depends neither on dict order nor on how a
float or a numpy scalar is spelt.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from workbench.base import version as _version
from workbench.base.paths import cache_dir
from workbench.base.store import DAMAGED, load_entry, store_entry

__all__ = ["SweepCache", "canonical_json", "plain_json"]



# -- canonical forms: keys and seeds must not depend on dict order or float spelling --

def plain_json(value):
    """*value* as plain JSON-able Python (numpy scalars unwrapped, tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def canonical_json(obj) -> bytes:
    """*obj* as canonical JSON bytes (UTF-8): the input of every cache key and seed hash.

    Keys sorted, no spaces, floats as their round-tripping repr, values made
    plain by :func:`plain_json`; unitless (the values keep their own units).
    """
    # sort_keys: a dict's order must not change a key; repr floats round-trip exactly
    return json.dumps(plain_json(obj), sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _signature(path: Path):
    """``[size, mtime_ns, ctime_ns, inode]`` of *path*, or None if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


# -- the cache ---------------------------------------------------------------------------

class SweepCache:
    """One verified entry per finished point under *root*/<code version>/.

    An entry (:func:`workbench.base.store.store_entry`) holds the point's
    key, experiment, parameters, the code version it was computed with and
    its rows. :meth:`get` returns ``None`` for a missing entry and
    ``"corrupt"`` for one that is unreadable, fails its checksum, or holds
    another key, another version, or no rows (it is then removed).
    *version* fixes the code version (default: :func:`code_version` now).
    """

    def __init__(self, root=None, version=None):
        self.version = version or _version.code_version()
        self.root = Path(root) if root is not None else cache_dir("sweep")
        self.dir = self.root / self.version

    def for_version(self, version: str) -> "SweepCache":
        """The same cache keyed by another code version (what a worker ran)."""
        return self if version == self.version else SweepCache(self.root, version)

    def key(self, experiment: str, params: dict, seed: int) -> str:
        """The SHA-256 key of a point: experiment, normalised parameters, seed and code version."""
        blob = {"experiment": experiment, "params": params, "seed": seed, "version": self.version}
        return hashlib.sha256(canonical_json(blob)).hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry of *key* lives."""
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str):
        """The rows of *key*, ``None`` if missing, ``"corrupt"`` if damaged (and removed)."""
        def parse(payload: bytes):
            entry = json.loads(payload)
            if entry.get("key") != key:
                raise ValueError("holds another point's key")
            if entry.get("version", self.version) != self.version:
                raise ValueError("computed by another code version")
            rows = entry.get("rows")
            if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
                raise ValueError("no rows")
            return rows

        got = load_entry(self.path(key), parse, what="sweep cache")
        return "corrupt" if got is DAMAGED else got

    def put(self, key: str, experiment: str, params: dict, rows: list) -> None:
        """Store the rows of *key* (atomically; a cache that cannot be written costs a warning)."""
        payload = json.dumps({"key": key, "experiment": experiment, "params": plain_json(params),
                              "version": self.version, "rows": rows},
                             separators=(",", ":"), allow_nan=True).encode()
        store_entry(self.path(key), payload, what="sweep cache")

    # -- a whole sweep's records, as one entry beside its points' ---------------------------------

    def sweep_key(self, experiment: str, raw_points: list, seed: int) -> str:
        """The key of a whole sweep: experiment, its points as given (not normalised), seed, code version."""
        blob = {"experiment": experiment, "grid": raw_points, "seed": seed, "version": self.version}
        return hashlib.sha256(canonical_json(blob)).hexdigest()

    def sweep_path(self, key: str) -> Path:
        """Where the whole-sweep entry of *key* lives (``.records``: no point entry's name)."""
        return self.dir / "sweeps" / f"{key}.records"

    def get_sweep(self, key: str):
        """The records of the whole sweep *key*, or None.

        None when there is no entry, when it is damaged (reported and removed),
        or when any of the point entries it was made from is not the file it
        was then (gone, unreadable, rewritten, touched: size, times and inode
        are kept):
        the sweep then reads its points one by one, and finds what is wrong
        with them as it always did.
        """
        def parse(payload: bytes):
            entry = json.loads(payload)
            if entry.get("key") != key or entry.get("version") != self.version:
                raise ValueError("holds another sweep's key or version")
            records, points = entry.get("records"), entry.get("points")
            if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
                raise ValueError("no records")
            if not isinstance(points, list) or not points:
                raise ValueError("no point entries")
            return records, points

        got = load_entry(self.sweep_path(key), parse, what="sweep cache")
        if got is None or got is DAMAGED:
            return None
        records, points = got
        for name, sig in points:
            path = self.dir / name
            if _signature(path) != sig:
                return None
            try:  # still readable, as the point-by-point read would need it to be
                os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
            except OSError:
                return None
        return records

    def put_sweep(self, key: str, experiment: str, records: list, point_keys) -> None:
        """Store a finished sweep's *records* with the signatures of its point entries (*point_keys*)."""
        points = []
        for k in sorted(set(point_keys)):
            sig = _signature(self.path(k))
            if sig is None:  # a point entry that could not be written: no whole entry either
                return
            points.append([str(self.path(k).relative_to(self.dir)), sig])
        payload = json.dumps({"key": key, "experiment": experiment, "version": self.version, "points": points,
                              "records": plain_json(records)}, separators=(",", ":"), allow_nan=True).encode()
        store_entry(self.sweep_path(key), payload, what="sweep cache")

    def __len__(self):
        return sum(1 for _ in self.dir.glob("*/*.json")) if self.dir.exists() else 0
