"""The x86_64 machine beside the i386 one: traced calls and the seed's exploration.

1. A traced call through Machine on each arch, against bare Unicorn in the
   arch's own mode (``UC_MODE_32`` for i386, ``UC_MODE_64`` for x86_64)
   running equivalent straight-line code: a loop-free run of the
   instruction kinds a traced call executes (pushes, pops, loads and
   stores, register arithmetic), assembled for the mode by GNU as, as many
   instructions as one traced call of that arch (its jump back included),
   so that slices start at the same offsets into it as into the traced
   call and both reuse the same number of translated blocks (a run of
   another length would make a slice start at a new offset every time,
   and time Unicorn's translator). Both are sliced the same way:
   ``uc_emu_start`` with the same instruction count per slice, reading the
   instruction pointer after each slice to resume there (the C calls
   Machine uses).
   State: livepatch + tracer, one CPU calling do_IRQ in a loop
   (ftrace_regs_caller -> ftrace_ops_list_func -> tracer + livepatch -> new
   body), the same path on both arches. Printed per arch and slice size:
   traced calls per second, instructions per traced call, Machine's and the
   bare engine's instructions per second and their ratio; the aim is
   x86_64's ratio within 20 % of i386's (x86_64 / i386 >= 0.8). A second
   baseline, the same traced-call code in a bare engine of the same mode
   (no hooks, a copy of the same memory), says what the machine's own hooks
   cost on each arch.
2. The seed's exhaustive exploration (every strategy, the arch's latest
   entry, do_IRQ and an ordinary function) on each arch, best of three;
   the aim: x86_64 within 2x of i386.

Everything runs in this process, the arches alternating within each
repetition, best of each. Times are this thread's CPU time
(``time.thread_time``; the exploration: the process's, ``time.process_time``,
as it runs in this one thread too), so that other processes on a shared
machine do not decide the ratios.
"""

import ctypes
import os
import subprocess
import tempfile
import time

from unicorn import UC_ARCH_X86, UC_MODE_32, UC_MODE_64, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc
from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uclib

from workbench.emulate.explore import explore
from workbench.emulate.watch import make_ops
from workbench.kernel.ftrace import FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.machine import Machine

INSNS = 2_000_000
REPEAT = 9
SLICES = (200, 10_000)
ARCHES = ("i386", "x86_64")
AIM_CALL, AIM_EXPLORE = 0.8, 2.0
_REGS = {"i386": ("cs", "ds", "es", "ss", "esp", "ebp", "esi", "edi", "ebx", "eax", "ecx", "edx", "eflags"),
         "x86_64": ("cs", "ds", "es", "ss", "rsp", "rbp", "rsi", "rdi", "rbx", "rax", "rcx", "rdx", "rflags",
                    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")}
_MODE = {"i386": UC_MODE_32, "x86_64": UC_MODE_64}
_PC = {"i386": X.UC_X86_REG_EIP, "x86_64": X.UC_X86_REG_RIP}


def _machine(arch):
    im = build_image(8, arch)
    m = Machine(im, 1)
    FtraceState(im, make_ops("livepatch,tracer")).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(im.functions["do_IRQ"].site, 0)])
    cpu.run(1000)  # past the first call: the state every loop starts from
    return m


def machine_rate(m, slice_insns):
    """``(traced calls, CPU seconds)`` of INSNS instructions through Machine.run in slices."""
    cpu = m.cpus[0]
    c0 = cpu.completed_calls()
    t = time.thread_time()
    for _ in range(INSNS // slice_insns):
        cpu.run(slice_insns)
        if cpu.completed_calls() - cpu.drained > 512:
            cpu.drain_array()  # what an exploration does with the log
    dt = time.thread_time() - t
    assert cpu.crash is None
    return cpu.completed_calls() - c0, dt


def _sliced(uc, pc_reg, eip, slice_insns):
    """Run INSNS instructions of *uc* from *eip* in slices as Machine does; ``(next eip, CPU seconds)``."""
    h, val = uc._uch, ctypes.c_uint64(0)
    start, read, pval = uclib.uc_emu_start, uclib.uc_reg_read, ctypes.byref(val)
    t = time.thread_time()
    for _ in range(INSNS // slice_insns):
        if start(h, eip, 0, 0, slice_insns):
            raise RuntimeError(f"bare engine stopped at {eip:#x}")
        read(h, pc_reg, pval)
        eip = val.value & 0xFFFFFFFF
    return eip, time.thread_time() - t


class SameCode:
    """The machine's traced-call code in a plain engine of the arch's mode over a copy of its
    memory, mapped the same, started from its registers: no hooks."""

    def __init__(self, m, arch):
        im, cpu = m.image, m.cpus[0]
        self.mem = m.mem.copy()
        uc = Uc(UC_ARCH_X86, _MODE[arch])
        (t0, t1), (d0, d1) = im.text, im.data
        uc.mem_map_ptr(t0, t1 - t0, UC_PROT_READ | UC_PROT_EXEC, self.mem.ctypes.data + (t0 - im.base))
        uc.mem_map_ptr(d0, d1 - d0, UC_PROT_READ | UC_PROT_WRITE, self.mem.ctypes.data + (d0 - im.base))
        gdt = im.sym("gdt_table")
        uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, im.sym("gdt_table_end") - gdt - 1, 0))
        for r in _REGS[arch]:
            reg = getattr(X, f"UC_X86_REG_{r.upper()}")
            uc.reg_write(reg, cpu.uc.reg_read(reg))
        self.uc, self.eip, self.pc = uc, cpu.eip, _PC[arch]
        self.head = (cpu.ti + 8 - im.base) >> 2  # thread_info.log_head
        self.u32 = self.mem.view("uint32")

    def rate(self, slice_insns):
        """``(traced calls, CPU seconds)`` of INSNS instructions."""
        c0 = int(self.u32[self.head])
        self.eip, dt = _sliced(self.uc, self.pc, self.eip, slice_insns)
        return int(self.u32[self.head]) - c0, dt


#: one group of the straight-line run: the instruction kinds of a traced call (a push and a pop,
#: a load through the stack pointer, a store and a load of memory, register arithmetic)
_GROUP = {"i386": ("push %eax", "mov (%esp), %eax", "add %eax, %ebx", "pop %ecx", "mov %ecx, 0x{var:x}",
                   "add $1, %edx", "xor %edx, %esi", "mov 0x{var:x}, %edi"),
          "x86_64": ("push %rax", "mov (%rsp), %rax", "add %rax, %rbx", "pop %rcx", "mov %rcx, 0x{var:x}",
                     "add $1, %rdx", "xor %rdx, %rsi", "mov 0x{var:x}, %rdi")}
_CODE, _DATA = 0x100000, 0x400000


def _straight_code(arch, n_insns):
    """The straight-line run for *arch*'s mode: *n_insns* instructions, the last a jump back to the
    first (bytes); whole groups, then register arithmetic (the stack stays balanced)."""
    groups, rest = divmod(n_insns - 1, len(_GROUP[arch]))
    body = [i.format(var=_DATA + 0x100) for i in _GROUP[arch]] * groups + [_GROUP[arch][5]] * rest
    src = f".code{32 if arch == 'i386' else 64}\n.text\nstart:\n" + "\n".join(body) + "\njmp start\n"
    with tempfile.TemporaryDirectory() as d:
        s, o, b = (os.path.join(d, n) for n in ("s.S", "s.o", "s.bin"))
        with open(s, "w") as f:
            f.write(src)
        subprocess.run(["as", "--32" if arch == "i386" else "--64", "-o", o, s], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", o, b], check=True)
        with open(b, "rb") as f:
            return f.read()


class Straight:
    """Bare Unicorn in the arch's mode over a straight-line run of *n_insns*, no hooks, with a stack."""

    def __init__(self, arch, n_insns):
        code = _straight_code(arch, n_insns)
        uc = Uc(UC_ARCH_X86, _MODE[arch])
        uc.mem_map(_CODE, (len(code) + 0xFFF) & ~0xFFF, UC_PROT_READ | UC_PROT_EXEC)
        uc.mem_write(_CODE, code)
        uc.mem_map(_DATA, 0x10000, UC_PROT_READ | UC_PROT_WRITE)
        uc.reg_write(X.UC_X86_REG_ESP if arch == "i386" else X.UC_X86_REG_RSP, _DATA + 0x8000)
        self.uc, self.eip, self.pc = uc, _CODE, _PC[arch]

    def rate(self, slice_insns):
        """CPU seconds of INSNS instructions."""
        self.eip, dt = _sliced(self.uc, self.pc, self.eip, slice_insns)
        return dt


def main():
    ms = {a: _machine(a) for a in ARCHES}
    same = {a: SameCode(ms[a], a) for a in ARCHES}
    per_call = {}
    for a in ARCHES:  # instructions per traced call: the straight-line run is as long
        n, _ = machine_rate(ms[a], SLICES[0])
        per_call[a] = round(INSNS / n)
    straight = {a: Straight(a, per_call[a]) for a in ARCHES}
    for a in ARCHES:  # warm every path once, translations included
        for s in SLICES:
            machine_rate(ms[a], s)
            same[a].rate(s)
            straight[a].rate(s)
    best, calls = {}, {}
    for _ in range(REPEAT):
        for s in SLICES:
            for a in ARCHES:
                n, t = machine_rate(ms[a], s)
                calls[a, s] = n
                best[a, "machine", s] = min(best.get((a, "machine", s), 1e9), t)
                n_same, t = same[a].rate(s)
                assert abs(n_same - n) <= 1, (a, s, n_same, n)  # the same code: the same calls
                best[a, "same", s] = min(best.get((a, "same", s), 1e9), t)
                best[a, "straight", s] = min(best.get((a, "straight", s), 1e9), straight[a].rate(s))
    print(f"1. a traced call, {INSNS:,} instructions a measurement, best of {REPEAT} (thread CPU time), "
          "interleaved")
    print(f"{'slice':>7} {'arch':>7} {'calls/s':>9} {'insns/call':>10} {'Machine Minsn/s':>15} "
          f"{'straight Minsn/s':>16} {'ratio':>6} {'same code Minsn/s':>17} {'Machine/same':>12}")
    ok = True
    for s in SLICES:
        r = {}
        for a in ARCHES:
            mach, st, sc = (INSNS / best[a, k, s] / 1e6 for k in ("machine", "straight", "same"))
            r[a] = mach / st
            print(f"{s:>7,} {a:>7} {calls[a, s] / best[a, 'machine', s]:>9,.0f} {INSNS / calls[a, s]:>10.1f} "
                  f"{mach:>15.2f} {st:>16.2f} {r[a]:>6.3f} {sc:>17.2f} {mach / sc:>12.2f}")
        rel = r["x86_64"] / r["i386"]
        ok &= rel >= AIM_CALL
        print(f"{s:>7,} x86_64 ratio / i386 ratio: {rel:.2f}  aim >= {AIM_CALL}: "
              f"{'PASS' if rel >= AIM_CALL else 'MISS'}")
    print("2. the seed's exhaustive exploration, every strategy, best of 3 (process CPU time)")
    secs = {}
    for a in ARCHES:  # images built and cached, modules loaded: not part of the timing
        explore("seed", strategies="all", entry=None, mode="exhaustive", progress=False, arch=a)
    for _ in range(3):
        for a in ARCHES:
            t = time.process_time()
            explore("seed", strategies="all", entry=None, mode="exhaustive", progress=False, arch=a)
            secs[a] = min(secs.get(a, 1e9), time.process_time() - t)
    rel = secs["x86_64"] / secs["i386"]
    ok &= rel <= AIM_EXPLORE
    print(f"   i386 {secs['i386']:.2f} s, x86_64 {secs['x86_64']:.2f} s: x86_64 / i386 = {rel:.2f}  "
          f"aim <= {AIM_EXPLORE:g}: {'PASS' if rel <= AIM_EXPLORE else 'MISS'}")
    print("all aims met" if ok else "an aim was missed")


if __name__ == "__main__":
    main()
