"""Ctrl-C as the command line meets it, repeated: one line, exit status 130, nothing left running.

SIGINT to the process group (what a terminal's Ctrl-C sends) on
``figures``, ``sweep`` (local and Dask) and the model checker, at moments
spread over start-up, pool start and computation, ten times each: exactly
one line on stderr, exit status 130, and the process group empty soon
after. Before, a traceback from a ctypes callback, resource-tracker
warnings, or tens of lines of Dask Nanny tracebacks came out now and then.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = "interrupted; finished points are cached and a rerun resumes"
# points of about a second each, so the local backend goes to its pool; no outcome tables to load
SWEEP = ["sweep", "--set", "cpus=2,3,4,5,6,7,8,9,10,11,12,13", "--set", "outcomes=none", "--set", "trials=10000000",
         "--no-cache", "--quiet", "--force"]

# about 130 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(130)


def _env(tmp_path):
    return {**os.environ, "WORKBENCH_DATA": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}


CTRL_C = {
    "figures": ["figures", "--quick", "--quiet", "--jobs", "2"],
    "sweep-local": [*SWEEP, "--jobs", "2"],
    "sweep-dask": [*SWEEP, "--dask", "local", "--jobs", "2"],
    "model-checker": ["model-check", "--cpus", "2", "--strategy", "skip,spin", "--entry", "all", "--quiet",
                      "--jobs", "2"],
}


@pytest.mark.parametrize("what", list(CTRL_C))
def test_ctrl_c_to_the_process_group_is_one_line_and_130_ten_times_in_ten(tmp_path, what):
    env = _env(tmp_path)
    results = []
    for run in range(10):
        delay = 0.1 + 0.3 * run  # 0.1 s .. 2.8 s: pool or cluster start, computation
        if what == "model-checker":  # a fresh data directory: no run resumes the subtrees another finished
            env = {**env, "WORKBENCH_DATA": str(tmp_path / f"data{run}")}
        p = subprocess.Popen([sys.executable, "-m", "workbench", *CTRL_C[what]], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            # from the moment the command runs (its first child, the watchdog, exists): a SIGINT
            # while the interpreter itself is still starting ends it before any of its code runs
            deadline = time.time() + 60
            while time.time() < deadline and p.poll() is None and not psutil.Process(p.pid).children():
                time.sleep(0.01)
            time.sleep(delay)
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
            err = p.communicate(timeout=60)[1].decode()
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        empty = False
        for _ in range(100):  # the process group (its workers, trackers) empties soon after
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                empty = True
                break
            time.sleep(0.05)
        results.append((delay, p.returncode, err.strip().splitlines(), empty))
    bad = [r for r in results if r[1:] != (130, [LINE], True)]
    assert not bad, bad
