"""Ctrl-C's one line when it lands while a pool's resource trackers start (stderr on /dev/null then)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import multiprocessing.resource_tracker as tracker
    import os, signal, sys, time
    from workbench.base import process

    process.watch_interrupts("interrupted (test)", grace=3.0)

    def slow_start():  # a tracker starting on a loaded machine; the terminal's Ctrl-C arrives meanwhile
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.0)

    tracker.ensure_running = slow_start
    try:
        process.prepare_pool()
        time.sleep(10)
    except KeyboardInterrupt:
        process.acknowledge_interrupt()
        sys.exit(130)
    print("not interrupted", file=sys.stderr)
""")


def test_ctrl_c_while_a_tracker_starts_still_prints_its_line_once():
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 130
    assert r.stderr.splitlines() == ["interrupted (test)"]
