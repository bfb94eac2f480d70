"""Emulated i386 CPUs sharing one memory.

Models the parts of ``arch/x86/kernel/traps.c`` and the hardware that the
int3 problem needs: a same-privilege trap pushes EFLAGS, CS and EIP and
enters the int3 entry; ``do_int3`` runs the machine's int3 handler on the
``pt_regs`` that the entry built; ``sync_core`` makes a CPU drop what it had
fetched of changed bytes (x86's rule for cross-modifying code).

Each :class:`Cpu` is one Unicorn engine; all of them map the same host
buffer with ``mem_map_ptr``, so data written by one is seen by all at once,
while each keeps its own translated code until it syncs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from unicorn import (UC_ARCH_X86, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_INVALID,
                     UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_PROT,
                     UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED,
                     UC_MODE_32, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError)
from unicorn import x86_const as X

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.kernel.image import KernelImage
from workbench.kernel.layout import EQU
from workbench.kernel.ptrace import PtRegs

__all__ = ["Machine", "Cpu", "Crash", "KernelFault", "ENTRIES", "UNBOUNDED"]

#: int3 entry variants: v5.1 (pt_regs on the interrupted stack) and v5.3 (with the gap).
#: Only the int3 entry changes: ftrace_regs_caller builds the v5.1 frame in both
#: (its own v5.3 gap and real regs->sp do not change what a trapped call does).
ENTRIES = ("v5.1", "v5.3")
#: Unicorn ignores counts in blocks translated without one: always pass a count
UNBOUNDED = 10**9

_TI = {k: v for k, v in EQU.items() if k.startswith("TI_")}
_CR_FIELDS = ("fn", "phase0", "rb0", "traps0", "body", "body_cnt", "rb1", "traps1",
              "phase1", "corrupt", "seq", "klp", "probe")
_ACCESS = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_WRITE_UNMAPPED: "write",
           UC_MEM_FETCH_UNMAPPED: "fetch", UC_MEM_READ_PROT: "read",
           UC_MEM_WRITE_PROT: "write", UC_MEM_FETCH_PROT: "fetch"}
_EFLAGS_IF, _EFLAGS_TF = 1 << 9, 1 << 8


class KernelFault(Exception):
    """Kernel code (a handler strategy) touched memory it may not: an oops."""

    def __init__(self, addr: int, access: str):
        super().__init__(f"{access} fault at {addr:#010x}")
        self.addr, self.access = addr, access


@dataclass(frozen=True)
class Crash:
    """Why an emulated CPU stopped: faulting EIP, the data address if any, and a reason."""

    eip: int
    addr: int
    reason: str


class Cpu:
    """One emulated CPU: a Unicorn engine over the machine's shared memory.

    Its kernel stack is ``cpu_stacks[index]`` with ``thread_info`` at the
    bottom, as on old i386 kernels. :meth:`run` executes a slice of
    instructions; a fault becomes :attr:`crash` instead of an exception.
    """

    def __init__(self, machine: "Machine", index: int):
        self.machine, self.index = machine, index
        im = machine.image
        uc = Uc(UC_ARCH_X86, UC_MODE_32)
        ptr = machine.mem.ctypes.data
        t0, t1 = im.text
        d0, d1 = im.data
        uc.mem_map_ptr(t0, t1 - t0, UC_PROT_READ | UC_PROT_EXEC, ptr + (t0 - im.base))
        uc.mem_map_ptr(d0, d1 - d0, UC_PROT_READ | UC_PROT_WRITE, ptr + (d0 - im.base))
        gdt = im.sym("gdt_table")
        uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, im.sym("gdt_table_end") - gdt - 1, 0))
        uc.reg_write(X.UC_X86_REG_CS, EQU["__KERNEL_CS"])
        self._cs = EQU["__KERNEL_CS"]
        for seg in (X.UC_X86_REG_DS, X.UC_X86_REG_ES, X.UC_X86_REG_SS):
            uc.reg_write(seg, EQU["__KERNEL_DS"])
        self.uc = uc
        self.ti = im.sym("cpu_stacks") + index * EQU["THREAD_SIZE"]
        self.stack_top = self.ti + EQU["THREAD_SIZE"]
        self.log = im.sym("call_logs") + index * (EQU["LOG_N"] << EQU["CR_SHIFT"])
        self.rb = im.sym("ring_buffers") + index * EQU["RB_SIZE"]
        self.calls = im.sym("workload_calls") + index * 8 * 4096
        self._do_int3 = im.sym("do_int3")
        self._entry = im.sym("int3_entry_" + machine.entry.replace(".", ""))
        self.crash: Crash | None = None
        self.eip = im.sym("cpu_workload")
        self.drained = 0
        self._fault = None
        uc.hook_add(UC_HOOK_INTR, self._on_trap)
        uc.hook_add(UC_HOOK_CODE, self._on_do_int3, begin=self._do_int3, end=self._do_int3)
        uc.hook_add(UC_HOOK_MEM_INVALID, self._on_bad_access)
        self.reset()

    # -- state -------------------------------------------------------------
    def reset(self, calls=None):
        """Restart the workload with a clean stack and thread_info.

        *calls* is a sequence of ``(function address, idle gap)`` pairs that
        the workload loops over (default: keep the current list).
        """
        m = self.machine
        n_old = m.read32(self.ti + _TI["TI_NCALLS"])
        m.mem[self.ti - m.image.base:self.ti - m.image.base + 64] = 0
        m.write32(self.ti + _TI["TI_CPU"], self.index)
        m.write32(self.ti + _TI["TI_LOG"], self.log)
        m.write32(self.ti + _TI["TI_RB"], self.rb)
        m.write32(self.ti + _TI["TI_CALLS"], self.calls)
        if calls is not None:
            calls = list(calls)
            if not 1 <= len(calls) <= 4096:
                raise ConfigError(f"calls: {len(calls)} workload entries; valid range [1, 4096]")
            arr = np.asarray(calls, dtype=np.uint32).reshape(-1, 2)
            off = self.calls - m.image.base
            m.mem[off:off + arr.nbytes] = arr.view(np.uint8).ravel()
            n_old = len(calls)
        m.write32(self.ti + _TI["TI_NCALLS"], n_old)
        rb = self.rb - m.image.base
        m.mem[rb:rb + 16] = 0
        self.drained = 0
        self.crash = None
        self.eip = m.image.sym("cpu_workload")
        self.uc.reg_write(X.UC_X86_REG_ESP, self.stack_top - 16)
        self.uc.reg_write(X.UC_X86_REG_EFLAGS, 0x2 | _EFLAGS_IF)

    # -- execution ---------------------------------------------------------
    def run(self, count: int, until: int = 0) -> bool:
        """Execute up to *count* instructions (stopping early at *until*).

        Returns False if the CPU has crashed (now or before); the reason is
        in :attr:`crash` and the CPU stays stopped until :meth:`reset`.
        """
        if self.crash is not None:
            return False
        if count <= 0:  # Unicorn reads count 0 as "no limit"
            return True
        try:
            self.uc.emu_start(self.eip, until, count=int(count))
        except UcError as exc:
            eip = self.uc.reg_read(X.UC_X86_REG_EIP)
            addr, access = self._fault or (eip, "exec")
            self.crash = Crash(eip, addr, f"{exc} ({access} {addr:#010x})")
        self._fault = None
        self.eip = self.uc.reg_read(X.UC_X86_REG_EIP)
        return self.crash is None

    def reg(self, name: str) -> int:
        """Read register *name* (``"eip"``, ``"esp"``, ...)."""
        return self.uc.reg_read(getattr(X, f"UC_X86_REG_{name.upper()}"))

    def set_reg(self, name: str, value: int) -> None:
        self.uc.reg_write(getattr(X, f"UC_X86_REG_{name.upper()}"), value & 0xFFFFFFFF)
        if name.lower() == "eip":
            self.eip = value

    def sync_core(self, lo: int | None = None, hi: int | None = None) -> None:
        """Drop this CPU's translations of [lo, hi) (all text by default)."""
        t0, t1 = self.machine.image.text
        self.uc.ctl_remove_cache(t0 if lo is None else lo, t1 if hi is None else hi)

    # -- hooks ---------------------------------------------------------------
    def _die(self, addr: int, reason: str):
        self.crash = Crash(self.uc.reg_read(X.UC_X86_REG_EIP), addr, reason)
        self.uc.emu_stop()

    def _on_trap(self, uc, intno, _):
        eip = uc.reg_read(X.UC_X86_REG_EIP)
        if intno != 3:
            # Only int3 has a handler here; any other exception is an oops.
            return self._die(eip, f"exception {intno} at {eip:#010x}")
        esp = uc.reg_read(X.UC_X86_REG_ESP)
        flags = uc.reg_read(X.UC_X86_REG_EFLAGS)
        m = self.machine
        d0, d1 = m.image.data
        if not d0 <= esp - 12 < esp <= d1:  # same-privilege trap: EFLAGS, CS, EIP; no SS:ESP
            return self._die(esp - 12, f"double fault: no stack at {esp - 12:#010x}")
        m.write(esp - 12, np.array((eip, self._cs, flags), dtype=np.uint32).tobytes())
        uc.reg_write(X.UC_X86_REG_ESP, esp - 12)
        uc.reg_write(X.UC_X86_REG_EFLAGS, flags & ~(_EFLAGS_IF | _EFLAGS_TF))
        uc.reg_write(X.UC_X86_REG_EIP, self._entry)

    def _on_do_int3(self, uc, address, size, _):
        regs = PtRegs(self.machine, uc.reg_read(X.UC_X86_REG_EAX))
        try:
            handled = self.machine.handle_int3(self, regs)
        except KernelFault as f:
            return self._die(f.addr, f"oops in int3 handler: {f}")
        if not handled:
            self._die(regs.ip - 1, f"unhandled int3 at {self.machine.image.name_at(regs.ip - 1)}")

    def _on_bad_access(self, uc, access, address, size, value, _):
        self._fault = (address, _ACCESS.get(access, "access"))
        return False

    # -- the workload's records ------------------------------------------------
    def completed_calls(self) -> int:
        return self.machine.read32(self.ti + _TI["TI_LOG_HEAD"])

    def drain(self) -> list[dict]:
        """Call records logged since the last drain (oldest first)."""
        head = self.completed_calls()
        n = EQU["LOG_N"]
        if head - self.drained > n:
            raise RuntimeError(f"cpu{self.index}: call log overrun; drain more often")
        words = EQU["LOG_N"] << EQU["CR_SHIFT"] >> 2
        base = (self.log - self.machine.image.base) >> 2
        log = self.machine.u32[base:base + words].reshape(n, -1)
        out = []
        for seq in range(self.drained, head):
            rec = dict(zip(_CR_FIELDS, map(int, log[seq % n, :len(_CR_FIELDS)])))
            rec["cpu"] = self.index
            out.append(rec)
        self.drained = head
        return out

    def trace_records(self, start: int, end: int) -> np.ndarray:
        """Ring-buffer entries ``[start, end)`` as rows of (ip, parent_ip, cpu, seq)."""
        n = EQU["RB_N"]
        base = (self.rb + EQU["RB_RECS"] - self.machine.image.base) >> 2
        recs = self.machine.u32[base:base + 4 * n].reshape(n, 4)
        return recs[np.arange(start, end) % n]

    def thread_info(self, field: str) -> int:
        return self.machine.read32(self.ti + _TI[f"TI_{field.upper()}"])


class Machine:
    """N emulated CPUs over one shared copy of a :class:`KernelImage`.

    *entry* picks the int3 entry (``"v5.1"`` or ``"v5.3"``). The int3
    handler is :attr:`int3_handler`, a callable ``(machine, cpu, regs) ->
    bool`` (see :mod:`workbench.kernel.int3`); with none installed every int3 is
    an oops. Raises :class:`ConfigError` for a CPU count outside
    [1, MAX_CPUS] or an unknown entry.

    By default a CPU keeps executing what it fetched until it syncs, the
    worst case x86 allows for cross-modifying code. With *coherent_fetch*
    every text write by the patcher is seen at the next fetch, as snooping
    hardware does in practice; the race simulator's windows assume that.
    """

    def __init__(self, image: KernelImage, ncpus: int = 1, entry: str = "v5.3", int3_handler=None,
                 coherent_fetch: bool = False):
        ncpus = int(check_range("cpus", ncpus, 1, EQU["MAX_CPUS"], integer=True))
        self.entry = check_choice("entry", entry, ENTRIES)
        self.image = image
        self._pristine = np.frombuffer(image.memory, dtype=np.uint8)
        self.mem = self._pristine.copy()  # the shared memory every CPU maps
        self.u32 = self.mem.view(np.uint32)
        self.int3_handler = int3_handler
        self.text_poke_state = None  # set by workbench.kernel.text_poke while a patch is in flight
        self.coherent_fetch = bool(coherent_fetch)
        self.coherent_fetch = bool(coherent_fetch)
        self.cpus = [Cpu(self, i) for i in range(ncpus)]

    # -- host access (the patcher and the handlers' C code) ------------------
    def _off(self, addr: int, size: int) -> int:
        off = addr - self.image.base
        if off < 0 or off + size > len(self.mem):
            raise KernelFault(addr, "access")
        return off

    def read(self, addr: int, size: int) -> bytes:
        off = self._off(addr, size)
        return self.mem[off:off + size].tobytes()

    def write(self, addr: int, data: bytes) -> None:
        """Write through the kernel's writable alias (text_poke): no permission check."""
        off = self._off(addr, len(data))
        self.mem[off:off + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def read32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write32(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def kernel_read32(self, addr: int) -> int:
        """A load by kernel C code: faults outside mapped memory."""
        try:
            return self.read32(addr)
        except KernelFault:
            raise KernelFault(addr, "read") from None

    def kernel_write32(self, addr: int, value: int) -> None:
        """A store by kernel C code: faults on read-only text or unmapped memory."""
        d0, d1 = self.image.data
        if not (d0 <= addr and addr + 4 <= d1):
            raise KernelFault(addr, "write")
        self.write32(addr, value)

    # -- text and CPUs -----------------------------------------------------------
    def sync_core(self, lo: int | None = None, hi: int | None = None) -> None:
        """Every CPU drops its translations of [lo, hi): the IPI round of text_poke_sync()."""
        for cpu in self.cpus:
            cpu.sync_core(lo, hi)

    def handle_int3(self, cpu: Cpu, regs: PtRegs) -> bool:
        """do_int3(): run the installed handler; False means no handler claimed it."""
        return bool(self.int3_handler and self.int3_handler(self, cpu, regs))

    def restore_text(self) -> None:
        """Put the text back as it was built and make every CPU refetch it."""
        t0, t1 = (a - self.image.base for a in self.image.text)
        self.mem[t0:t1] = self._pristine[t0:t1]
        self.sync_core()
