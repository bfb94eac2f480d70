"""Worker processes that do not outlive the process that started them.

Models no kernel file; it uses one Linux interface, ``prctl(PR_SET_PDEATHSIG)``
(``kernel/sys.c``; the signal is sent by ``forget_original_parent()`` in
``kernel/exit.c`` to every thread of a child whose parent exits). A pool
worker (loky, Dask) calls :func:`die_with_parent` before each task: if the
coordinating process is killed, even with ``SIGKILL``, the worker is killed
too instead of finishing its task and idling for minutes. Elsewhere than
Linux it only checks that the parent is still there. Linux sends the signal
when the *thread* that started the worker ends; the pools are started by the
thread that runs the sweep (the main thread, from the command line and in
notebooks), which outlives them.

A loky pool runs :func:`start_worker` as its initializer, the first thing
a worker does: it arms the signal and, if the coordinating process it was
started for is already gone (killed between the fork and this instant),
exits at once, so no worker outlives a parent killed at any moment.

:func:`watch_interrupts` makes Ctrl-C one line and exit status 130 for the
command line, whatever runs when it comes (a Unicorn callback, a Dask
cluster starting, a pool's workers): SIGINT is blocked in the main thread
and so in every thread and process started after it (a signal mask is
inherited through ``fork`` and kept across ``execve``), and one watcher
thread takes it with ``sigwait``. The watcher prints the line once (on the
stderr the command started with, even while :func:`prepare_pool` has fd 2
on ``/dev/null``), sends
stderr to ``/dev/null`` (a callback that swallows the interrupt can print
nothing more), kills the processes this one started (they share the
terminal's stderr: a Dask worker that lost its scheduler, a resource
tracker finding leaked semaphores would print), interrupts the main thread,
and ends the process with status 130 if the shutdown takes longer than its
grace. Workers never see the SIGINT a
terminal sends to the process group; they end with the parent (above).

An initializer runs only once the worker's interpreter has started and
imported its pool's code, a second or more on a loaded machine. So the
command line also starts a **parent-death watchdog** first
(:func:`start_watchdog`): a small process that holds the read end of a
pipe whose write end only the coordinating process holds, and that every
later child is marked for (``WORKBENCH_COORDINATOR=<pid>`` in its
environment, which ``fork`` and ``execve`` pass on). When the coordinator
ends, however it ends, the pipe reads end-of-file and the watchdog sends
``SIGKILL`` to every process whose environment carries the mark, from the
moment it exists: pool workers before they have run a line, resource
trackers, Dask workers.
"""

from __future__ import annotations

import _thread
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

__all__ = ["COORDINATOR_VARIABLE", "acknowledge_interrupt", "die_with_parent", "interrupt_shown", "kill_group",
           "kill_marked_children", "prepare_pool", "start_watchdog", "start_worker", "watch_interrupts"]

#: the environment variable that marks a process as started (directly or not) by a coordinator
COORDINATOR_VARIABLE = "WORKBENCH_COORDINATOR"

# the watchdog: standard library only, started with -S -E (a few milliseconds); it waits for EOF on
# stdin, then kills every process marked with the coordinator's pid, until a pass finds none
_WATCHDOG = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
mark, me = (sys.argv[1] + "=" + sys.argv[2]).encode(), os.getpid()
while os.read(0, 4096):
    pass
for _ in range(25):
    found = 0
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            try:
                with open("/proc/" + d + "/environ", "rb") as f:
                    marked = mark in f.read().split(b"\0")
            except OSError:
                continue
            if marked:
                found += 1
                try:
                    os.kill(int(d), signal.SIGKILL)
                except OSError:
                    pass
    if not found:
        break
    time.sleep(0.02)
"""

_PR_SET_PDEATHSIG = 1
_ARMED: list[int] = []


def die_with_parent(expected: int | None = None) -> None:
    """Arrange for this process to get ``SIGKILL`` when its parent exits; exit now if it already has.

    *expected* is the pid the parent must have (the coordinating process
    that started this worker): a worker whose parent is already another
    process (it was re-parented to init) exits at once. Cheap after the
    first call in a process (the setting is kept).
    """
    parent = os.getppid() if expected is None else expected
    if _ARMED and _ARMED[0] == parent and os.getppid() == parent:
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: fall back to the check below
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    _ARMED[:] = [parent]


def kill_group(pid: int) -> None:
    """SIGKILL to the process group led by *pid* (a child started in a session of its own); gone is fine."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_worker(coordinator: int) -> None:
    """A pool worker's initializer: die with *coordinator*, from this first instant on."""
    die_with_parent(coordinator)


_SHOWN = threading.Event()
_ACKNOWLEDGED = threading.Event()
_LOCK = threading.RLock()  # reentrant: a signal handler may run in the main thread while it holds it
#: the terminal's stderr as it was when :func:`watch_interrupts` was called: the line goes there even
#: while :func:`prepare_pool` has fd 2 on /dev/null for a tracker's start
_TERMINAL_FD: list[int] = []
_REARM = threading.Event()
_WATCHING = threading.Event()


def interrupt_shown() -> bool:
    """Whether the watcher has printed the interrupt's line (so nobody prints it again)."""
    return _SHOWN.is_set()


def acknowledge_interrupt() -> None:
    """The main thread has caught the interrupt: the watcher stops interrupting it."""
    _ACKNOWLEDGED.set()


def _announce(message: str, status: int, grace: float) -> None:
    """The first interrupt: print *message*, silence stderr, and see the process end within *grace*."""
    with _LOCK:
        if _SHOWN.is_set():
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.write(_TERMINAL_FD[0] if _TERMINAL_FD else 2, (message + "\n").encode())
        _SHOWN.set()
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
        except OSError:
            pass

    def ending():
        # the children go first, and any a pool starts again while this process shuts down: a worker
        # or resource tracker writes to the terminal's stderr (a lost scheduler, leaked semaphores),
        # not to this process's, which is /dev/null now
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            kill_marked_children()
            time.sleep(0.1)
        os._exit(status)

    threading.Thread(target=ending, name="workbench-interrupted", daemon=True).start()


def prepare_pool() -> None:
    """Call before a process pool or a Dask LocalCluster starts: its resource trackers start here,
    their stderr on ``/dev/null``, and SIGINT is blocked again in this thread if
    :func:`watch_interrupts` blocked it.

    Starting a tracker unblocks SIGINT in the thread that starts it
    (``multiprocessing.resource_tracker.ensure_running``, loky's too), and
    every worker that thread starts later would take a terminal's Ctrl-C
    (and print its own traceback); started here, once, they never are
    again. Their
    stderr: after a Ctrl-C or a kill they outlive this process by a moment,
    clean up the pools' semaphores and print a warning for each kind they
    found, on the terminal this process no longer writes to. They keep
    cleaning up; only the warning goes nowhere.
    """
    import multiprocessing.resource_tracker as stdlib_tracker

    try:
        # start-up: joblib's loky, only for the commands that may start a pool
        from joblib.externals.loky.backend import resource_tracker as loky_tracker
    except ImportError:
        loky_tracker = None
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        stdlib_tracker.ensure_running()
        if loky_tracker is not None:
            loky_tracker.ensure_running()
    finally:
        with _LOCK:  # an interrupt announced meanwhile silenced stderr for good: it stays on /dev/null
            if not _SHOWN.is_set():
                os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        if _WATCHING.is_set():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def watch_interrupts(message: str, *, status: int = 130, grace: float = 5.0) -> bool:
    """Make Ctrl-C print *message* once and end the process with *status* (see the module's doc).

    Call once, from the main thread, before any pool or cluster is started
    (each of which calls :func:`prepare_pool` first). False (and nothing
    done) elsewhere than in the main thread or without ``pthread_sigmask``.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        return False
    _WATCHING.set()
    if not _TERMINAL_FD:
        _TERMINAL_FD.append(os.dup(2))  # not inherited by children (os.dup's default)

    def handler(signum, frame):
        # the watcher's interrupt_main(), or a SIGINT a C library's thread took (OpenBLAS's threads
        # start before the block): one KeyboardInterrupt in the main thread, and another only
        # if a ctypes callback swallowed it (below); never one in the middle of the shutdown
        first = not _SHOWN.is_set()
        _announce(message, status, grace)
        if first or _REARM.is_set():
            _REARM.clear()
            raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def unraisable(info):  # a KeyboardInterrupt raised in a ctypes callback is printed and dropped
        if issubclass(info.exc_type, KeyboardInterrupt) and not _ACKNOWLEDGED.is_set():
            _REARM.set()
            _thread.interrupt_main()  # raise it again, at the next line outside the callback
            return
        previous_hook(info)

    sys.unraisablehook = unraisable
    signal.signal(signal.SIGINT, handler)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def watcher():
        signal.sigwait({signal.SIGINT})
        _announce(message, status, grace)
        _REARM.set()
        _thread.interrupt_main()

    threading.Thread(target=watcher, name="workbench-interrupt", daemon=True).start()
    return True


_WATCHED: list = []


def kill_marked_children() -> int:
    """``SIGKILL`` every process marked as started by this one (``WORKBENCH_COORDINATOR=<this pid>``);
    how many there were. Nothing without a mark (no :func:`start_watchdog`) or without ``/proc``."""
    if os.environ.get(COORDINATOR_VARIABLE) != str(os.getpid()) or not os.path.isdir("/proc/self"):
        return 0
    mark, me, n = f"{COORDINATOR_VARIABLE}={os.getpid()}".encode(), os.getpid(), 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            os.kill(int(d), signal.SIGKILL)
            n += 1
        except OSError:
            continue
    return n


def start_watchdog() -> bool:
    """Start the parent-death watchdog for this process (see the module's doc) and mark its later
    children; once per process, Linux only (``/proc``); False if it was not started."""
    if _WATCHED or not os.path.isdir("/proc/self"):
        return bool(_WATCHED)
    read, write = os.pipe()  # both ends close-on-exec: no other child holds the write end
    try:
        proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", _WATCHDOG, COORDINATOR_VARIABLE, str(os.getpid())],
                                stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    except OSError:
        os.close(write)
        return False
    finally:
        os.close(read)
    _WATCHED[:] = [proc, write]  # the write end stays open for as long as this process lives
    os.environ[COORDINATOR_VARIABLE] = str(os.getpid())
    return True
