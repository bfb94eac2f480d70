"""A killed ``figures`` job writes nothing after it is gone, and its workers die with it (issue 13, item 4).

The figures are rendered by two worker processes; the parent is killed with
SIGKILL as soon as the first figure file appears. Nothing may be written
afterwards, no worker may survive, and no temporary file is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    from workbench.figures import job
    # tiny grids: the test is about the rendering stage, not the numbers
    job.GRIDS["quick"] = {"cpus": [1, 16], "sync_round_ns": [1e4, 1e6], "sites": [1, 10], "trials": 100}
    job.regenerate(True, jobs=2, outdir=sys.argv[1], progress=False)
""")

# about 30 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(30)


def _snapshot(d: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()}


def test_no_file_is_written_after_the_parent_is_killed(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers = []
    try:
        deadline = time.time() + 600
        figs = out / "figures"
        while time.time() < deadline and proc.poll() is None:
            if figs.is_dir() and any(figs.iterdir()):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = _snapshot(out)
    assert 0 < len([p for p in before if p.parent.name == "figures"]) < 21  # killed half way
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers outlived their parent: {[p.pid for p in alive]}"
    time.sleep(3)  # what an orphan would have written by now (it used to write for 10 s)
    assert _snapshot(out) == before
    # SIGKILL can cut the parent's own write short: its temporary (never a final file) may remain,
    # named with its pid, and the next write of that file removes it (tests/base/test_store.py)
    leftovers = list(out.rglob("*.tmp"))
    assert all(f".{proc.pid}-" in p.name for p in leftovers), leftovers
    assert all(p.stat().st_size > 0 for p in before if p.parent.name == "figures")
