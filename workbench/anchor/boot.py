"""One guest boot under QEMU: console to a log file, a timeout, the process always reaped.

QEMU runs with TCG (``-accel tcg``: nested KVM cannot be relied on), the
kernel and initramfs given directly, the serial console on stdout, and
``-no-reboot`` so that the guest's ``poweroff -f`` or a panic
(``panic=-1``) ends the process. The console is written to a log file as it
comes (kept beside the result, whatever happens). The process is started in
a session of its own and killed by its PID (SIGKILL to its process group)
when the boot times out, when the caller is interrupted (Ctrl-C) and, as a
last resort, at interpreter exit; ``prctl(PR_SET_PDEATHSIG)`` ends it if
the workbench itself is killed.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.base.process import die_with_parent

__all__ = ["BootResult", "boot", "live_qemu_pids"]

#: PIDs of QEMU processes started and not yet reaped (killed at exit)
_LIVE: set[int] = set()

#: the kernel command line: serial console, no KASLR (kallsyms addresses stable), reboot on panic = exit
CMDLINE = "console=ttyS0 panic=-1 nokaslr quiet"


@dataclass(frozen=True)
class BootResult:
    """How one boot ended: ``ok`` (the init printed its END line), ``timeout`` or ``exited`` (panic, crash)."""

    status: str
    seconds: float
    returncode: int | None
    console: Path


def live_qemu_pids() -> frozenset[int]:
    """PIDs of QEMU processes this process started that are still running."""
    return frozenset(_LIVE)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@atexit.register
def _kill_all() -> None:
    for pid in list(_LIVE):
        _kill(pid)


def boot(qemu: str, vmlinuz: Path, initrd: Path, *, cpus: int, memory_mb: int, timeout_s: float,
         console: Path, end_marker: str = "@@ END") -> BootResult:
    """Boot *vmlinuz* with *initrd* on *cpus* vCPUs; the console goes to *console*.

    Returns when QEMU exits or *timeout_s* seconds have passed (then QEMU is
    killed). ``ok`` needs *end_marker* in the console.
    """
    args = [qemu, "-accel", "tcg", "-smp", str(cpus), "-m", str(memory_mb), "-nographic",
            "-no-reboot", "-nodefaults", "-serial", "stdio", "-monitor", "none",
            "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", CMDLINE]
    console.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(console, "wb") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_parent)
        _LIVE.add(proc.pid)
        try:
            rc = proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            rc, timed_out = None, True
        finally:  # timeout, Ctrl-C or any error: the process does not outlive this call
            if proc.poll() is None:
                _kill(proc.pid)
                proc.wait()
            _LIVE.discard(proc.pid)
    seconds = time.monotonic() - t0
    text = console.read_bytes()
    if timed_out:
        status = "timeout"
    elif end_marker.encode() in text:
        status = "ok"
    else:
        status = "exited"
    return BootResult(status, seconds, rc, console)
