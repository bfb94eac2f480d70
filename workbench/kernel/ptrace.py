"""``struct pt_regs`` of i386 or x86_64, as a view on emulated memory.

Models ``arch/x86/include/asm/ptrace.h``. A :class:`PtRegs` reads and writes
the frame that the int3 entry built on an emulated CPU's stack (68 bytes of
32-bit words on i386, 168 bytes of 64-bit words on x86_64), so a handler
strategy changes exactly what the entry code will restore.
"""

from __future__ import annotations

from workbench.kernel.layout import EQU, PT_REGS_FIELDS, PT_REGS_FIELDS_X86_64, pt_offset

__all__ = ["PtRegs", "PT_REGS_SIZE"]

PT_REGS_SIZE = EQU["PT_SIZE"]
_OFFSET = {f: pt_offset(f) for f in PT_REGS_FIELDS}  # looked up on every access of a trap's handler
_OFFSET64 = {f: pt_offset(f, "x86_64") for f in PT_REGS_FIELDS_X86_64}


class PtRegs:
    """``struct pt_regs *regs`` at *addr* in *machine*'s memory.

    Attribute access (``regs.ip``, ``regs.sp``, ...) reads or writes the
    field in emulated memory. Writes go through
    :meth:`workbench.kernel.machine.Machine.kernel_write32`, so a frame placed
    somewhere unwritable faults like the kernel would
    (:class:`workbench.kernel.machine.KernelFault`).
    """

    __slots__ = ("machine", "addr", "wide")

    def __init__(self, machine, addr: int):
        object.__setattr__(self, "machine", machine)
        object.__setattr__(self, "addr", addr)
        #: 64-bit fields (x86_64): ``unsigned long`` is 8 bytes
        object.__setattr__(self, "wide", machine.image.arch == "x86_64")

    @property
    def long_size(self) -> int:
        """``sizeof(unsigned long)``: 4 on i386, 8 on x86_64."""
        return 8 if self.wide else 4

    def __getattr__(self, name):
        if self.wide:
            off = _OFFSET64.get(name)
            if off is None:
                raise AttributeError(name)
            return self.machine.kernel_read64(self.addr + off)
        off = _OFFSET.get(name)
        if off is None:
            raise AttributeError(name)
        return self.machine.kernel_read32(self.addr + off)

    def __setattr__(self, name, value):
        if self.wide:
            off = _OFFSET64.get(name)
            if off is None:
                raise AttributeError(f"struct pt_regs has no member {name!r}")
            self.machine.kernel_write64(self.addr + off, value & 0xFFFFFFFFFFFFFFFF)
            return
        off = _OFFSET.get(name)
        if off is None:
            raise AttributeError(f"struct pt_regs has no member {name!r}")
        self.machine.kernel_write32(self.addr + off, value & 0xFFFFFFFF)

    def as_dict(self) -> dict[str, int]:
        """Every field by name."""
        return {f: getattr(self, f) for f in (PT_REGS_FIELDS_X86_64 if self.wide else PT_REGS_FIELDS)}

    def __repr__(self):
        return "PtRegs(" + ", ".join(f"{k}={v:#x}" for k, v in self.as_dict().items()) + ")"
