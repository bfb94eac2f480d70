"""The x86_64 hardware side of an int3 trap: the frame a 64-bit CPU pushes.

Models what Intel SDM vol. 3, 6.14.2 ("64-bit mode stack frame") says a
64-bit CPU does when it delivers an interrupt or exception without an IST
stack (int3 on Linux since d8ba61ba58c8, v4.16, ``arch/x86/kernel/idt.c``):
align RSP down to 16 bytes, push SS, RSP, RFLAGS, CS and RIP (SS:RSP also
at the same privilege level), clear IF and TF, and enter the gate's handler,
here the machine's ``int3_entry_v51`` or ``int3_entry_v52``.
"""

from __future__ import annotations

import struct

from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uclib  # the binding's libunicorn (pinned <2.2, as machine.py)

__all__ = ["REGS64", "int3_frame64"]

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
