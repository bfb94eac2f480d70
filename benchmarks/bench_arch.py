"""The x86_64 machine beside the i386 one: traced calls and the seed's exploration.

1. Traced calls per second through Machine, on each arch, against a bare
   Unicorn engine in the same mode (64-bit for x86_64) over a copy of the
   same memory, no hooks, sliced the same way (the same C calls Machine
   uses): the Machine/bare ratio of each arch, and x86_64's ratio over
   i386's (the aim: x86_64 within 20 % of i386, i.e. >= 0.8). State:
   livepatch + tracer, one CPU calling do_IRQ in a loop (ftrace_regs_caller
   -> ftrace_ops_list_func -> tracer + livepatch -> new body), the same path
   on both arches.
2. The seed's exhaustive exploration (every strategy, the arch's latest
   entry, do_IRQ and an ordinary function), best of two, on each arch; the
   aim: x86_64 within 2x of i386.

Everything runs in this process, the arches alternating within each
repetition, best of each.
"""

import ctypes
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
REPEAT = 7
SLICES = (200, 10_000)
ARCHES = ("i386", "x86_64")
_REGS = {"i386": ("cs", "ds", "es", "ss", "esp", "ebp", "esi", "edi", "ebx", "eax", "ecx", "edx", "eflags"),
         "x86_64": ("cs", "ds", "es", "ss", "rsp", "rbp", "rsi", "rdi", "rbx", "rax", "rcx", "rdx", "rflags",
                    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")}


def _machine(arch):
    im = build_image(8, arch)
    m = Machine(im, 1)
    FtraceState(im, make_ops("livepatch,tracer")).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(im.functions["do_IRQ"].site, 0)])
    cpu.run(1000)
    return m


def machine_rate(m, slice_insns):
    cpu = m.cpus[0]
    c0 = cpu.completed_calls()
    t = time.perf_counter()
    for _ in range(INSNS // slice_insns):
        cpu.run(slice_insns)
        if cpu.completed_calls() - cpu.drained > 512:
            cpu.drain_array()
    dt = time.perf_counter() - t
    assert cpu.crash is None
    return (cpu.completed_calls() - c0) / dt


class Bare:
    """A plain engine in the arch's mode over a copy of the machine's memory: no hooks."""

    def __init__(self, m, arch):
        im, cpu = m.image, m.cpus[0]
        self.mem = m.mem.copy()
        uc = Uc(UC_ARCH_X86, UC_MODE_64 if arch == "x86_64" else UC_MODE_32)
        (t0, t1), (d0, d1) = im.text, im.data
        uc.mem_map_ptr(t0, t1 - t0, UC_PROT_READ | UC_PROT_EXEC, self.mem.ctypes.data + (t0 - im.base))
        uc.mem_map_ptr(d0, d1 - d0, UC_PROT_READ | UC_PROT_WRITE, self.mem.ctypes.data + (d0 - im.base))
        gdt = im.sym("gdt_table")
        uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, im.sym("gdt_table_end") - gdt - 1, 0))
        for r in _REGS[arch]:
            uc.reg_write(getattr(X, f"UC_X86_REG_{r.upper()}"), cpu.uc.reg_read(getattr(X, f"UC_X86_REG_{r.upper()}")))
        self.uc, self.eip = uc, cpu.eip
        self.pc = X.UC_X86_REG_RIP if arch == "x86_64" else X.UC_X86_REG_EIP
        self.head = (cpu.ti + 8 - im.base) >> 2  # thread_info.log_head
        self.u32 = self.mem.view("uint32")

    def rate(self, slice_insns):
        h, val = self.uc._uch, ctypes.c_uint64(0)
        start, read, pval = uclib.uc_emu_start, uclib.uc_reg_read, ctypes.byref(val)
        eip, c0 = self.eip, int(self.u32[self.head])
        t = time.perf_counter()
        for _ in range(INSNS // slice_insns):
            start(h, eip, 0, 0, slice_insns)
            read(h, self.pc, pval)
            eip = val.value & 0xFFFFFFFF
        dt = time.perf_counter() - t
        self.eip = eip
        return (int(self.u32[self.head]) - c0) / dt


def main():
    ms = {a: _machine(a) for a in ARCHES}
    bares = {a: Bare(ms[a], a) for a in ARCHES}
    for a in ARCHES:
        for s in SLICES:
            machine_rate(ms[a], s)
            bares[a].rate(s)
    best = {}
    for _ in range(REPEAT):
        for s in SLICES:
            for a in ARCHES:
                for key, rate in (((a, "machine", s), machine_rate(ms[a], s)), ((a, "bare", s), bares[a].rate(s))):
                    best[key] = max(best.get(key, 0.0), rate)
    print(f"1. traced calls/s, {INSNS:,} instructions a measurement, best of {REPEAT}, interleaved")
    print(f"{'slice':>7} {'arch':>7} {'Machine':>10} {'bare':>10} {'ratio':>6}")
    for s in SLICES:
        r = {}
        for a in ARCHES:
            mach, bare = best[a, "machine", s], best[a, "bare", s]
            r[a] = mach / bare
            print(f"{s:>7,} {a:>7} {mach:>10,.0f} {bare:>10,.0f} {r[a]:>6.2f}")
        rel = r["x86_64"] / r["i386"]
        print(f"{s:>7,} x86_64 ratio / i386 ratio: {rel:.2f}  aim >= 0.8: {'PASS' if rel >= 0.8 else 'MISS'}")
    print("2. the seed's exhaustive exploration, every strategy, best of 2")
    secs = {}
    for _ in range(2):
        for a in ARCHES:
            t = time.perf_counter()
            explore("seed", "all", None, "exhaustive", progress=False, arch=a)
            secs[a] = min(secs.get(a, 1e9), time.perf_counter() - t)
    rel = secs["x86_64"] / secs["i386"]
    print(f"   i386 {secs['i386']:.1f} s, x86_64 {secs['x86_64']:.1f} s: x86_64 / i386 = {rel:.2f}  "
          f"aim <= 2: {'PASS' if rel <= 2 else 'MISS'}")


if __name__ == "__main__":
    main()
