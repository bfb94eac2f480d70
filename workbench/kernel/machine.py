"""Emulated i386 or x86_64 CPUs sharing one memory.

Models the parts of ``arch/x86/kernel/traps.c`` and the hardware that the
int3 problem needs: a same-privilege trap pushes EFLAGS, CS and EIP and
enters the int3 entry; ``do_int3`` runs the machine's int3 handler on the
``pt_regs`` that the entry built; ``sync_core`` makes a CPU drop what it had
fetched of changed bytes (x86's rule for cross-modifying code).

Each :class:`Cpu` is one Unicorn engine; all of them map the same host
buffer with ``mem_map_ptr``, so data written by one is seen by all at once,
while each keeps its own translated code until it syncs. An x86_64 image
runs in Unicorn's 64-bit mode; its trap frame is :mod:`workbench.kernel.trap64`'s.
"""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np
from unicorn import (UC_ARCH_X86, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, UC_HOOK_MEM_FETCH,
                     UC_HOOK_MEM_INVALID, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                     UC_MEM_FETCH_PROT, UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_PROT,
                     UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_PROT, UC_MEM_WRITE_UNMAPPED,
                     UC_MODE_32, UC_MODE_64, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError)
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TB_FLUSH, UC_CTL_TB_REMOVE_CACHE
# The binding's loaded libunicorn with its prototypes, and its C callback types:
# the hot paths (emu_start, register access, hooks) call the C API directly,
# without the binding's per-call Python layers (unicorn>=2.1.1,<2.2, pinned).
from unicorn.unicorn_py3.unicorn import (HOOK_CODE_CFUNC, HOOK_INTR_CFUNC, HOOK_MEM_ACCESS_CFUNC,
                                         HOOK_MEM_INVALID_CFUNC, uc_hook_h, uclib)

from workbench.base.vocabulary import ENTRIES_BY_ARCH
from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.kernel.image import KernelImage
from workbench.kernel.layout import EQU
from workbench.kernel.ptrace import PtRegs
from workbench.kernel.trap64 import REGS64, int3_frame64, iretq_check

__all__ = ["Cpu", "Crash", "KernelFault", "Machine", "UNBOUNDED"]

#: int3 entry variants: v5.1 (pt_regs on the interrupted stack) and v5.3 (with the gap).
#: Only the int3 entry changes: ftrace_regs_caller builds the v5.1 frame in both
#: (its own v5.3 gap and real regs->sp do not change what a trapped call does).
#: Unicorn ignores counts in blocks translated without one: always pass a count
UNBOUNDED = 10**9

_TI = {k: v for k, v in EQU.items() if k.startswith("TI_")}
_CR_FIELDS = ("fn", "phase0", "rb0", "traps0", "body", "body_cnt", "rb1", "traps1",
              "phase1", "corrupt", "seq", "klp", "probe")
_ACCESS = {UC_MEM_READ_UNMAPPED: "read", UC_MEM_WRITE_UNMAPPED: "write",
           UC_MEM_FETCH_UNMAPPED: "fetch", UC_MEM_READ_PROT: "read",
           UC_MEM_WRITE_PROT: "write", UC_MEM_FETCH_PROT: "fetch"}
_EFLAGS_IF, _EFLAGS_TF = 1 << 9, 1 << 8
_EMU_START, _REG_READ, _REG_WRITE = uclib.uc_emu_start, uclib.uc_reg_read, uclib.uc_reg_write
_EMU_STOP, _HOOK_ADD = uclib.uc_emu_stop, uclib.uc_hook_add
_READ_BATCH, _WRITE_BATCH = uclib.uc_reg_read_batch, uclib.uc_reg_write_batch
_R_EIP, _R_ESP, _R_EAX, _R_EFLAGS = (X.UC_X86_REG_EIP, X.UC_X86_REG_ESP, X.UC_X86_REG_EAX,
                                     X.UC_X86_REG_EFLAGS)


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


#: 32-bit registers read and written through the C API directly (the rest through the binding)
_REG32 = {n: getattr(X, f"UC_X86_REG_{n.upper()}")
          for n in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip", "eflags")}
# uc_ctl() codes as the binding encodes them: (I/O direction << 30) | (argument count << 26) | control
_TB_REMOVE_CACHE = (UC_CTL_IO_WRITE << 30) | (2 << 26) | UC_CTL_TB_REMOVE_CACHE
_TB_FLUSH = (UC_CTL_IO_WRITE << 30) | UC_CTL_TB_FLUSH


def _guarded(ref: "weakref.ref[Cpu]", method: Callable, failed=None) -> Callable:
    """A C hook callback calling ``method(cpu, *args)`` on the CPU behind *ref*.

    Holds the CPU weakly (no reference cycle through the engine's callbacks)
    and, like the binding's own wrapper, keeps the first exception it raises
    on the CPU and stops the engine; :meth:`Cpu.run` re-raises it.
    """
    def callback(handle, *args):
        cpu = ref()
        if cpu is None:
            return failed
        try:
            return method(cpu, *args[:-1])  # the last argument is the unused user data
        except BaseException as exc:  # noqa: BLE001 - re-raised by Cpu.run
            if cpu._hook_error is None:
                cpu._hook_error = exc
            _EMU_STOP(handle)
            return failed
    return callback


#: hook kinds :meth:`Cpu.add_hook` takes, and the C type of their callbacks
_HOOK_TYPES = {UC_HOOK_CODE: HOOK_CODE_CFUNC, UC_HOOK_BLOCK: HOOK_CODE_CFUNC, UC_HOOK_INTR: HOOK_INTR_CFUNC,
               UC_HOOK_MEM_READ: HOOK_MEM_ACCESS_CFUNC, UC_HOOK_MEM_WRITE: HOOK_MEM_ACCESS_CFUNC,
               UC_HOOK_MEM_FETCH: HOOK_MEM_ACCESS_CFUNC}


def _plain_callback(ref: "weakref.ref[Cpu]", fn: Callable) -> Callable:
    """A C hook callback calling ``fn(*args)`` (the hook's arguments without the engine
    handle and user data); an exception is kept for :meth:`Cpu.run` to raise."""
    def callback(handle, *args):
        try:
            return fn(*args[:-1])
        except BaseException as exc:  # noqa: BLE001 - re-raised by Cpu.run
            cpu = ref()
            if cpu is not None and cpu._hook_error is None:
                cpu._hook_error = exc
            _EMU_STOP(handle)
    return callback


class Cpu:
    """One emulated CPU: a Unicorn engine over the machine's shared memory.

    Its kernel stack is ``cpu_stacks[index]`` with ``thread_info`` at the
    bottom, as on old i386 kernels. :meth:`run` executes a slice of
    instructions; a fault becomes :attr:`crash` instead of an exception.
    The CPU holds its machine weakly and its engine's hooks hold the CPU
    weakly, so dropping the :class:`Machine` (or :meth:`Machine.close`)
    releases the engine at once, without waiting for the garbage collector.
    """

    def __init__(self, machine: "Machine", index: int):
        self._machine = weakref.ref(machine)
        self.index = index
        im = machine.image
        self._x64 = x64 = im.arch == "x86_64"
        eq = im.equ
        uc = Uc(UC_ARCH_X86, UC_MODE_64 if x64 else UC_MODE_32)
        ptr = machine.mem.ctypes.data
        t0, t1 = im.text
        d0, d1 = im.data
        uc.mem_map_ptr(t0, t1 - t0, UC_PROT_READ | UC_PROT_EXEC, ptr + (t0 - im.base))
        uc.mem_map_ptr(d0, d1 - d0, UC_PROT_READ | UC_PROT_WRITE, ptr + (d0 - im.base))
        gdt = im.sym("gdt_table")
        uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, im.sym("gdt_table_end") - gdt - 1, 0))
        uc.reg_write(X.UC_X86_REG_CS, eq["__KERNEL_CS"])
        self._cs = eq["__KERNEL_CS"]
        self._ss = eq["__KERNEL_DS"]
        for seg in (X.UC_X86_REG_DS, X.UC_X86_REG_ES, X.UC_X86_REG_SS):
            uc.reg_write(seg, eq["__KERNEL_DS"])
        #: instruction pointer, stack pointer, do_int3's regs argument, flags; names for reg()
        self._rip, self._rsp, self._rarg, self._rflags = REGS64[:4] if x64 else (_R_EIP, _R_ESP, _R_EAX, _R_EFLAGS)
        self._regs = REGS64[4] if x64 else _REG32
        self.uc = uc
        self._h = uc._uch  # the engine handle the C calls take (the binding's attribute; pinned <2.2)
        self._val = ctypes.c_uint64(0)  # register transfer buffer of the C calls
        self._pval = ctypes.byref(self._val)
        # a trap reads EIP, ESP, EFLAGS and writes ESP, EFLAGS, EIP: one batch call each way
        self._trap_in = (ctypes.c_int * 3)(self._rip, self._rsp, self._rflags)
        self._trap_out = (ctypes.c_int * 3)(self._rsp, self._rflags, self._rip)
        self._trap_val = (ctypes.c_uint64 * 3)()
        at = ctypes.addressof(self._trap_val)
        self._trap_ptr = (ctypes.c_void_p * 3)(at, at + 8, at + 16)
        self._base = im.base
        self._d0, self._d1 = d0, d1
        self.ti = im.sym("cpu_stacks") + index * eq["THREAD_SIZE"]
        self.stack_top = self.ti + eq["THREAD_SIZE"]
        self.log = im.sym("call_logs") + index * (EQU["LOG_N"] << EQU["CR_SHIFT"])
        self.rb = im.sym("ring_buffers") + index * EQU["RB_SIZE"]
        self.calls = im.sym("workload_calls") + index * 8 * 4096
        self._workload = im.sym("cpu_workload")
        self._do_int3 = im.sym("do_int3")
        self._entry = im.sym("int3_entry_" + machine.entry.replace(".", ""))
        self._irets = tuple(im.sym(s) for s in ("int3_iret_v51", "int3_iret_v52")) if self._x64 else ()
        self.crash: Crash | None = None
        self.eip = self._workload
        self.drained = 0
        self._fault = None
        self._hook_error: BaseException | None = None
        #: the range and write count of the last refetch() when no other sync followed it,
        #: and a refetch put off (see refetch())
        self._refetched: tuple[int, int, int | None] | None = None
        self._owed: tuple[int, int] | None = None
        #: called as ``drop_watch(lo, hi)`` whenever this CPU drops its translations of
        #: [lo, hi) (None, None: all), by sync_core() or in effect by refetch(); None: nobody asks
        self.drop_watch: Callable[[int | None, int | None], None] | None = None
        ref = weakref.ref(self)
        self._extra: dict[int, object] = {}  # callbacks of add_hook, by handle
        self._callbacks = (HOOK_INTR_CFUNC(_guarded(ref, Cpu._on_trap)),
                           HOOK_CODE_CFUNC(_guarded(ref, Cpu._on_do_int3)),
                           HOOK_MEM_INVALID_CFUNC(_guarded(ref, Cpu._on_bad_access, False)))
        # the C callbacks live as long as the engine, whoever else holds it; they
        # hold the CPU weakly, so this is no cycle
        uc._workbench_callbacks = (self._callbacks, self._extra)
        self._add_c_hook(UC_HOOK_INTR, self._callbacks[0])
        self._add_c_hook(UC_HOOK_MEM_INVALID, self._callbacks[2])
        # The do_int3 hook goes in at the first int3 trap (_on_trap), before the entry
        # calls do_int3 (only the int3 entries do): while the instruction counter is
        # an engine's only code hook, Unicorn inlines it into the translated code;
        # with a second, every instruction goes through its generic hook helper
        # (a fifth slower in long slices). A CPU that never traps never pays.
        self._do_int3_hooked = False
        self.reset()

    def _add_c_hook(self, kind: int, cb: Callable, lo: int = 1, hi: int = 0) -> int:
        """Install the C callback *cb* as a hook of *kind* on [lo, hi] (all when lo > hi)."""
        handle = uc_hook_h()
        status = _HOOK_ADD(self._h, ctypes.byref(handle), kind, ctypes.cast(cb, ctypes.c_void_p),
                           None, ctypes.c_uint64(lo), ctypes.c_uint64(hi))
        if status:
            raise UcError(status)
        return handle.value

    @property
    def machine(self) -> "Machine":
        """The :class:`Machine` this CPU belongs to (held weakly)."""
        m = self._machine()
        if m is None:
            raise ReferenceError(f"cpu{self.index}: its Machine was released; keep a reference to it")
        return m

    def close(self) -> None:
        """Release the Unicorn engine now; the CPU cannot run afterwards."""
        self.uc = self._h = None  # the engine's last reference, unless someone kept one

    def add_hook(self, kind: int, callback: Callable, begin: int = 1, end: int = 0) -> int:
        """Install a Unicorn hook of *kind* (``UC_HOOK_CODE``, ``_BLOCK``, ``_INTR``,
        ``_MEM_READ``, ``_MEM_WRITE``, ``_MEM_FETCH``) on addresses [begin, end]
        (all when begin > end), called as ``callback(*args)`` with the hook's
        own arguments (no engine, no user data): ``(address, size)`` for code and
        blocks. Cheaper than the binding's ``hook_add``, and holds no reference to
        the CPU. Returns the handle for :meth:`remove_hook`."""
        cb = _HOOK_TYPES[kind](_plain_callback(weakref.ref(self), callback))
        handle = uc_hook_h()
        status = _HOOK_ADD(self._h, ctypes.byref(handle), kind, ctypes.cast(cb, ctypes.c_void_p), None,
                           ctypes.c_uint64(begin), ctypes.c_uint64(end))
        if status:
            raise UcError(status)
        self._extra[handle.value] = cb
        return handle.value

    def remove_hook(self, handle: int) -> None:
        """Remove a hook installed by :meth:`add_hook`."""
        status = uclib.uc_hook_del(self._h, uc_hook_h(handle))
        if status:
            raise UcError(status)
        del self._extra[handle]

    # -- fast register access ------------------------------------------------
    def _get(self, reg: int) -> int:
        _REG_READ(self._h, reg, self._pval)
        return self._val.value & 0xFFFFFFFF

    def _put(self, reg: int, value: int) -> None:
        self._val.value = value & 0xFFFFFFFF
        _REG_WRITE(self._h, reg, self._pval)

    # -- state -------------------------------------------------------------
    def reset(self, calls=None):
        """Restart the workload with a clean stack and thread_info.

        *calls* is a sequence of ``(function address, idle gap)`` pairs that
        the workload loops over (default: keep the current list).
        """
        m = self.machine
        u32 = m.u32
        ti = (self.ti - self._base) >> 2
        n_old = int(u32[ti + (_TI["TI_NCALLS"] >> 2)])
        u32[ti:ti + 16] = 0  # the first 64 bytes of thread_info
        u32[ti + (_TI["TI_CPU"] >> 2)] = self.index
        u32[ti + (_TI["TI_LOG"] >> 2)] = self.log
        u32[ti + (_TI["TI_RB"] >> 2)] = self.rb
        u32[ti + (_TI["TI_CALLS"] >> 2)] = self.calls
        if calls is not None:
            calls = list(calls)
            if not 1 <= len(calls) <= 4096:
                raise ConfigError(f"calls: {len(calls)} workload entries; valid range [1, 4096]")
            arr = np.asarray(calls, dtype=np.uint32).reshape(-1, 2)
            off = (self.calls - self._base) >> 2
            u32[off:off + arr.size] = arr.ravel()
            n_old = len(calls)
        u32[ti + (_TI["TI_NCALLS"] >> 2)] = n_old
        rb = (self.rb - self._base) >> 2
        u32[rb:rb + 4] = 0
        if self._owed is not None:  # a new EIP: the CPU never fetched the site since
            self.sync_core(*self._owed)
        self.drained = 0
        self.crash = None
        self.eip = self._workload
        # x86_64: 8 below a 16-byte boundary, so traced functions are entered 16-byte aligned
        self._put(self._rsp, self.stack_top - (8 if self._x64 else 16))
        self._put(self._rflags, 0x2 | _EFLAGS_IF)

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
        self._hook_error = None
        status = _EMU_START(self._h, self.eip, until, 0, count)
        if status:
            eip = self._get(self._rip)
            addr, access = self._fault or (eip, "exec")
            self.crash = Crash(eip, addr, f"{UcError(status)} ({access} {addr:#010x})")
        elif self._hook_error is not None:
            exc, self._hook_error = self._hook_error, None
            raise exc
        self._fault = None
        self.eip = self._get(self._rip)
        return self.crash is None

    def interrupts_enabled(self) -> bool:
        """EFLAGS.IF: whether an interrupt (an IPI) can be taken at this boundary."""
        return bool(self._get(self._rflags) & _EFLAGS_IF)

    def reg(self, name: str) -> int:
        """Read register *name* (``"eip"``, ``"esp"``, ...)."""
        reg = self._regs.get(name.lower())
        if reg is not None:
            return self._get(reg)
        return self.uc.reg_read(getattr(X, f"UC_X86_REG_{name.upper()}"))

    def set_reg(self, name: str, value: int) -> None:
        """Write register *name*; 32-bit registers are masked to 32 bits."""
        reg = self._regs.get(name.lower())
        if reg == self._rip and self._owed is not None:  # the CPU will not fetch the site: drop it now
            self.sync_core(*self._owed)
        if reg is not None:
            self._put(reg, value)
        else:
            self.uc.reg_write(getattr(X, f"UC_X86_REG_{name.upper()}"), value & 0xFFFFFFFF)
        if name.lower() in ("eip", "rip"):
            self.eip = value

    def sync_core(self, lo: int | None = None, hi: int | None = None) -> None:
        """Drop this CPU's translations of [lo, hi) (all text by default).

        All text is all the executable memory, so the default flushes the
        whole translation cache, which also rewinds Unicorn's code buffer:
        removing ranges only retires their code, and a long-lived engine
        that always removed all text grew by the size of every retranslation
        (tens of KB per call) up to the 1 GB buffer.
        """
        self._refetched = self._owed = None
        if self.drop_watch is not None:
            self.drop_watch(lo, hi)
        if lo is None and hi is None:
            status = uclib.uc_ctl(self._h, _TB_FLUSH)
        else:
            t0, t1 = self.machine.image.text
            status = uclib.uc_ctl(self._h, _TB_REMOVE_CACHE, ctypes.c_uint64(t0 if lo is None else lo),
                                  ctypes.c_uint64(t1 if hi is None else hi))
        if status:
            raise UcError(status)

    def refetch(self, lo: int, hi: int) -> None:
        """A serializing return's refetch of [lo, hi): :meth:`sync_core` of the range,
        or the same put off until it can make a difference.

        ``spin`` refetches its site on every trap, and the CPU returns to the
        site, translating the same bytes again: thousands of identical
        retranslations per exploration. When this CPU's last sync was this
        refetch of the same range and the machine counts text writes
        (:meth:`Machine.count_text_writes`) and saw none since, every
        translation the CPU holds of the range is of the bytes memory holds, and
        the one dropping would make before the CPU fetches there again would be
        redone from the same bytes. So the drop waits: the CPU's next fetch at
        *lo* (it stops there, or traps there again) makes it moot, and a text
        write before that performs it first (:meth:`_settle`), as if it had
        happened here.
        """
        writes = self.machine.text_writes
        if writes is not None and self._refetched == (lo, hi, writes):
            self._owed = (lo, hi)
            if self.drop_watch is not None:
                self.drop_watch(lo, hi)
            return
        self.sync_core(lo, hi)
        self._refetched = (lo, hi, writes)

    def _settle(self) -> None:
        """Before a text write: perform a refetch put off, unless the CPU fetched there since."""
        lo, hi = self._owed
        self._owed = None
        if self.eip != lo:  # stopped at lo: the engine translated lo's block to count its first instruction
            self.sync_core(lo, hi)

    # -- hooks (called from the engine through _guarded) ------------------------------
    def _die(self, addr: int, reason: str):
        self.crash = Crash(self._get(self._rip), addr, reason)
        _EMU_STOP(self._h)

    def _on_trap(self, intno):
        val = self._trap_val
        val[0] = val[1] = val[2] = 0  # 32-bit registers fill the low half
        _READ_BATCH(self._h, self._trap_in, self._trap_ptr, 3)
        eip, esp, flags = val
        if intno != 3:
            # Only int3 has a handler here; any other exception is an oops.
            return self._die(eip, f"exception {intno} at {eip:#010x}")
        if not self._do_int3_hooked:
            self._add_c_hook(UC_HOOK_CODE, self._callbacks[1], self._do_int3, self._do_int3)
            if self._x64:  # the entry's iretq checks the frame it returns through (trap64.iretq_check)
                cb = HOOK_CODE_CFUNC(_guarded(weakref.ref(self), iretq_check))
                for a in self._irets:
                    self._extra[self._add_c_hook(UC_HOOK_CODE, cb, a, a)] = cb  # lives as long as the engine
            self._do_int3_hooked = True
        if self._x64:
            return int3_frame64(self, eip, esp, flags)
        if not self._d0 <= esp - 12 < esp <= self._d1:  # same-privilege trap: EFLAGS, CS, EIP; no SS:ESP
            return self._die(esp - 12, f"double fault: no stack at {esp - 12:#010x}")
        m = self.machine
        if m.write_watch is not None:
            m._watched(esp - 12, 12)
        if esp & 3:
            m.write(esp - 12, np.array((eip, self._cs, flags), dtype=np.uint32).tobytes())
        else:
            o = (esp - 12 - self._base) >> 2
            m.u32[o], m.u32[o + 1], m.u32[o + 2] = eip, self._cs, flags
        val[0], val[1], val[2] = esp - 12, flags & ~(_EFLAGS_IF | _EFLAGS_TF), self._entry
        _WRITE_BATCH(self._h, self._trap_out, self._trap_ptr, 3)

    def _on_do_int3(self, address, size):
        m = self.machine
        regs = PtRegs(m, self._get(self._rarg))
        try:
            handled = m.handle_int3(self, regs)
        except KernelFault as f:
            return self._die(f.addr, f"oops in int3 handler: {f}")
        if not handled:
            self._die(regs.ip - 1, f"unhandled int3 at {m.image.name_at(regs.ip - 1)}")

    def _on_bad_access(self, access, address, size, value):
        self._fault = (address, _ACCESS.get(access, "access"))
        return False

    # -- the workload's records ------------------------------------------------
    def completed_calls(self) -> int:
        """Calls the workload has completed and logged (``thread_info.log_head``)."""
        return int(self.machine.u32[(self.ti + _TI["TI_LOG_HEAD"] - self._base) >> 2])

    def drain_array(self) -> np.ndarray:
        """Call records logged since the last drain, oldest first, as a copy of
        the log's rows: one row per call, columns in the order of the record
        fields (``fn, phase0, rb0, ...``, see defs.inc)."""
        head = self.completed_calls()
        n = EQU["LOG_N"]
        if head - self.drained > n:
            raise RuntimeError(f"cpu{self.index}: call log overrun; drain more often")
        words = EQU["LOG_N"] << EQU["CR_SHIFT"] >> 2
        base = (self.log - self._base) >> 2
        log = self.machine.u32[base:base + words].reshape(n, -1)
        rows = log[np.arange(self.drained, head) % n, :len(_CR_FIELDS)]
        self.drained = head
        return rows

    def drain(self) -> list[dict]:
        """Call records logged since the last drain (oldest first)."""
        out = []
        for row in self.drain_array().tolist():
            rec = dict(zip(_CR_FIELDS, row, strict=True))
            rec["cpu"] = self.index
            out.append(rec)
        return out

    def trace_records(self, start: int, end: int) -> np.ndarray:
        """Ring-buffer entries ``[start, end)`` as rows of (ip, parent_ip, cpu, seq)."""
        n = EQU["RB_N"]
        base = (self.rb + EQU["RB_RECS"] - self._base) >> 2
        recs = self.machine.u32[base:base + 4 * n].reshape(n, 4)
        return recs[np.arange(start, end) % n]

    def thread_info(self, field: str) -> int:
        """The thread_info field *field* (``"ncalls"``, ``"traps"``, ...) of this CPU."""
        return self.machine.read32(self.ti + _TI[f"TI_{field.upper()}"])


class Machine:
    """N emulated CPUs over one shared copy of a :class:`KernelImage`.

    *entry* picks the int3 entry (i386: ``"v5.1"`` or ``"v5.3"``, the default;
    x86_64: ``"v5.1"`` or ``"v5.2"``, the default). The int3
    handler is :attr:`int3_handler`, a callable ``(machine, cpu, regs) ->
    bool`` (see :mod:`workbench.kernel.int3`); with none installed every int3 is
    an oops. Raises :class:`ConfigError` for a CPU count outside
    [1, MAX_CPUS] or an unknown entry.

    By default a CPU keeps executing what it fetched until it syncs, the
    worst case x86 allows for cross-modifying code. With *coherent_fetch*
    every text write by the patcher is seen at the next fetch, as snooping
    hardware does in practice; the race simulator's windows assume that.
    """

    def __init__(self, image: KernelImage, ncpus: int = 1, entry: str | None = None, int3_handler=None,
                 coherent_fetch: bool = False):
        ncpus = int(check_range("cpus", ncpus, 1, EQU["MAX_CPUS"], integer=True))
        entries = ENTRIES_BY_ARCH[image.arch]
        self.entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
        self.image = image
        self._pristine = np.frombuffer(image.memory, dtype=np.uint8)
        self.mem = self._pristine.copy()  # the shared memory every CPU maps
        self.u32 = self.mem.view(np.uint32)
        self.int3_handler = int3_handler
        self.text_poke_state = None  # set by workbench.kernel.text_poke while a patch is in flight
        self.coherent_fetch = bool(coherent_fetch)
        self._base, self._end = image.base, image.base + len(self.mem)
        #: [lo, hi) address ranges whose host writes (patcher, handlers, trap frames)
        #: are counted in :attr:`write_hits`; None watches nothing (the default)
        self.write_watch: tuple[tuple[int, int], ...] | None = None
        self.write_hits = 0
        #: host writes (write, write32) that touched text since count_text_writes();
        #: None: not counted (the default), and Cpu.refetch always syncs
        self.text_writes: int | None = None
        self._t0, self._t1 = image.text
        self._d0, self._d1 = image.data
        self.cpus = [Cpu(self, i) for i in range(ncpus)]

    def close(self) -> None:
        """Release every CPU's Unicorn engine now (also done when the machine is dropped)."""
        for cpu in self.cpus:
            cpu.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def idle_cpu_memory(self) -> list[tuple[int, int]]:
        """[lo, hi) address ranges of the per-CPU areas (kernel stack, call log, ring
        buffer, workload list) of the CPUs the image has room for but this machine
        does not run: nothing but a stray store writes there."""
        im, n, top = self.image, len(self.cpus), EQU["MAX_CPUS"]
        out = []
        for sym, stride in (("cpu_stacks", im.equ["THREAD_SIZE"]), ("call_logs", EQU["LOG_N"] << EQU["CR_SHIFT"]),
                            ("ring_buffers", EQU["RB_SIZE"]), ("workload_calls", 8 * 4096)):
            if n < top:
                out.append((im.sym(sym) + n * stride, im.sym(sym) + top * stride))
        return sorted(out)

    # -- host access (the patcher and the handlers' C code) ------------------
    def _off(self, addr: int, size: int) -> int:
        off = addr - self.image.base
        if off < 0 or off + size > len(self.mem):
            raise KernelFault(addr, "access")
        return off

    def read(self, addr: int, size: int) -> bytes:
        """*size* bytes at *addr*; raises KernelFault outside the image."""
        off = self._off(addr, size)
        return self.mem[off:off + size].tobytes()

    def _watched(self, addr: int, size: int) -> None:
        end = addr + size
        for lo, hi in self.write_watch:
            if addr < hi and lo < end:
                self.write_hits += 1
                return

    def count_text_writes(self) -> None:
        """Count host writes to text in :attr:`text_writes` from now on, so that
        :meth:`Cpu.refetch` can skip refetching bytes no write changed. The caller
        promises that memory it changes in other ways (``mem``, ``u32``) is followed
        by a :meth:`sync_core` of what changed before any CPU runs."""
        self.text_writes = 0

    def _text_write(self) -> None:
        for cpu in self.cpus:
            if cpu._owed is not None:
                cpu._settle()
        self.text_writes += 1

    def write(self, addr: int, data: bytes) -> None:
        """Write through the kernel's writable alias (text_poke): no permission check."""
        if self.write_watch is not None:
            self._watched(addr, len(data))
        if self.text_writes is not None and addr < self._t1 and self._t0 < addr + len(data):
            self._text_write()
        off = self._off(addr, len(data))
        self.mem[off:off + len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)

    def read32(self, addr: int) -> int:
        """The 32-bit little-endian word at *addr*."""
        if not addr & 3 and self._base <= addr < self._end:
            return int(self.u32[(addr - self._base) >> 2])
        return int.from_bytes(self.read(addr, 4), "little")

    def write32(self, addr: int, value: int) -> None:
        """Store the 32-bit word *value* (masked) at *addr*, as :meth:`write` does."""
        if self.write_watch is not None:
            self._watched(addr, 4)
        if self.text_writes is not None and addr < self._t1 and self._t0 < addr + 4:
            self._text_write()
        if not addr & 3 and self._base <= addr < self._end:
            self.u32[(addr - self._base) >> 2] = value & 0xFFFFFFFF
        else:
            self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def kernel_read32(self, addr: int) -> int:
        """A load by kernel C code: faults outside mapped memory."""
        try:
            return self.read32(addr)
        except KernelFault:
            raise KernelFault(addr, "read") from None

    def kernel_read64(self, addr: int) -> int:
        """An 8-byte load by kernel C code (x86_64): faults outside mapped memory."""
        return self.kernel_read32(addr) | self.kernel_read32(addr + 4) << 32

    def kernel_write64(self, addr: int, value: int) -> None:
        """An 8-byte store by kernel C code (x86_64): faults on read-only text or unmapped memory."""
        if not (self._d0 <= addr and addr + 8 <= self._d1):
            raise KernelFault(addr, "write")
        self.write32(addr, value & 0xFFFFFFFF)
        self.write32(addr + 4, (value >> 32) & 0xFFFFFFFF)

    def kernel_write32(self, addr: int, value: int) -> None:
        """A store by kernel C code: faults on read-only text or unmapped memory."""
        if not (self._d0 <= addr and addr + 4 <= self._d1):
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
