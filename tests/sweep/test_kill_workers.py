"""A sweep killed with SIGKILL takes its local workers with it (issue 13, item 4: they used to
linger for minutes), and the finished points it cached are whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from workbench.sweep.cache import SweepCache

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys, time
    from workbench.sweep.engine import FunctionExperiment, Grid, sweep

    def slow(params, seed, stream, context):
        time.sleep(0.2)
        return {"y": params["x"] ** 2}

    sweep(Grid(x=list(range(200))), FunctionExperiment("slow", slow, {"x": 0}), backend="local", jobs=2,
          chunk_size=1, cache_root=sys.argv[1], progress=False)
""")


def test_killed_sweep_workers_die_with_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and len(list(tmp_path.rglob("*.json"))) < 6:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        kids = psutil.Process(proc.pid).children(recursive=True)
        assert len(kids) >= 2
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, [p.cmdline()[:3] for p in alive]
    # a SIGKILL in the middle of the parent's write leaves its temporary, named with its pid (the
    # next write of that entry removes it); no worker wrote one, and every entry in place is whole
    leftovers = list(tmp_path.rglob("*.tmp"))
    assert all(f".{proc.pid}-" in p.name for p in leftovers), leftovers
    entries = list(tmp_path.rglob("*.json"))
    assert len(entries) >= 6
    (version,) = {p.name for p in tmp_path.iterdir()}
    for entry in entries:
        assert SweepCache(tmp_path, version).get(entry.stem) not in (None, "corrupt"), entry
