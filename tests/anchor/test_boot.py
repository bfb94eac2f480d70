"""Real boots: Debian's 6.1 kernels under QEMU TCG (CI installs qemu-system-x86 and busybox-static).

Each test boots a kernel (10-60 s under TCG on two busy cores); the full
grid is ``make anchor``, not these.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.anchor import run as anchor_run
from workbench.anchor.boot import live_qemu_pids
from workbench.anchor.guest import guest_script
from workbench.anchor.packages import debs_dir
from workbench.anchor.run import QUICK_NS, measure, slope_table, with_model
from workbench.base.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

# each test boots a guest (or checks what a boot leaves): the end-to-end part, `make endtoend`
# about 110 s on two busy cores, four boots in one module: xdist gives a module of two or fewer
# tests a second module behind it at once, so this one stays whole (tests/conftest.py)
pytestmark = [pytest.mark.qemu, pytest.mark.slow(110)]


def _qemu_pids_with(text: str) -> list[int]:
    """PIDs of running processes whose command line contains *text*."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


@pytest.fixture
def own_data(tmp_path, monkeypatch):
    """A data directory of the test's own; the fetched packages stay in the shared cache."""
    monkeypatch.setenv("WORKBENCH_ANCHOR_DEBS", str(debs_dir()))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    return tmp_path


def test_one_vcpu_guest_receives_no_function_call_ipi():
    frame = with_model(measure("i386", 1, QUICK_NS))
    assert len(frame) == 4 * len(QUICK_NS) and (frame.enabled_after[frame["update"] == "tracer_on"] > 500).any()
    # on_each_cpu() runs the callback locally and sends nothing with one CPU online
    assert (frame.cal_total == 0).all() and (frame.model_ipis == 0).all()
    # the guest did run the protocol: its own do_sync_core rounds were asked of no other CPU
    assert (frame.asked_text_poke_sync == 0).all() and (frame.send_calls == 0).all()


def test_i386_per_batch_slope_matches_the_v6_1_model():
    frame = with_model(measure("i386", 2, QUICK_NS))
    slopes = slope_table(frame)
    assert set(slopes["update"]) == {"tracer_on", "tracer_off"}
    for _, s in slopes.iterrows():
        # do_sync_core rounds sent per extra batch of 256 sites: exactly text_poke_bp_batch's three
        assert s.slope_sync == pytest.approx(3.0, abs=1e-9)
        assert s.slope_model == pytest.approx(3.0, abs=1e-9)
        # what the CAL row received per batch, less the classes outside the model (remote wakeups,
        # idle-balance kicks: they grow with the update's duration): within 5 % of the model
        assert abs(s.slope_error_less_outside) < 0.05, s.to_dict()
    # every update: the sync rounds the guest sent equal the model's, to the round
    assert (frame.asked_text_poke_sync == frame.model_sync_ipis).all()
    assert (frame.asked_ftrace_sync_ipi == frame.model_ftrace_sync_ipis).all()
    # every IPI that arrived has a send in a class, but for a tenth at most
    k2 = frame[frame.vcpus == 2]
    assert k2.unexplained.abs().sum() <= 0.1 * k2.received_events.sum()


def test_missing_qemu_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT), "WORKBENCH_DATA": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "workbench", "anchor", "--quick"], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "qemu-system-x86_64 not found" in r.stderr and "apt-get install qemu-system-x86" in r.stderr


def test_hung_guest_times_out_with_its_console_kept_and_no_qemu_left(own_data, monkeypatch):
    def hung(ns, *, word="x64", sleep_init=False):
        return guest_script(ns, word=word, sleep_init=True)[0], guest_script(ns, word=word)[1]
    monkeypatch.setattr(anchor_run, "guest_script", hung)
    t0 = time.monotonic()
    # the guest reaches its init (prints @@ HANG) in about 2 s on a quiet machine, in tens of seconds
    # when the end-to-end part's other workers and a cold cache load it
    with pytest.raises(ConfigError, match="did not finish in 2 tries"):
        measure("i386", 1, (3,), timeout_s=20, retries=1, log=lambda *_: None)
    assert time.monotonic() - t0 < 120
    (entry,) = (own_data / "anchor").iterdir()
    for attempt in (1, 2):  # the first try's log is kept, and the retry's
        text = (entry / f"console.try{attempt}.log").read_text(errors="replace")
        assert "@@ HANG" in text
    assert not live_qemu_pids()
    assert not _qemu_pids_with(str(entry))


def test_ctrl_c_kills_the_guest(own_data):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_DATA": str(own_data)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "anchor", "--arch", "i386", "--vcpus", "1",
                             "--sites", "5", "--retries", "0"], env=env, cwd=own_data,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _qemu_pids_with(str(own_data)):
            time.sleep(0.2)
        qemu = _qemu_pids_with(str(own_data))
        assert qemu, "QEMU did not start"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.count("\n") == 1
    time.sleep(0.5)
    assert not _qemu_pids_with(str(own_data))
