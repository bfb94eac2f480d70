"""One traced call replayed at any patch step and instruction, on i386 or x86_64.

Models nothing new of the kernel: it replays :class:`workbench.emulate.run.Run`
(a scenario's ``text_poke_bp`` steps, ``arch/x86/kernel/alternative.c``, under
one int3 strategy and entry) and reads what the emulated CPU holds at each
instruction: where it is, the path through the trampolines (the shared
``ftrace_caller``/``ftrace_regs_caller`` of ``arch/x86/kernel/ftrace_32.S`` or
``ftrace_64.S``, and on x86_64 the per-ops trampolines ``create_trampoline()``
made, named ``trampoline:<ops>``) and the ``struct pt_regs``
(``arch/x86/include/asm/ptrace.h``) a frame holds. :class:`CallStepper` is
what the step viewer (:class:`workbench.ui.step_viewer.StepViewer`) draws and the
tests check; :func:`trapped_calls` is one trapped call per strategy.
"""

from __future__ import annotations

import struct

import pandas as pd

from workbench.base.errors import check_choice, check_range
from workbench.base.vocabulary import ARCHES, STRATEGIES
from workbench.kernel.ptrace import PtRegs

__all__ = ["CALL_CAP", "CallStepper", "HANDLER_SYMBOLS", "trapped_calls"]

#: handlers that get ``regs`` as their 4th argument: on i386 (regparm(3): ip, parent_ip, ops in
#: registers) on the stack, at esp+4 at their first instruction; on x86_64 in rcx (the assist
#: function is x86_64's: what a per-ops trampoline calls for an ops that is not recursion-safe)
HANDLER_SYMBOLS = ("ftrace_ops_list_func", "ftrace_ops_assist_func", "klp_ftrace_handler", "function_trace_call",
                   "regs_probe_handler")
#: instructions after which a call counts as not returning (spin waits forever in a replay)
CALL_CAP = 1000
_SHARED_TRAMPOLINES = ("ftrace_caller", "ftrace_regs_caller", "live_patch_trampoline")


class CallStepper:
    """Replay one call of *function* on the emulator, at any patch step and instruction.

    The patch is the scenario's, under *strategy* and the int3 *entry* on the
    emulated kernel *arch* (``i386`` or ``x86_64``; *entry* defaults to the
    arch's latest: v5.3 on i386, v5.2 on x86_64) (:class:`workbench.emulate.run.Run`).
    :meth:`state` lands the first *step* patch steps (each text write or
    sync of the poke method), then lets each of *cpus* CPUs run the call, CPU
    ``j`` lagging ``j * lag`` instructions behind CPU 0. Everything is
    recomputed from the reset machine, so a state depends only on its
    arguments. Raises :class:`ConfigError` for an unknown arch, scenario,
    strategy, entry or function, a scenario the arch cannot have (the same
    one line as the command line's), or a CPU count outside [1, 8].
    """

    def __init__(self, scenario="seed", strategy="emulate_regs_caller", entry=None, function="do_IRQ",
                 cpus=1, lag=4, poke_method=None, arch="i386"):
        from workbench.emulate.run import Run  # start-up: Unicorn, only once a CallStepper is made

        arch = check_choice("arch", arch, ARCHES)
        cpus = int(check_range("cpus", cpus, 1, 8, integer=True))
        self.lag = int(check_range("lag", lag, 0, 1000, integer=True))
        self.run = Run(scenario, strategy, entry, poke_method, ncpus=cpus, arch=arch)
        self.arch, self.image = arch, self.run.image
        self.function = self.image.function(function).name
        self.site = self.image.functions[self.function].site
        self.strategy, self.entry = self.run.strategy.name, self.run.entry
        self.wide = arch == "x86_64"
        self._handler_at = {self.image.sym(s): s for s in HANDLER_SYMBOLS if s in self.image.symbols}
        self._do_int3 = self.image.sym("do_int3")
        self._lengths: dict[int, int] = {}
        self._calls: dict[str, int] = {}
        state = self.run.after
        if state.per_ops_trampolines:  # x86_64: create_trampoline()'s slots, one per ops, named for it
            self._tramp = (self.image.sym("ftrace_tramp_area"), self.image.equ["TRAMP_SLOT"],
                           [f"trampoline:{o.name}" for o in state.all_ops])
        else:
            self._tramp = None

    # -- names ------------------------------------------------------------------------------
    def name_at(self, addr: int) -> str:
        """``symbol+offset`` of *addr*; inside a per-ops trampoline ``trampoline:<ops>+offset``."""
        if self._tramp is not None:
            area, slot, names = self._tramp
            k, off = divmod(addr - area, slot)
            if 0 <= k < len(names) and addr >= area:
                return names[k] if off == 0 else f"{names[k]}+{off:#x}"
        return self.image.name_at(addr)

    def insn_text(self, insn) -> str:
        """A capstone instruction as AT&T text, a call or jump target named."""
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        if insn.mnemonic.startswith(("call", "jmp")) and insn.op_str.startswith("0x"):
            text += f"  <{self.name_at(int(insn.op_str, 16))}>"
        return text

    # -- the patch ----------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        """Number of patch steps; :meth:`state` accepts steps 0..n_steps."""
        return len(self.run.steps)

    def step_names(self) -> list[str]:
        """``before`` and then the name of each patch step, in order."""
        return ["before"] + [s.name for s in self.run.steps]

    def trap_step(self) -> int:
        """The first step count after which the function's own site holds an int3
        (0 if the poke method never arms one, as under stop_machine)."""
        for i, st in enumerate(self.run.steps):
            if st.kind == "text" and st.name.endswith("int3") and any(c.addr == self.site for c in st.changes):
                return i + 1
        return 0

    def _prepare(self, step):
        run, m, im = self.run, self.run.machine, self.image
        run.reset()
        for cpu in m.cpus:
            cpu.reset([(self.site, 0)])
        for _ in range(step):
            run.apply_step()
        m.sync_core()
        for cpu in m.cpus:  # every CPU at the call instruction of the traced function
            cpu.run(CALL_CAP, until=im.sym("workload_call"))
        frames = {c.index: [] for c in m.cpus}
        original = m.int3_handler

        def handler(machine, cpu, regs):
            if ("int3 entry", regs.addr) not in frames[cpu.index][-1:]:
                frames[cpu.index].append(("int3 entry", regs.addr))
            return original(machine, cpu, regs)

        m.int3_handler = handler
        return frames, original

    def _handler_regs(self, cpu) -> int:
        """At a handler's first instruction: its ``regs`` argument (0 for NULL)."""
        if self.wide:
            return cpu.reg("rcx")
        return self.run.machine.read32(cpu.reg("esp") + 4)

    def _step_cpu(self, cpu, count, frames, on_step=None):
        path, executed = [], 0
        ret = self.image.sym("workload_return")
        while executed < count and cpu.crash is None and cpu.eip != ret:
            if on_step is not None and on_step(executed, path):
                break
            cpu.run(1)
            executed += 1
            eip = cpu.eip
            name = self.name_at(eip)
            if "+" not in name and (not path or path[-1] != name):
                path.append(name)
            if eip == self._do_int3 and cpu.crash is None:
                # do_int3(regs): the frame the entry built, before the strategy changes it
                frames.append(("int3 entry", cpu.reg("rdi" if self.wide else "eax")))
            if eip in self._handler_at:
                regs = self._handler_regs(cpu)
                if regs:
                    owner = next((p for p in reversed(path)
                                  if p in _SHARED_TRAMPOLINES or p.startswith("trampoline:")), "trampoline")
                    frames.append((owner, regs))
        if on_step is not None:  # the last state too: the call returned, crashed, or ran out
            on_step(executed, path)
        return path, executed

    def length(self, step: int) -> int:
        """Instructions from the call instruction until the call returns (at most :data:`CALL_CAP`)."""
        step = self._check_step(step)
        if step not in self._lengths:
            frames, original = self._prepare(step)
            try:
                cpu = self.run.machine.cpus[0]
                _, n = self._step_cpu(cpu, CALL_CAP, frames[0])
            finally:
                self.run.machine.int3_handler = original
            self._lengths[step] = n
        return self._lengths[step]

    def seek(self, step: int, until) -> dict | None:
        """The first state of CPU 0's call, at patch *step*, for which *until*
        (a predicate on a per-CPU state dict, as in :meth:`state`) is true;
        ``None`` if the call returns or crashes first. One replay, not one per
        instruction.
        """
        step = self._check_step(step)
        frames, original = self._prepare(step)
        found = {}

        def check(executed, path):
            if not found and until(self._cpu_state(cpu, path, executed, frames[0])):
                found["insn"] = executed
            return bool(found)

        cpu = self.run.machine.cpus[0]
        try:
            self._step_cpu(cpu, CALL_CAP, frames[0], check)
        finally:
            self.run.machine.int3_handler = original
        return None if not found else self.state(step, found["insn"])

    def next_trap(self, step: int, after: int) -> dict | None:
        """The first state of CPU 0's call at patch *step*, later than instruction *after*, where
        the CPU has just entered the int3 entry (the trap is delivered); ``None`` if there is none."""
        return self.seek(step, lambda st: st["executed"] > after and st["where"].startswith("int3_entry")
                         and "+" not in st["where"])

    def _check_step(self, step):
        return int(check_range("step", step, 0, self.n_steps, integer=True))

    # -- a state ------------------------------------------------------------------------
    def state(self, step: int, insn: int) -> dict:
        """The machine after *step* patch steps and *insn* instructions of the call.

        Keys: ``arch``, ``step``, ``step_name``, ``strategy``, ``entry``,
        ``function``, ``site`` (address, bytes, disassembly, and whether an
        int3 is there), ``cpus`` (per CPU: ``eip`` and ``esp``, the
        instruction and stack pointer (RIP and RSP on x86_64), ``where`` as
        symbol+offset, ``next`` instruction, ``executed``, ``path``,
        ``trapped``, ``returned``, ``crash``, ``frame`` (what the register
        frame is, said plainly), ``pt_regs`` (dict or None),
        ``pt_regs_addr``, ``pt_regs_from``, ``stack`` (8 words at the stack
        pointer, 4 or 8 bytes each)). Raises :class:`ConfigError` for a step
        outside [0, n_steps] or an instruction count outside [0, CALL_CAP].
        """
        step = self._check_step(step)
        insn = int(check_range("insn", insn, 0, CALL_CAP, integer=True))
        m, im = self.run.machine, self.image
        frames, original = self._prepare(step)
        try:
            cpus = []
            for cpu in m.cpus:
                count = max(0, insn - cpu.index * self.lag)
                path, executed = self._step_cpu(cpu, count, frames[cpu.index])
                cpus.append(self._cpu_state(cpu, path, executed, frames[cpu.index]))
        finally:
            m.int3_handler = original
        code = m.read(self.site, 5)
        insn0 = im.disassemble(code, self.site)
        return {
            "arch": self.arch, "step": step, "step_name": self.run.phase_name(step), "strategy": self.strategy,
            "entry": self.entry, "function": self.function,
            "site": {"address": self.site, "bytes": code.hex(" "), "int3": code[0] == 0xCC,
                     "insn": self.insn_text(insn0[0]) if insn0 else "(undecodable)"},
            "cpus": cpus,
        }

    def _entry_call(self, entry: str) -> int:
        """Address of the ``call do_int3`` inside the int3 entry *entry* (the frame is complete there)."""
        if entry not in self._calls:
            im = self.image
            start = im.sym(entry)
            for insn in im.disassemble(self.run.machine.read(start, 160), start):
                if insn.mnemonic.startswith("call") and insn.op_str.startswith("0x") \
                        and int(insn.op_str, 16) == self._do_int3:
                    self._calls[entry] = insn.address
                    break
            else:
                self._calls[entry] = start
        return self._calls[entry]

    def _frame_note(self, where, eip, kind, addr) -> str:
        """What the CPU's register frame is at *eip*, said plainly (the step viewer's frame line).

        Inside the int3 entry but before its ``call do_int3`` the
        ``pt_regs`` is being built (the hardware has pushed its frame; the
        entry pushes the rest), after it the entry is restoring from it;
        neither is "no frame".
        """
        base = where.split("+")[0]
        if base.startswith("int3_entry"):
            call = self._entry_call(base)
            if eip <= call and addr is None:
                pushed = "ss, rsp, flags, cs, rip" if self.wide else "ip, cs, flags"
                return (f"pt_regs being built by {base} (hardware pushed {pushed}; "
                        f"complete at the call to do_int3)")
            if eip > call:
                return (f"pt_regs being restored by {base} (after do_int3; the "
                        f"{'iretq' if self.wide else 'iret'} frame follows)")
        if base == "do_int3" and addr is not None:
            return "pt_regs complete, passed to do_int3 (the strategy acts on it)"
        if addr is not None:
            return f"pt_regs live (built by {kind})"
        return "no pt_regs live (not inside the int3 entry or a regs-saving trampoline)"

    def _stack(self, sp: int) -> list[int]:
        """The 8 words at *sp* (4 or 8 bytes each), or [] outside the data region."""
        m, im = self.run.machine, self.image
        word = 8 if self.wide else 4
        if not im.data[0] <= sp < im.data[1] - 8 * word:
            return []
        return list(struct.unpack(f"<8{'Q' if self.wide else 'I'}", m.read(sp, 8 * word)))

    def _cpu_state(self, cpu, path, executed, frames):
        m, im = self.run.machine, self.image
        eip, esp = cpu.eip, cpu.reg("esp")
        code = m.read(eip, 16) if im.text[0] <= eip < im.text[1] - 16 else b""
        nxt = im.disassemble(code, eip)
        live = [(kind, addr) for kind, addr in frames if esp <= addr]  # below the stack pointer: popped
        kind, addr = live[-1] if live else (None, None)
        regs = PtRegs(m, addr).as_dict() if addr is not None else None
        where = self.name_at(eip)
        return {
            "frame": self._frame_note(where, eip, kind, addr),
            "cpu": cpu.index, "eip": eip, "where": where, "esp": esp,
            "next": self.insn_text(nxt[0]) if nxt else "",
            "executed": executed, "path": path[-24:], "trapped": any(k == "int3 entry" for k, _ in frames),
            "returned": eip == im.sym("workload_return"),
            "crash": None if cpu.crash is None else cpu.crash.reason,
            "pt_regs": regs, "pt_regs_addr": addr, "pt_regs_from": kind, "stack": self._stack(esp),
        }


def trapped_calls(function="do_IRQ", entry=None, strategies=None, scenario="seed", arch="i386") -> pd.DataFrame:
    """One call of *function* that hits the int3 on its own site, under each strategy.

    For each strategy, the patch stops right after the int3 is written on
    the site (:meth:`CallStepper.trap_step`) and the call runs to its end,
    on *arch* with the int3 *entry* (default: the arch's latest).
    Columns: ``arch``, ``entry``, ``strategy``, ``trap_step`` (the step
    name), ``trapped``, ``returned``, ``crash``, ``instructions``, ``path``
    (symbols entered). A strategy whose poke method arms no int3
    (stop_machine) reports the call at the step before its site changes.
    """
    rows = []
    for name in strategies or STRATEGIES:
        cs = CallStepper(scenario, name, entry, function, cpus=1, arch=arch)
        k = cs.trap_step()
        c = cs.state(k, cs.length(k))["cpus"][0]
        rows.append({"arch": cs.arch, "entry": cs.entry, "strategy": name, "trap_step": cs.run.phase_name(k),
                     "trapped": c["trapped"], "returned": c["returned"], "crash": c["crash"] or "",
                     "instructions": c["executed"], "path": " -> ".join(_squeeze(c["path"]))})
        cs.run.close()
    return pd.DataFrame(rows)


def _squeeze(path: list[str], keep: int = 10) -> list[str]:
    """A long path (spin's loop) cut to its first and last *keep*/2 symbols around a count."""
    if len(path) > keep:
        return path[:keep // 2] + [f"... ({len(path) - keep} more)"] + path[-keep // 2:]
    return list(path)
