"""SIGKILL to a command as its pool's first worker appears, repeated: nothing outlives the parent.

SIGKILL to the parent as soon as its pool's first worker process appears
(loky and Dask), ten times each: a second later no process it started is
alive. Before, loky workers and resource trackers lived on for loky's idle
timeout (about 340 s) holding the parent's stdout and stderr. The harness
makes itself a child subreaper, so every orphan is re-parented to it and
none escapes the count, even one started a moment before the kill.
(Ctrl-C, the other way a run is cut short, is ``test_ctrl_c.py``; the two
are separate modules so that the suite's two workers run them side by side.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# points of about a second each, so the local backend goes to its pool; no outcome tables to load
SWEEP = ["sweep", "--set", "cpus=2,3,4,5,6,7,8,9,10,11,12,13", "--set", "outcomes=none", "--set", "trials=10000000",
         "--no-cache", "--quiet", "--force"]

HARNESS = textwrap.dedent("""
    import ctypes, json, os, signal, subprocess, sys, time
    import psutil

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    argv, marker, runs = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    me = psutil.Process()
    report = []
    for run in range(runs):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parent = psutil.Process(p.pid)
        seen, deadline, killed_after = None, time.time() + 120, None
        while time.time() < deadline and p.poll() is None:
            try:
                kids = parent.children(recursive=True)
                if any(marker in " ".join(k.cmdline()) for k in kids):
                    seen = time.perf_counter()
                    break
            except psutil.Error:
                pass
            time.sleep(0.005)
        if seen is None:
            report.append({"run": run, "error": "no worker appeared", "status": p.poll()})
            p.kill(); p.wait()
            continue
        os.kill(p.pid, signal.SIGKILL)
        killed_after = time.perf_counter() - seen
        p.wait()
        time.sleep(1.0)
        alive = []
        for k in me.children(recursive=True):  # orphans come to us: we are their subreaper
            try:
                if k.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(k.cmdline())[:120])
            except psutil.Error:
                pass
        report.append({"run": run, "killed_after_s": killed_after, "alive": alive})
        for k in me.children(recursive=True):  # clean up whatever a failing run left, then reap
            try:
                k.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(me.children(recursive=True), timeout=10)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    break
            except ChildProcessError:
                break
    print(json.dumps(report))
""")

# about 100 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(100)


def _env(tmp_path):
    return {**os.environ, "WORKBENCH_DATA": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("backend, marker", [(["--jobs", "2"], "popen_loky_posix"),
                                             (["--dask", "local", "--jobs", "2"], "multiprocessing.spawn")])
def test_sigkill_of_the_parent_as_its_workers_appear_leaves_no_child_alive(tmp_path, backend, marker):
    argv = [sys.executable, "-m", "workbench", *SWEEP, *backend]
    out = subprocess.run([sys.executable, "-c", HARNESS, json.dumps(argv), marker, "10"], env=_env(tmp_path),
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 10 and not [r for r in report if "error" in r], report
    # the harness killed the parent while its pool was starting: the delay is the harness's own
    # scheduling after it saw the first worker (0.17 s seen on a loaded two-core machine), well
    # inside a pool's start-up; the workbench's part is that nothing outlives the parent
    assert all(r["killed_after_s"] < 0.5 for r in report), report
    assert [r["alive"] for r in report] == [[]] * 10, report
