"""One guest boot under QEMU: console to a log file, a timeout, the process always reaped.

QEMU runs with TCG (``-accel tcg``: nested KVM cannot be relied on), the
kernel and initramfs given directly, the serial console on stdout, and
``-no-reboot`` so that the guest's ``poweroff -f`` or a panic
(``panic=-1``) ends the process. A guest that printed its END line but is
still running :data:`POWER_OFF_GRACE_S` later (the kernel printed
``reboot: Power down`` and halted without the machine powering off) has
finished its work: it is killed and its boot is ``ok``. The console is written to a log file as it
comes (kept beside the result, whatever happens). The process is started in
a session of its own and killed by its PID (SIGKILL to its process group)
when the boot times out, when the caller is interrupted (Ctrl-C) and, as a
last resort, at interpreter exit; ``prctl(PR_SET_PDEATHSIG)`` ends it if
the workbench itself is killed.
"""

from __future__ import annotations

import atexit
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.base.process import die_with_parent, kill_group

__all__ = ["POWER_OFF_GRACE_S", "BootResult", "boot", "live_qemu_pids"]

#: PIDs of QEMU processes started and not yet reaped (killed at exit)
_LIVE: set[int] = set()

#: seconds a guest may run on after its END line before it is killed (its poweroff takes well under one)
POWER_OFF_GRACE_S = 10.0

#: seconds between two looks at the process and its console
_POLL_S = 0.25

#: the kernel command line: serial console, no KASLR (kallsyms addresses stable), reboot on panic = exit
CMDLINE = "console=ttyS0 panic=-1 nokaslr quiet"


@dataclass(frozen=True)
class BootResult:
    """How one boot ended: ``ok`` (the init printed its END line), ``timeout`` or ``exited`` (panic, crash).

    *returncode* is None when QEMU was killed: on a timeout, or when the
    guest ended its work but did not power the machine off.
    """

    status: str
    seconds: float
    returncode: int | None
    console: Path


def live_qemu_pids() -> frozenset[int]:
    """PIDs of QEMU processes this process started that are still running."""
    return frozenset(_LIVE)


@atexit.register
def _kill_all() -> None:
    for pid in list(_LIVE):
        kill_group(pid)


def boot(qemu: str, vmlinuz: Path, initrd: Path, *, cpus: int, memory_mb: int, timeout_s: float,
         console: Path, end_marker: str = "@@ END") -> BootResult:
    """Boot *vmlinuz* with *initrd* on *cpus* vCPUs; the console goes to *console*.

    Returns when QEMU exits, :data:`POWER_OFF_GRACE_S` after *end_marker*
    appeared in the console, or after *timeout_s* seconds (then QEMU is
    killed). ``ok`` needs *end_marker* in the console.
    """
    args = [qemu, "-accel", "tcg", "-smp", str(cpus), "-m", str(memory_mb), "-nographic",
            "-no-reboot", "-nodefaults", "-serial", "stdio", "-monitor", "none",
            "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", CMDLINE]
    console.parent.mkdir(parents=True, exist_ok=True)
    marker = end_marker.encode()
    t0 = time.monotonic()
    rc, timed_out, ended_at = None, False, None
    with open(console, "wb") as log, open(console, "rb") as watch:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=die_with_parent)
        _LIVE.add(proc.pid)
        tail = b""
        try:
            while True:
                try:
                    rc = proc.wait(timeout=_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if ended_at is None:
                    # the console read as it grows; the tail keeps a marker split across two reads
                    tail = tail[-len(marker):] + watch.read()
                    if marker in tail:
                        ended_at = now
                if ended_at is not None and now - ended_at >= POWER_OFF_GRACE_S:
                    break  # the guest's work is done; the machine did not power off
                if ended_at is None and now - t0 >= timeout_s:
                    timed_out = True
                    break
        finally:  # timeout, no power-off, Ctrl-C or any error: the process does not outlive this call
            if proc.poll() is None:
                kill_group(proc.pid)
                proc.wait()
            _LIVE.discard(proc.pid)
    seconds = time.monotonic() - t0
    text = console.read_bytes()
    if timed_out:
        status = "timeout"
    elif marker in text:
        status = "ok"
    else:
        status = "exited"
    return BootResult(status, seconds, rc, console)
