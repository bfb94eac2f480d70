"""What verification costs: verified cache reads and per-call code versions, as ratios.

Prints, in one process: a verified entry read (``load_entry``: hash, length,
parse) against a plain ``read_bytes`` of the same file; an atomic verified
write (``store_entry``: ``O_EXCL`` temporary, ``fsync``, rename) against a
plain ``write_bytes``; ``code_version()`` recomputed from the sources (stat
memo) against a cached constant; ``fdot`` against ``@`` for the race
model's shapes. Run: ``python benchmarks/bench_store.py``.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench.base import version
from workbench.base.numeric import fdot
from workbench.base.store import load_entry, store_entry


def per_call(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main():
    payload = json.dumps({"rows": [{"x": i, "y": i * 0.5} for i in range(200)]}).encode()
    with tempfile.TemporaryDirectory() as d:
        entry, plain = Path(d) / "entry.json", Path(d) / "plain.json"
        store_entry(entry, payload, what="bench")
        plain.write_bytes(payload)
        t_plain = per_call(lambda: json.loads(plain.read_bytes()), 2000)
        t_ver = per_call(lambda: load_entry(entry, json.loads, what="bench"), 2000)
        print(f"read   verified {t_ver * 1e6:8.1f} us   plain {t_plain * 1e6:8.1f} us   ratio {t_ver / t_plain:5.2f}")
        w_plain = per_call(lambda: plain.write_bytes(payload), 200)
        w_ver = per_call(lambda: store_entry(entry, payload, what="bench"), 200)
        print(f"write  atomic   {w_ver * 1e6:8.1f} us   plain {w_plain * 1e6:8.1f} us   ratio {w_ver / w_plain:5.2f}")
    const = version.code_version()
    t_const = per_call(lambda: const, 2000)
    t_code = per_call(version.code_version, 200)
    print(f"code_version per call {t_code * 1e3:6.2f} ms  (a cached constant {t_const * 1e9:.0f} ns; "
          f"one per sweep or outcome-table load)")
    rng = np.random.default_rng(0)
    for shape in ((2000, 16), (64, 96), (40_000,)):
        a = rng.random(shape)
        b = rng.random(shape[-1])
        t_blas = per_call(lambda a=a, b=b: a @ b, 200)
        t_f = per_call(lambda a=a, b=b: fdot(a, b), 200)
        print(f"fdot {str(shape):12s} {t_f * 1e6:8.1f} us   @ {t_blas * 1e6:8.1f} us   ratio {t_f / t_blas:5.2f}")


if __name__ == "__main__":
    main()
