"""The patching CPU, k calling CPUs and their IPIs as a transition system.

Models ``text_poke_bp_batch()``, ``text_poke_sync()`` and
``poke_int3_handler()`` of ``arch/x86/kernel/alternative.c`` (v5.6 with
285a54efe386, and the variants around it), run against calling CPUs that
execute the workbench's i386 or x86_64 code in Unicorn (the arch's own
image, int3 entry and, on x86_64, per-ops trampolines: the checker only
pauses the CPUs; what runs between pauses is the arch's machine code).

Threads: the patcher (``P``), calling CPUs ``C0..C{k-1}``, and one interrupt
thread per calling CPU (``I0..``) that takes the patcher's IPIs. A thread
stands *before* its next visible operation; a transition performs that
operation and then runs the thread's CPU-local code up to the next one.
Visible operations, what they touch and when two are dependent:
:mod:`workbench.emulate.mc.config`. Everything between visible operations
touches only the CPU's own stack, thread_info, ring buffer and call log, or
data the patch never writes, so it commutes with every other thread.

A spinning handler (``spin``) that would repeat an iteration reading the
same ``nr``, ``vec`` and site bytes is blocked until one of them changes
(an identical iteration has no effect but a trap count), so exploration is
finite; its read set covers what unblocks it. A CPU whose handler waits with
interrupts off (the ``irqoff_wait`` negative control) is blocked until
``nr_entries`` is 0. When no thread is enabled and some are not finished,
the execution ends in a **deadlock** outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from capstone import CS_ARCH_X86, CS_MODE_32, CS_MODE_64, Cs
from capstone.x86 import X86_OP_MEM
from unicorn import UC_HOOK_CODE
from unicorn import x86_const as X

from workbench.base.errors import ConfigError
from workbench.emulate.mc.config import Event, McConfig, thread_name
from workbench.emulate.outcomes import observe
from workbench.emulate.scenario import Scenario, load_scenario
from workbench.kernel.ftrace import TRAMPOLINE_CALLS, DataWrite, Sync, TextBatch, TextChange
from workbench.kernel.image import build_image
from workbench.kernel.int3 import get_strategy
from workbench.kernel.layout import EQU
from workbench.kernel.machine import UNBOUNDED, Crash, KernelFault, Machine
from workbench.kernel.ptrace import PtRegs

__all__ = ["DEADLOCKED", "McSystem"]

#: instructions a transition may run before the CPU counts as hung
_CAP = 20000
_IF = 1 << 9

#: what a call that a deadlock kept from finishing reports instead of a crash reason
DEADLOCKED = "deadlock"


@dataclass
class _Cpu:
    """The checker's view of one calling CPU at a pause."""

    pause: tuple = ("start",)
    if_set: bool = True
    icache: frozenset = frozenset()
    nr_seen: int = 0
    vec_seen: int = -1
    view: dict = field(default_factory=dict)  #: site -> the bytes of its translation
    spin: tuple | None = None  #: (site, nr, vec generation, bytes) of the last spin iteration
    wait_change: object = None  #: the change an irqoff_wait handler holds
    traps: list = field(default_factory=list)  #: (call seq, site, patcher pc)
    crash: str = ""


class McSystem:
    """The transition system of one :class:`McConfig`, replayable from its initial state.

    ``enabled()`` gives each enabled thread's next :class:`Event`; ``step(tid)``
    performs it; ``reset()`` returns to the initial state (every calling CPU
    at its first visible operation). ``outcome()`` describes a finished
    execution. Deterministic: the same schedule gives the same bits.
    """

    def __init__(self, config: McConfig):
        cfg = config.checked()
        self.config = cfg
        self.scenario: Scenario = load_scenario(cfg.scenario)
        self.scenario.check_arch(cfg.arch)
        self.strategy = get_strategy(cfg.strategy)
        self.image = im = build_image(cfg.n_ordinary, cfg.arch, tree=cfg.tree())
        self._x64 = im.arch == "x86_64"
        self._eq = eq = im.equ
        self.before, self.after = self.scenario.states(im)
        fns = []
        for c in cfg.calls:
            fns.append(tuple(im.function(f).name for f in c))
        self.calls = tuple(fns)
        self.k = len(fns)
        self.ops = self._program(self.scenario.plan(im, cfg.per_site))
        self.sites = sorted({op[1] for op in self.ops if op[0] == "text"})
        self.watch = {op[1] for op in self.ops if op[0] == "data"}
        self.machine = m = Machine(im, self.k, cfg.entry, int3_handler=lambda *_: True)
        self._do_int3 = im.sym("do_int3")
        self._points = {s: "fetch" for s in self.sites}
        self._points[self._do_int3] = "h1"
        self._points[self._do_int3 + 1] = "h2"
        self._points[im.sym("workload_logged")] = "logged"
        self._points[im.sym("workload_enter")] = "enter"
        self._memops: dict[int, tuple] = {}
        self._cs = Cs(CS_ARCH_X86, CS_MODE_64 if self._x64 else CS_MODE_32)
        self._cs.detail = True
        self._hook_state = [{"skip": False, "count": 0, "stop": None} for _ in range(self.k)]
        for i, cpu in enumerate(m.cpus):
            cpu.uc.hook_add(UC_HOOK_CODE, self._on_code, user_data=i)
        # the initial state: before-text, every CPU at its first visible operation
        m.mem[:] = m._pristine
        self.before.apply(m)
        self.cpu = [_Cpu() for _ in range(self.k)]
        for i, cpu in enumerate(m.cpus):
            # each call in its calling context (docs/KERNEL.md): do_IRQ with IF clear
            cpu.reset([(im.functions[f].site, eq["GAP_IRQOFF"] if self.scenario.irq_off(f) else 0)
                       for f in self.calls[i]])
            cpu.sync_core()
            self._run(i, skip=False)
        self._snap = (m.mem.copy(), [c.uc.context_save() for c in m.cpus],
                      [c.eip for c in m.cpus], [replace(s, view=dict(s.view), traps=list(s.traps))
                                                for s in self.cpu])
        self.reset()

    # -- the patcher's program ---------------------------------------------------------------
    def _program(self, plan) -> list[tuple]:
        cfg, im = self.config, self.image
        called = {im.functions[f].site for c in self.calls for f in c}
        tramp = {im.sym(c) for c in TRAMPOLINE_CALLS}
        poke = cfg.poke_method
        sync = [("send", "sync", 0), ("wait", 0, 0)]
        ops: list[tuple] = []
        for item in plan:
            name = getattr(item, "name", "")
            if cfg.items is not None and name not in cfg.items:
                continue
            if isinstance(item, DataWrite):
                ops.append(("data", item.addr, item.value, name))
            elif isinstance(item, Sync):
                ops += [("send", "sync", name), ("wait", 0, name)]
            elif isinstance(item, TextBatch):
                ch = [c for c in item.changes if cfg.all_sites or c.addr in called or c.addr in tramp]
                if not ch:
                    continue
                if poke == "stop_machine":
                    ops += [("send", "stop", name), ("wait", 0, name)]
                    ops += [("text", c.addr, 0, c.new, name) for c in ch]
                    ops.append(("release", 0, name))
                    continue
                synced = poke != "no_sync"
                ops.append(("publish", tuple(ch), name))
                ops += [("text", c.addr, 0, b"\xcc", f"{name}:int3") for c in ch]
                ops += [(o, a, f"{name}:sync1") for o, a, _ in sync] if synced else []
                ops += [("text", c.addr, 1, c.new[1:], f"{name}:tail") for c in ch]
                ops += [(o, a, f"{name}:sync2") for o, a, _ in sync] if synced else []
                ops += [("text", c.addr, 0, c.new[:1], f"{name}:first") for c in ch]
                if poke in ("breakpoint", "racy_clear"):
                    ops += [(o, a, f"{name}:sync3") for o, a, _ in sync]
                ops.append(("clear_nr", 0, name))
                if poke in ("breakpoint", "fixed_clear_nosync3"):
                    ops += [(o, a, f"{name}:sync4") for o, a, _ in sync]
                ops.append(("clear_vec", 0, name))
            else:
                raise TypeError(f"unknown plan item {item!r}")
        if not ops:
            raise ConfigError("items: no plan item left to patch; valid names are the plan's steps")
        return ops

    def op_label(self, pc: int) -> str:
        """A readable name for the patcher's operation *pc*."""
        if pc >= len(self.ops):
            return "done"
        op = self.ops[pc]
        if op[0] == "text":
            return f"{op[4]} {self.image.name_at(op[1])}+{op[2]}"
        if op[0] == "data":
            return f"store {op[3]}"
        if op[0] == "publish":
            return f"{op[2]}: bp_patching = {{vec, nr_entries={len(op[1])}}}"
        return f"{op[2]}: {op[0]}" + (f" {op[1]}" if op[0] == "send" else "")

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the initial state."""
        m = self.machine
        mem, ctxs, eips, cpus = self._snap
        m.mem[:] = mem
        for c, ctx, eip in zip(m.cpus, ctxs, eips, strict=True):
            c.uc.context_restore(ctx)
            c.eip, c.crash, c.drained = eip, None, 0
            c.sync_core()
        self.cpu = [replace(s, view=dict(s.view), traps=list(s.traps)) for s in cpus]
        self.pc = 0
        self.nr, self.vec, self.vec_gen = 0, None, 0
        self.ipi = [None] * self.k
        self.parked = [False] * self.k
        self.trace: list[Event] = []

    def _ranges(self) -> list[tuple[int, int]]:
        """Offsets of the memory an execution can change: text, data up to the used
        stacks, and the used CPUs' ring buffers and call logs."""
        im, k, base = self.image, self.k, self.image.base
        stacks, rbs, logs = im.sym("cpu_stacks"), im.sym("ring_buffers"), im.sym("call_logs")
        return [(im.text[0] - base, stacks + k * self._eq["THREAD_SIZE"] - base),
                (rbs - base, rbs + k * EQU["RB_SIZE"] - base),
                (logs - base, logs + k * (EQU["LOG_N"] << EQU["CR_SHIFT"]) - base)]

    def save(self) -> tuple:
        """A checkpoint of the whole state (restored by :meth:`restore`)."""
        m = self.machine
        if not hasattr(self, "_rng"):
            self._rng = self._ranges()
        return ([m.mem[lo:hi].copy() for lo, hi in self._rng], [c.uc.context_save() for c in m.cpus],
                [(c.eip, c.crash, c.drained) for c in m.cpus],
                [replace(s, view=dict(s.view), traps=list(s.traps)) for s in self.cpu],
                (self.pc, self.nr, self.vec, self.vec_gen, list(self.ipi), list(self.parked)), len(self.trace))

    def restore(self, snap: tuple) -> None:
        """Back to a checkpoint of :meth:`save` taken in this execution or another."""
        m = self.machine
        mems, ctxs, cpus, pys, g, n = snap
        for (lo, hi), a in zip(self._rng, mems, strict=True):
            m.mem[lo:hi] = a
        for c, ctx, (eip, crash, drained) in zip(m.cpus, ctxs, cpus, strict=True):
            c.uc.context_restore(ctx)
            c.eip, c.crash, c.drained = eip, crash, drained
        self.cpu = [replace(s, view=dict(s.view), traps=list(s.traps)) for s in pys]
        self.pc, self.nr, self.vec, self.vec_gen = g[:4]
        self.ipi, self.parked = list(g[4]), list(g[5])
        del self.trace[n:]

    # -- running a CPU to its next visible operation ---------------------------------------------
    def _on_code(self, uc, addr, size, i):
        st = self._hook_state[i]
        if st["skip"]:
            st["skip"] = False
            return
        st["count"] += 1
        if st["count"] > _CAP:
            st["stop"] = ("hang",)
            uc.emu_stop()
            return
        kind = self._points.get(addr)
        if kind is not None:
            if kind == "logged":
                cpu = self.machine.cpus[i]
                if cpu.completed_calls() >= len(self.calls[i]):
                    st["stop"] = ("done",)
                    uc.emu_stop()
                return
            if kind == "enter" and not self._irqoff_call(i):
                return
            st["stop"] = (kind, addr)
            uc.emu_stop()
            return
        mem = self._memops.get(addr)
        if mem is None:
            mem = self._memops[addr] = self._decode(addr)
        for base, index, scale, disp in mem:
            ea = disp + (uc.reg_read(base) if base else 0) + (uc.reg_read(index) * scale if index else 0)
            if (ea & 0xFFFFFFFC) in self.watch:
                st["stop"] = ("data", ea & 0xFFFFFFFC)
                uc.emu_stop()
                return

    def _decode(self, addr: int) -> tuple:
        """Memory operands of the (never patched) instruction at *addr*, minus the stack's:
        ``(base, index, scale, disp)`` with Unicorn register ids (0: none). A RIP-relative
        operand (x86_64) has a fixed address: ``(0, 0, 0, address)``."""
        insn = next(self._cs.disasm(self.machine.read(addr, 16), addr, 1), None)
        if insn is None:
            return ()
        out = []
        for op in insn.operands:
            if op.type != X86_OP_MEM:
                continue
            base, index = op.mem.base, op.mem.index
            name = insn.reg_name(base) if base else ""
            if name in ("esp", "rsp"):
                continue  # this CPU's own stack
            if name == "rip":
                out.append((0, 0, 0, insn.address + insn.size + op.mem.disp))
                continue
            out.append((_UC_REG.get(name, 0), _UC_REG.get(insn.reg_name(index), 0) if index else 0,
                        op.mem.scale, op.mem.disp))
        return tuple(out)

    def _run(self, i: int, skip: bool = True) -> None:
        """Run CPU *i* to its next visible operation and record the pause."""
        cpu, st, s = self.machine.cpus[i], self._hook_state[i], self.cpu[i]
        st.update(skip=skip, count=0, stop=None)
        ok = cpu.run(UNBOUNDED)
        stop = st["stop"]
        if not ok:
            s.pause, s.crash = ("done",), cpu.crash.reason
        elif stop is None or stop[0] == "hang":
            cpu.crash = Crash(cpu.eip, cpu.eip, f"hang: no visible operation within {_CAP} instructions")
            s.pause, s.crash = ("done",), cpu.crash.reason
        else:
            s.pause = stop
        s.if_set = s.pause[0] == "done" or bool(cpu.reg("eflags") & _IF)

    def _irqoff_call(self, i: int) -> bool:
        """Whether the call CPU *i* is beginning runs with IF clear (``thread_info.irqoff``)."""
        m = self.machine
        return bool(m.u32[(m.cpus[i].ti + self._eq["TI_IRQOFF"] - self.image.base) >> 2])

    def regs(self, i: int) -> PtRegs:
        """The ``struct pt_regs *`` that CPU *i*'s int3 entry passed to ``do_int3`` (EAX on i386,
        RDI on x86_64), while it stands in the handler."""
        return PtRegs(self.machine, self.machine.cpus[i].reg("rdi" if self._x64 else "eax"))

    def _crash(self, i: int, reason: str) -> None:
        cpu = self.machine.cpus[i]
        cpu.crash = Crash(cpu.eip, cpu.eip, reason)
        self.cpu[i].pause, self.cpu[i].crash, self.cpu[i].if_set = ("done",), reason, True

    # -- the next event of each thread ---------------------------------------------------------------
    def _site_bytes(self, site: int) -> bytes:
        return self.machine.read(site, 5)

    def _spin_blocked(self, i: int, site: int) -> bool:
        s = self.cpu[i]
        if s.spin is None or s.spin[0] != site:
            return False
        cached = site in s.icache and not self.config.coherent_fetch
        now = s.view.get(site) if cached else self._site_bytes(site)
        return (self.nr, self.vec_gen, now) == s.spin[1:]

    def next_event(self, tid: int, guarded: bool = True) -> Event | None:
        """The event thread *tid* performs next, or None if it is finished or blocked.

        With ``guarded=False``, also the event of a blocked thread (what it
        would do were it not blocked: a ``wait`` with acks missing, an ack
        with IF clear, a spin or wait that cannot make progress, a parked
        CPU's next operation); None only for a finished thread or an
        interrupt thread with no IPI pending."""
        k = self.k
        if tid == 0:
            if self.pc >= len(self.ops):
                return None
            op = self.ops[self.pc]
            kind = op[0]
            if kind == "text":
                return Event(0, "text", self.pc, frozenset(), frozenset({("text", op[1])}))
            if kind == "data":
                return Event(0, "data", self.pc, frozenset(), frozenset({("data", op[1])}))
            if kind == "publish":
                return Event(0, kind, self.pc, frozenset(), frozenset({"nr", "vec"}))
            if kind == "clear_nr":
                return Event(0, kind, self.pc, frozenset(), frozenset({"nr"}))
            if kind == "clear_vec":
                return Event(0, kind, self.pc, frozenset(), frozenset({"vec"}))
            if kind == "send":
                return Event(0, kind, self.pc, frozenset(), frozenset(("ipi", c) for c in range(k)))
            if kind == "wait":
                if any(self.ipi) and guarded:
                    return None
                return Event(0, kind, self.pc, frozenset(("ipi", c) for c in range(k)), frozenset())
            if kind == "release":
                locs = frozenset(("park", c) for c in range(k)) | frozenset(("ic", c) for c in range(k))
                return Event(0, kind, self.pc, frozenset(), locs)
            raise AssertionError(kind)
        if tid <= k:
            i = tid - 1
            s = self.cpu[i]
            if self.parked[i] and guarded:
                return None
            park = frozenset({("park", i)}) if self.config.poke_method == "stop_machine" else frozenset()
            p = s.pause
            if p[0] == "done":
                return None
            if p[0] == "fetch":
                site = p[1]
                if guarded and self._spin_blocked(i, site):
                    return None
                reads = {("ic", i)} | park
                if site not in s.icache or self.config.coherent_fetch:
                    reads.add(("text", site))
                if s.spin is not None:
                    reads |= {"nr", "vec", ("text", site)}
                return Event(tid, "fetch", site, frozenset(reads), frozenset({("ic", i), ("if", i)}))
            if p[0] == "data":
                return Event(tid, "data", p[1], frozenset({("data", p[1])}) | park, frozenset())
            if p[0] == "enter":
                return Event(tid, "enter", 0, frozenset({("if", i)}) | park, frozenset({("if", i)}))
            if p[0] == "h1":
                return Event(tid, "h1", 0, frozenset({"nr"}) | park, frozenset())
            if p[0] == "h2":
                return Event(tid, "h2", 0, frozenset({"vec"}) | park, frozenset({("if", i), ("ic", i)}))
            if p[0] == "irqoff_wait":
                if self.nr != 0 and guarded:
                    return None
                return Event(tid, "irqoff_wait", p[1], frozenset({"nr"}) | park,
                             frozenset({("if", i), ("ic", i)}))
            raise AssertionError(p)
        i = tid - 1 - k
        if self.ipi[i] is None or (guarded and not self.cpu[i].if_set):
            return None
        writes = {("ipi", i), ("ic", i)} | ({("park", i)} if self.ipi[i] == "stop" else set())
        return Event(tid, "ack", 0, frozenset({("ipi", i), ("if", i)}), frozenset(writes))

    def enabled(self) -> dict[int, Event]:
        """Every enabled thread's next event, by thread id."""
        out = {}
        for tid in range(1 + 2 * self.k):
            e = self.next_event(tid)
            if e is not None:
                out[tid] = e
        return out

    def pending(self) -> dict[int, Event]:
        """Every blocked thread's next event (see :meth:`next_event`), by thread id."""
        out = {}
        for tid in range(1 + 2 * self.k):
            if self.next_event(tid) is None:
                e = self.next_event(tid, guarded=False)
                if e is not None:
                    out[tid] = e
        return out

    def finished(self) -> bool:
        """The patch is done and every calling CPU finished (or crashed)."""
        return self.pc >= len(self.ops) and all(s.pause[0] == "done" for s in self.cpu) \
            and not any(self.ipi)

    # -- performing an event ------------------------------------------------------------------------
    def step(self, tid: int) -> Event:
        """Perform thread *tid*'s next event; returns it. ValueError if *tid* is not enabled."""
        e = self.next_event(tid)
        if e is None:
            raise ValueError(f"thread {thread_name(tid, self.k)} is not enabled")
        k, m = self.k, self.machine
        if tid == 0:
            op = self.ops[self.pc]
            kind = op[0]
            if kind == "text":
                m.write(op[1] + op[2], op[3])
            elif kind == "data":
                m.write32(op[1], op[2])
            elif kind == "publish":
                self.vec, self.nr = {c.addr: c for c in op[1]}, len(op[1])
                self.vec_gen += 1
            elif kind == "clear_nr":
                self.nr = 0
            elif kind == "clear_vec":
                self.vec = None
                self.vec_gen += 1
            elif kind == "send":
                self.ipi = [op[1]] * k
            elif kind == "release":
                for i in range(k):
                    self.parked[i] = False
                    m.cpus[i].sync_core()
                    self.cpu[i].icache = frozenset()
            self.pc += 1
        elif tid <= k:
            self._cpu_step(tid - 1, e)
        else:
            i = tid - 1 - k
            if self.ipi[i] == "stop":
                self.parked[i] = True
            self.ipi[i] = None
            m.cpus[i].sync_core()
            self.cpu[i].icache = frozenset()
        self.trace.append(e)
        return e

    def _cpu_step(self, i: int, e: Event) -> None:
        s, cpu, m = self.cpu[i], self.machine.cpus[i], self.machine
        if e.kind == "fetch":
            site = e.arg
            if self.config.coherent_fetch or site not in s.icache:
                s.icache = s.icache | {site}
                s.view[site] = self._site_bytes(site)
            if s.spin is not None and s.spin[0] != site:
                s.spin = None
            # Execute the bytes this CPU holds for the site. Unicorn's own
            # translation cache may be flushed at any time (when its buffer
            # fills), so the stale view is explicit: the held bytes are put
            # in place for this one translation and the memory put back.
            held, now = s.view[site], self._site_bytes(site)
            cpu.sync_core(site, site + 5)
            if held != now:
                m.write(site, held)
            try:
                self._run(i)
            finally:
                if held != now:
                    m.write(site, now)
            return
        elif e.kind == "h1":
            s.nr_seen = self.nr
            regs = self.regs(i)
            s.traps.append((cpu.completed_calls(), regs.ip - 1, self.pc))
        elif e.kind == "h2":
            regs = self.regs(i)
            site = regs.ip - 1
            s.vec_seen = self.vec_gen
            if s.nr_seen == 0:
                return self._crash(i, f"unhandled int3 at {self.image.name_at(site)}: "
                                      "bp_patching.nr_entries read as 0")
            if self.vec is None:
                return self._crash(i, "NULL pointer dereference: bp_patching.vec read as NULL "
                                      "after nr_entries != 0 (285a54efe386)")
            change = self.vec.get(site)
            if change is None:
                return self._crash(i, f"unhandled int3 at {self.image.name_at(site)}: not in bp_patching.vec")
            if self.config.handler == "irqoff_wait":
                s.pause, s.wait_change, s.if_set = ("irqoff_wait", site), change, False
                return
            if not self._handle(i, regs, change):
                return
            # iret is serializing (Intel SDM vol. 3, "Serializing Instructions"):
            # what the CPU runs next, the site included, is what memory holds
            s.icache = frozenset()
            if regs.ip == change.addr:  # back onto the int3: one spin iteration
                s.spin = (site, s.nr_seen, s.vec_seen, s.view.get(site, self._site_bytes(site)))
            else:
                s.spin = None
        elif e.kind == "irqoff_wait":
            regs = self.regs(i)
            if not self._handle(i, regs, s.wait_change, get_strategy("emulate_new")):
                return
            s.icache = frozenset()  # iret, as after h2
        self._run(i)

    def _handle(self, i: int, regs: PtRegs, change: TextChange, strategy=None) -> bool:
        strategy = strategy or self.strategy
        try:
            ok = strategy.handler(self.machine, self.machine.cpus[i], regs, change)
        except KernelFault as f:
            self._crash(i, f"oops in int3 handler: {f}")
            return False
        if not ok:
            self._crash(i, f"unhandled int3 at {self.image.name_at(change.addr)}")
            return False
        return True

    # -- replay and outcome --------------------------------------------------------------------------
    def replay(self, schedule) -> list[Event]:
        """Reset and perform *schedule* (thread ids); returns the events."""
        self.reset()
        for tid in schedule:
            self.step(int(tid))
        return list(self.trace)

    def blocked(self) -> list[str]:
        """Why each unfinished thread cannot move (for a deadlock)."""
        out = []
        if self.pc < len(self.ops):
            out.append(f"P at {self.op_label(self.pc)}" + (
                f" waiting for IPI acks of {[c for c in range(self.k) if self.ipi[c]]}"
                if self.ops[self.pc][0] == "wait" else ""))
        for i, s in enumerate(self.cpu):
            if s.pause[0] != "done":
                out.append(f"C{i} at {s.pause[0]} " + ("IF clear" if not s.if_set else "IF set"))
        return out

    def outcome(self) -> tuple:
        """The execution's outcome: per CPU, per call what it did; plus a deadlock, if any.

        ``((cpu calls...), ...), deadlock)`` where a call is ``(function,
        body, tracer_runs, livepatch_ran, trapped, crash)``. Patch phases
        and trap counts are left out: they are not functions of the
        equivalence class of the execution (a spinning CPU's count of
        identical iterations, the phase a CPU-local load of ``patch_phase``
        saw).
        """
        per_cpu = []
        deadlock = not self.finished()
        for i, cpu in enumerate(self.machine.cpus):
            cpu.drained = 0
            recs = cpu.drain()
            calls = []
            trapped_seqs = {t[0] for t in self.cpu[i].traps}
            for r in recs:
                o = observe(cpu, r)
                crash = "" if not (o.corrupt or o.body == "none") else \
                    (f"caller state corrupted ({o.corrupt:#x})" if o.corrupt else "no body ran")
                calls.append((o.function, o.body, o.tracer_runs, o.livepatch_runs > 0,
                              r["seq"] in trapped_seqs, crash))
            n = len(recs)
            if n < len(self.calls[i]):
                why = self.cpu[i].crash or (DEADLOCKED if deadlock else "unfinished")
                calls.append((self.calls[i][n], "none", 0, False, n in trapped_seqs, why))
            per_cpu.append(tuple(calls))
        return tuple(per_cpu), deadlock


_UC_REG = {n: getattr(X, f"UC_X86_REG_{n.upper()}") for n in
           ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi",
            "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")}
