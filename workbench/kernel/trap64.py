"""The x86_64 hardware side of an int3 trap: the frame a 64-bit CPU pushes.

Models what Intel SDM vol. 3, 6.14.2 ("64-bit mode stack frame") says a
64-bit CPU does when it delivers an interrupt or exception without an IST
stack (int3 on Linux since d8ba61ba58c8, 2015, ``idtentry int3`` in ``arch/x86/entry/entry_64.S``):
align RSP down to 16 bytes, push SS, RSP, RFLAGS, CS and RIP (SS:RSP also
at the same privilege level), clear IF and TF, and enter the gate's handler,
here the machine's ``int3_entry_v51`` or ``int3_entry_v52``; and the
checks ``iretq`` makes of the frame it returns through (SDM vol. 2, IRET:
in 64-bit mode a return to CPL 0 pops SS:RSP and loads SS, raising #GP if
its selector's RPL is not 0, it lies past the GDT limit, or its descriptor
is not a present, writable data segment of DPL 0; a null SS is allowed).
The engine does not always report a fault raised inside ``iretq``, so the
machine checks those conditions at the entry's ``iretq`` (:func:`iretq_check`).
"""

from __future__ import annotations

import struct

from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uclib  # the binding's libunicorn (pinned <2.2, as machine.py)

__all__ = ["REGS64", "int3_frame64", "iretq_check"]

_IF_TF = (1 << 9) | (1 << 8)

#: RIP, RSP, RDI (do_int3's regs argument), RFLAGS, and register names for Cpu.reg()
REGS64 = (X.UC_X86_REG_RIP, X.UC_X86_REG_RSP, X.UC_X86_REG_RDI, X.UC_X86_REG_RFLAGS,
          {**{n: getattr(X, f"UC_X86_REG_{n.upper()}")
              for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "rip", "rflags",
                        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")},
           **{e: getattr(X, f"UC_X86_REG_R{e[1:].upper()}")
              for e in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip")},
           "eflags": X.UC_X86_REG_RFLAGS})


def int3_frame64(cpu, rip: int, rsp: int, flags: int) -> None:
    """Deliver int3 on *cpu* (a :class:`workbench.kernel.machine.Cpu` in 64-bit mode):
    push the 5-word frame below the 16-byte aligned RSP and enter the int3 entry."""
    top = rsp & ~0xF
    frame = top - 40
    if not cpu._d0 <= frame < top <= cpu._d1:  # noqa: SLF001 - the CPU's own bounds
        return cpu._die(frame, f"double fault: no stack at {frame:#010x}")
    m = cpu.machine
    if m.write_watch is not None:
        m._watched(frame, 40)
    m.write(frame, struct.pack("<5Q", rip, cpu._cs, flags, rsp, cpu._ss))
    val = cpu._trap_val
    val[0], val[1], val[2] = frame, flags & ~_IF_TF, cpu._entry
    uclib.uc_reg_write_batch(cpu._h, cpu._trap_out, cpu._trap_ptr, 3)


def _ss_fault(cpu, ss: int) -> str | None:
    """Why loading *ss* on an iretq to CPL 0 raises #GP, or None if it does not."""
    if ss & 0xFFFF != ss:
        ss &= 0xFFFF  # the selector is the low 16 bits of the popped word
    if ss & ~3 == 0:
        return None if ss & 3 == 0 else f"null SS with RPL {ss & 3}"
    if ss & 3:
        return f"SS selector {ss:#06x}: RPL {ss & 3} is not CPL 0"
    if ss & 4:
        return f"SS selector {ss:#06x}: an LDT selector (no LDT)"
    im = cpu.machine.image
    gdt, limit = im.sym("gdt_table"), im.sym("gdt_table_end") - im.sym("gdt_table") - 1
    if (ss & ~7) + 7 > limit:
        return f"SS selector {ss:#06x}: past the GDT limit {limit:#x}"
    desc = int.from_bytes(cpu.machine.read(gdt + (ss & ~7), 8), "little")
    access = (desc >> 40) & 0xFF
    if access & 0x80 == 0 or access & 0x18 != 0x10 or access & 0x2 == 0 or access & 0x60:
        return f"SS selector {ss:#06x}: not a present, writable, DPL 0 data segment"
    return None


def iretq_check(cpu, address: int, size: int) -> None:
    """At the int3 entry's ``iretq``: #GP (a crash) if the frame's SS cannot be loaded."""
    rsp = cpu._get(cpu._rsp)  # noqa: SLF001 - the CPU's own registers
    ss = int.from_bytes(cpu.machine.read(rsp + 32, 8), "little")
    why = _ss_fault(cpu, ss)
    if why is not None:
        cpu._die(address, f"general protection fault at iretq ({address:#010x}): {why}")
