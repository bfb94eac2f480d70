"""The sweep's point cache: one checked file per finished point.

Every finished point of a :func:`workbench.sweep.engine.sweep` is cached under
``data/cache/sweep/<code version>/``, keyed by the experiment, its
parameters, the seed and :func:`workbench.base.version.code_version`. Entries are
written atomically (temporary file, then ``os.replace``) by the coordinating
process as results arrive, so an interrupted sweep keeps what it finished
and a rerun computes only the missing points. Each entry carries the
SHA-256 of its payload and its own key: a torn or corrupted entry is
detected, reported, and recomputed. The payload is JSON, whose floats
round-trip exactly.

Keys (and the sweep's seed streams) are hashes of a canonical JSON form
(:func:`_canonical`), which depends neither on dict order nor on how a
float or a numpy scalar is spelt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["SweepCache"]

_MAGIC = b"wbsweep1"
# the sweep's logger: cache warnings keep the name they have always been logged under
_LOG = logging.getLogger("workbench.sweep.engine")


# -- canonical forms: keys and seeds must not depend on dict order or float spelling --

def _plain(value):
    """*value* as plain JSON-able Python (numpy scalars unwrapped, tuples as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _canonical(obj) -> bytes:
    # sort_keys: a dict's order must not change a key; repr floats round-trip exactly
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


# -- the cache ---------------------------------------------------------------------------

class SweepCache:
    """One file per finished point under *root*/<code version>/.

    An entry is ``wbsweep1 <sha256 of payload>\\n`` followed by the JSON
    payload (the point's key, experiment, parameters and rows). :meth:`get`
    returns ``None`` for a missing entry and ``"corrupt"`` for one that
    fails its checksum, its JSON, or its key (then it is removed).
    """

    def __init__(self, root=None, version=None):
        from workbench.base.paths import cache_dir
        from workbench.base.version import code_version

        self.version = version or code_version()
        self.root = Path(root) if root is not None else cache_dir("sweep")
        self.dir = self.root / self.version

    def key(self, experiment: str, params: dict, seed: int) -> str:
        blob = {"experiment": experiment, "params": params, "seed": seed, "version": self.version}
        return hashlib.sha256(_canonical(blob)).hexdigest()

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str):
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        head, _, payload = data.partition(b"\n")
        try:
            magic, digest = head.split(b" ")
            ok = magic == _MAGIC and hashlib.sha256(payload).hexdigest().encode() == digest
            entry = json.loads(payload) if ok else None
            ok = ok and entry.get("key") == key and isinstance(entry.get("rows"), list)
        except (ValueError, AttributeError, UnicodeDecodeError):
            ok = False
        if not ok:
            _LOG.warning("sweep cache: corrupted entry %s; recomputing it", path.name)
            path.unlink(missing_ok=True)
            return "corrupt"
        return entry["rows"]

    def put(self, key: str, experiment: str, params: dict, rows: list) -> None:
        payload = json.dumps({"key": key, "experiment": experiment, "params": _plain(params),
                              "rows": rows}, separators=(",", ":"), allow_nan=True).encode()
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(_MAGIC + b" " + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, path)  # atomic: a reader sees the whole entry or none

    def __len__(self):
        return sum(1 for _ in self.dir.glob("*/*.json")) if self.dir.exists() else 0
