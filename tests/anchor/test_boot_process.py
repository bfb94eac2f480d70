"""The QEMU process a boot starts, with a stand-in QEMU (a shell script): no kernel needed."""

import os
import time
from pathlib import Path

from workbench.anchor import boot as boot_mod
from workbench.anchor.boot import boot, live_qemu_pids


def _stand_in(tmp_path: Path, body: str) -> str:
    """An executable that takes QEMU's arguments, records its PID and runs *body*."""
    exe = tmp_path / "qemu-stand-in"
    exe.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\n{body}\n")
    exe.chmod(0o755)
    return str(exe)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for this purpose
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def _boot(tmp_path, qemu, timeout_s):
    return boot(qemu, tmp_path / "vmlinuz", tmp_path / "initrd", cpus=1, memory_mb=64,
                timeout_s=timeout_s, console=tmp_path / "console.log")


def test_guest_that_ended_but_did_not_power_off_is_ok_and_killed(tmp_path, monkeypatch):
    # the guest's init printed its END line and the kernel its power-down line, yet the machine runs on
    monkeypatch.setattr(boot_mod, "POWER_OFF_GRACE_S", 1.0)
    qemu = _stand_in(tmp_path, "echo '@@ END'; echo 'reboot: Power down'; exec sleep 300")
    t0 = time.monotonic()
    res = _boot(tmp_path, qemu, timeout_s=60)
    assert res.status == "ok" and res.returncode is None
    assert time.monotonic() - t0 < 20  # not the boot's timeout
    assert b"reboot: Power down" in res.console.read_bytes()
    assert not _alive(int((tmp_path / "pid").read_text())) and not live_qemu_pids()


def test_end_marker_split_across_writes_is_seen(tmp_path, monkeypatch):
    monkeypatch.setattr(boot_mod, "POWER_OFF_GRACE_S", 0.5)
    qemu = _stand_in(tmp_path, "printf '@@ E'; sleep 1; printf 'ND\\n'; exec sleep 300")
    res = _boot(tmp_path, qemu, timeout_s=30)
    assert res.status == "ok" and res.seconds < 15


def test_guest_that_never_ends_times_out_and_is_killed(tmp_path):
    qemu = _stand_in(tmp_path, "echo '@@ HANG'; exec sleep 300")
    res = _boot(tmp_path, qemu, timeout_s=2)
    assert res.status == "timeout" and res.returncode is None and 2 <= res.seconds < 15
    assert not _alive(int((tmp_path / "pid").read_text())) and not live_qemu_pids()


def test_guest_that_exits_without_its_end_line_is_exited(tmp_path):
    qemu = _stand_in(tmp_path, "echo 'Kernel panic - not syncing'; exit 1")
    res = _boot(tmp_path, qemu, timeout_s=30)
    assert res.status == "exited" and res.returncode == 1


def test_guest_that_powers_off_after_its_end_line_is_ok_with_its_exit_status(tmp_path):
    qemu = _stand_in(tmp_path, "echo '@@ END'; exit 0")
    res = _boot(tmp_path, qemu, timeout_s=30)
    assert res.status == "ok" and res.returncode == 0
