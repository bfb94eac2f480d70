"""The guest's console log read back: one row per measured update.

Parses the ``@@`` lines :mod:`workbench.anchor.guest` prints. For each
update: the ``CAL``/``TLB``/``RES`` rows of ``/proc/interrupts`` before and
after (per CPU), ``/proc/uptime`` before and after (10 ms resolution) and
the trace markers' timestamps (microseconds), the enabled sites, and the
IPI senders recorded between the markers, each put in a class by the
callback it sends (``func``, resolved with the guest's ``/proc/kallsyms``):

========================  ================================================
class                     callback (kernel file, v6.1)
========================  ================================================
``text_poke_sync``        ``do_sync_core`` (``arch/x86/kernel/alternative.c``)
``ftrace_sync_ipi``       ``ftrace_sync_ipi`` (``kernel/trace/ftrace.c``)
``page_attr_flush``       ``__cpa_flush_tlb``, ``do_flush_tlb_all`` (``arch/x86/mm/pat/set_memory.c``, ``mm/tlb.c``)
``kernel_range_flush``    ``do_kernel_range_flush`` (``arch/x86/mm/tlb.c``: vunmap/vfree)
``mm_tlb_flush``          ``flush_tlb_func`` (``arch/x86/mm/tlb.c``: a process's mm)
``other_call``            any other ``smp_call_function_many_cond`` callback
``nohz_balance_kick``     ``nohz_csd_func`` through ``generic_exec_single`` (``kernel/sched/fair.c``: ``kick_ilb()``)
``single_call``           any other ``generic_exec_single`` callback (``smp_call_function_single*``)
``single_queue``          ``__smp_call_single_queue`` called out of line (``kernel/smp.c``: queued remote wakeups)
``unprobed_wakeup``       a send with no ask before it (``ttwu_queue_wakelist()``, queueing inlined)
========================  ================================================

Per class, ``senders`` counts the remote CPUs a sender asked to interrupt
(the mask's bits but the sender's own) and ``sent_by`` the IPIs really sent
(:func:`_classify` pairs each send with its ask), between the markers written just before the
first reading of ``/proc/interrupts`` and just after the second; the
``CAL`` row counts what arrived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["CLASSES", "ConsoleRun", "UpdateRecord", "parse_console"]

CLASSES = ("text_poke_sync", "ftrace_sync_ipi", "page_attr_flush", "kernel_range_flush", "mm_tlb_flush",
           "other_call", "nohz_balance_kick", "single_call", "single_queue", "unprobed_wakeup")

_CLASS_OF = {"do_sync_core": "text_poke_sync", "ftrace_sync_ipi": "ftrace_sync_ipi",
             "__cpa_flush_tlb": "page_attr_flush", "do_flush_tlb_all": "page_attr_flush",
             "do_kernel_range_flush": "kernel_range_flush", "flush_tlb_func": "mm_tlb_flush"}

_SINGLE_OF = {"nohz_csd_func": "nohz_balance_kick"}

_EVENT = re.compile(r"\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)")


@dataclass
class UpdateRecord:
    """One update as the guest measured it."""

    uid: int
    kind: str
    n: int
    filter_lines: int = -1
    enabled: int = -1
    uptime_s: float = float("nan")
    marker_us: float = float("nan")
    cal: tuple = ()          # per CPU, received during the update
    tlb: tuple = ()
    res: tuple = ()
    senders: dict = field(default_factory=dict)   # class -> remote CPUs asked
    sent_by: dict = field(default_factory=dict)   # class -> IPIs sent
    callbacks: dict = field(default_factory=dict)  # callback symbol -> remote CPUs asked
    received: int = -1       # call_function(_single)_entry events around the readings (all CPUs)
    sent: int = -1           # native_send_call_func(_single)_ipi calls around the readings


@dataclass
class ConsoleRun:
    """Everything one console log says: the kernel, the CPUs, the updates, whether the run ended."""

    release: str
    machine: str
    cpus: int
    available: int
    updates: list
    ended: bool
    missing_probes: tuple


def _row(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\s(\d+)", " " + text.split(":", 1)[1].split("  ", 1)[0] + " "))


def _counts(text: str) -> tuple[int, ...]:
    body = text.split(":", 1)[1]
    return tuple(int(x) for x in re.findall(r"\d+", re.split(r"[A-Za-z]", body, maxsplit=1)[0]))


def _snap(line: str):
    up, cal, tlb, res = line.split("|")
    return float(up.split()[0]), _counts(cal), _counts(tlb), _counts(res)


def parse_console(text: str) -> ConsoleRun:
    """Parse a console log (bytes decoded leniently) into a :class:`ConsoleRun`."""
    release = machine = ""
    cpus = available = 0
    updates, by_uid, missing, syms, events = [], {}, [], {}, {}
    ended = False
    for raw in text.splitlines():
        i = raw.find("@@ ")
        if i < 0:
            continue
        line = raw[i + 3:].rstrip("\r")
        tag, _, rest = line.partition(" ")
        if tag == "HELLO":
            parts = rest.split()
            release, machine = parts[0], parts[1]
            kv = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
            cpus, available = int(kv.get("cpus", 0)), int(kv.get("avail", 0))
        elif tag == "NOPROBE":
            missing.append(rest.strip())
        elif tag == "U":
            uid, kind, n = rest.split()
            rec = UpdateRecord(int(uid), kind, int(n))
            updates.append(rec)
            by_uid[rec.uid] = rec
        elif tag == "FILTER":
            n, lines = rest.split()
            pending_filter = int(lines)
            by_uid["filter"] = pending_filter
        elif tag == "A" and updates:
            updates[-1]._a = _snap(rest)
        elif tag == "B" and updates:
            rec = updates[-1]
            b = _snap(rest)
            a = getattr(rec, "_a", None)
            if a is not None and len(a[1]) == len(b[1]):
                rec.uptime_s = round(b[0] - a[0], 2)
                rec.cal, rec.tlb, rec.res = (tuple(y - x for x, y in zip(a[k], b[k], strict=True)) for k in (1, 2, 3))
            rec.filter_lines = by_uid.get("filter", -1)
        elif tag == "EN":
            uid, count = rest.split()
            by_uid[int(uid)].enabled = int(count)
        elif tag == "T":
            uid, _, ev = rest.partition(" ")
            events.setdefault(int(uid), []).append(ev)
        elif tag == "SYM":
            addr, name = rest.split()[:2]
            syms[int(addr, 16)] = name
        elif tag == "END":
            ended = True
    for rec in updates:
        _classify(rec, events.get(rec.uid, []), syms, cpus)
        if hasattr(rec, "_a"):
            del rec._a
    return ConsoleRun(release, machine, cpus, available, updates, ended, tuple(missing))


def _classify(rec: UpdateRecord, lines: list, syms: dict, cpus: int) -> None:
    """Senders and receivers between the markers around the two readings, in classes; the update's time in us.

    An ask (``scf``, ``ges``, ``csq``) is followed on its CPU by a send
    (``sfs``/``sfm``) only if the target's call queue was empty and the
    target not polling (``kernel/smp.c``, ``send_call_function_single_ipi()``
    in ``kernel/sched/core.c``); otherwise the request joins an IPI already
    on its way. So each send is given to the ask that precedes it on the
    same CPU; a send with no ask before it comes from a path whose queueing
    is inlined (``ttwu_queue_wakelist()``: a remote wakeup).
    """
    inside, begin = False, None
    asked = dict.fromkeys(CLASSES, 0)
    sent_by = dict.fromkeys(CLASSES, 0)
    callbacks: dict = {}
    pending: dict = {}  # cpu -> (class, remote CPUs asked) of its last ask not yet followed by a send
    received = sent = 0
    online = (1 << cpus) - 1
    for ev in lines:
        if "anchor-pre" in ev:
            inside = True
            continue
        if "anchor-post" in ev:
            inside = False
            continue
        if "anchor-begin" in ev:
            begin = float(ev.split(": tracing_mark_write")[0].split()[-1])
            continue
        if "anchor-end" in ev:
            if begin is not None:
                end = float(ev.split(": tracing_mark_write")[0].split()[-1])
                rec.marker_us = round((end - begin) * 1e6, 1)
            continue
        m = _EVENT.search(ev)
        if not inside or m is None:
            continue
        cpu, name, args = int(m.group(1)), m.group(3), m.group(4)
        kv = dict(re.findall(r"(\w+)=(\S+)", args))
        cls, remote, sym = None, 0, None
        if name == "scf":
            remote = bin(int(kv["mask"], 16) & online & ~(1 << cpu)).count("1")
            sym = syms.get(int(kv["func"], 16), kv["func"])
            cls = _CLASS_OF.get(sym, "other_call")
        elif name == "ges":
            remote = int(int(kv["cpu"]) != cpu)
            sym = syms.get(int(kv["func"], 16), kv["func"])
            cls = _SINGLE_OF.get(sym, "single_call")
        elif name == "csq":
            remote, sym, cls = int(int(kv["cpu"]) != cpu), "(single queue)", "single_queue"
        elif name in ("call_function_entry", "call_function_single_entry"):
            received += 1
        elif name in ("sfs", "sfm"):
            was = pending.pop(cpu, None)
            # a mask send goes to the CPUs in its mask (those whose queues were empty); a single send
            # is one IPI
            n = 1 if name == "sfs" else bin(int(kv["mask"], 16) & online & ~(1 << cpu)).count("1")
            sent += n
            sent_by[was[0] if was is not None else "unprobed_wakeup"] += n
        if cls is not None and remote:
            asked[cls] += remote
            callbacks[sym] = callbacks.get(sym, 0) + remote
            pending[cpu] = (cls, remote)
    rec.senders, rec.sent_by, rec.callbacks, rec.received, rec.sent = asked, sent_by, callbacks, received, sent
