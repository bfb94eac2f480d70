"""Ctrl-C, also while a Dask LocalCluster starts: one line, status 130, no worker left (issue 13, item 4)."""

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


@pytest.mark.parametrize("when", ["starting", "cluster_starting"])
def test_ctrl_c_during_dask_start_up_is_one_line(when, tmp_path):
    env = {**os.environ, "WORKBENCH_DATA": str(tmp_path), "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", "--set", "cpus=4,8", "--set", "outcomes=none",
                          "--set", "trials=100", "--dask", "local", "--jobs", "2", "--quiet", "--no-cache"],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kids = []
    try:
        if when == "starting":
            time.sleep(0.8)
        else:  # as soon as the cluster's first process exists
            deadline = time.time() + 120
            while time.time() < deadline and p.poll() is None and not kids:
                kids = psutil.Process(p.pid).children(recursive=True)
                time.sleep(0.02)
            assert kids, "the cluster never started"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    lines = err.decode().strip().splitlines()
    assert p.returncode == 130 and lines == ["interrupted; finished points are cached and a rerun resumes"], err
    _, alive = psutil.wait_procs(kids, timeout=15)
    assert not alive


def test_the_local_cluster_listens_on_loopback_only_and_not_on_8787():
    from workbench.sweep.backends import dask_client

    me = psutil.Process()
    with dask_client(jobs=1, processes=True) as client:
        procs = [me] + me.children(recursive=True)
        listening = [c.laddr for pr in procs for c in pr.net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert client.scheduler_info()["address"].startswith("tcp://127.0.0.1:")
    assert listening and all(a.ip in ("127.0.0.1", "::1") for a in listening), listening
    assert all(a.port != 8787 for a in listening), listening
