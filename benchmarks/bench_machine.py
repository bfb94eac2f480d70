"""Emulated traced calls per second through Machine, against bare Unicorn loops.

State: livepatch (own trampoline) + tracer, one CPU calling do_IRQ in a loop
(ftrace_regs_caller -> ftrace_ops_list_func -> tracer + livepatch -> new
body). The baselines are the simplest code doing the same work: a plain
Unicorn engine (the binding's public API) over a copy of the same memory
with the same map (text read+exec, data read+write), no hooks, started from
the same registers, kept across measurements and warmed as the machine is
(a fresh engine would time its own translation of the loop), and

* **sliced**: ``emu_start`` with the same instruction count per slice,
  reading EIP after each slice to resume there (what any sliced loop must
  do), once through the binding's methods and once through the same direct
  C calls Machine uses; the aims are judged against the faster of the two;
* **unsliced**: one ``emu_start`` for all the instructions (the ceiling).

Machine runs the same slices with its int3, trap and fault hooks installed
and drains the call log as an exploration does. Everything runs in this
process, the three loops (and the unsliced one) alternating within each
repetition, best of each; the ratios are what the workbench costs. The
slice sizes are the ones the workbench uses: 200 (``patch_gap`` and
``slice_mean`` of explorations), 1,000 and 10,000.
"""

import ctypes
import time

from unicorn import UC_ARCH_X86, UC_MODE_32, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc
from unicorn import x86_const as X

from unicorn.unicorn_py3.unicorn import uclib

from workbench.emulate.watch import make_ops
from workbench.kernel.ftrace import FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.machine import Machine

INSNS = 4_000_000
REPEAT = 9  # best of, interleaved: other processes share the cores
SLICES = (200, 1000, 10_000)
AIMS = {200: 0.8, 10_000: 0.9}
_REGS = ("cs", "ds", "es", "ss", "esp", "ebp", "esi", "edi", "ebx", "eax", "ecx", "edx", "eflags")


def _machine():
    im = build_image(8)
    m = Machine(im, 1)
    FtraceState(im, make_ops("livepatch,tracer")).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(im.functions["do_IRQ"].site, 0)])
    cpu.run(1000)  # past the first call: the state both loops start from
    return m


def machine_rate(m, slice_insns: int) -> float:
    """Traced calls per second through Machine.run in slices of *slice_insns*."""
    cpu = m.cpus[0]
    drain = getattr(cpu, "drain_array", cpu.drain)  # (drain alone on checkouts before drain_array)
    c0 = cpu.completed_calls()
    t = time.perf_counter()
    for _ in range(INSNS // slice_insns):
        cpu.run(slice_insns)
        if cpu.completed_calls() - cpu.drained > 512:
            drain()  # what an exploration does with the log
    dt = time.perf_counter() - t
    assert cpu.crash is None
    return (cpu.completed_calls() - c0) / dt


class Bare:
    """A plain engine over a copy of the machine's memory, mapped the same, started
    from its registers: no hooks. It lives across measurements and is warmed like
    the machine, so that neither pays for translating the loop inside a timing."""

    def __init__(self, m):
        im, cpu = m.image, m.cpus[0]
        self.mem = m.mem.copy()
        uc = Uc(UC_ARCH_X86, UC_MODE_32)
        (t0, t1), (d0, d1) = im.text, im.data
        uc.mem_map_ptr(t0, t1 - t0, UC_PROT_READ | UC_PROT_EXEC, self.mem.ctypes.data + (t0 - im.base))
        uc.mem_map_ptr(d0, d1 - d0, UC_PROT_READ | UC_PROT_WRITE, self.mem.ctypes.data + (d0 - im.base))
        gdt = im.sym("gdt_table")
        uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, im.sym("gdt_table_end") - gdt - 1, 0))
        for r in _REGS:
            uc.reg_write(getattr(X, f"UC_X86_REG_{r.upper()}"), cpu.reg(r))
        self.uc, self.eip = uc, cpu.eip
        self.head = (cpu.ti + 8 - im.base) >> 2  # thread_info.log_head
        self.u32 = self.mem.view("uint32")

    def rate(self, slice_insns: int | None, direct: bool = False) -> float:
        """Calls per second: sliced like Machine, or in one emu_start (None); *direct*:
        call libunicorn's emu_start and reg_read without the binding's methods."""
        uc, eip = self.uc, self.eip
        c0 = int(self.u32[self.head])
        t = time.perf_counter()
        if slice_insns is None:
            uc.emu_start(eip, 0, count=INSNS)
            eip = uc.reg_read(X.UC_X86_REG_EIP)
        elif direct:
            h, val = uc._uch, ctypes.c_uint64(0)
            start, read, pval = uclib.uc_emu_start, uclib.uc_reg_read, ctypes.byref(val)
            for _ in range(INSNS // slice_insns):
                start(h, eip, 0, 0, slice_insns)
                read(h, X.UC_X86_REG_EIP, pval)
                eip = val.value & 0xFFFFFFFF
        else:
            for _ in range(INSNS // slice_insns):
                uc.emu_start(eip, 0, count=slice_insns)
                eip = uc.reg_read(X.UC_X86_REG_EIP)
        dt = time.perf_counter() - t
        self.eip = eip
        return (int(self.u32[self.head]) - c0) / dt


def main():
    m = _machine()
    bare = Bare(m)
    for s in SLICES:  # warm every path once, translations included
        machine_rate(m, s)
        bare.rate(s)
    bare.rate(None)
    print(f"{INSNS:,} instructions a measurement, best of {REPEAT}, interleaved")
    print(f"{'slice (insns)':>14} {'Machine calls/s':>16} {'bare binding':>13} {'bare direct':>12} "
          f"{'ratio':>6} {'Machine/unsliced':>17} {'bare/unsliced':>14}")
    best = {}
    for _ in range(REPEAT):
        for s in SLICES:
            got = {("machine", s): machine_rate(m, s), ("binding", s): bare.rate(s),
                   ("direct", s): bare.rate(s, direct=True)}
            for key, rate in got.items():
                best[key] = max(best.get(key, 0.0), rate)
        best["unsliced"] = max(best.get("unsliced", 0.0), bare.rate(None))
    ok, unsliced = True, best["unsliced"]
    for s in SLICES:
        mach, bare_b, bare_d = best["machine", s], best["binding", s], best["direct", s]
        fastest = max(bare_b, bare_d)
        r = mach / fastest
        aim = AIMS.get(s)
        verdict = "" if aim is None else f"  aim >= {aim}: {'PASS' if r >= aim else 'MISS'}"
        ok &= aim is None or r >= aim
        print(f"{s:>14,} {mach:>16,.0f} {bare_b:>13,.0f} {bare_d:>12,.0f} {r:>6.2f} "
              f"{mach / unsliced:>17.2f} {fastest / unsliced:>14.2f}{verdict}")
    print(f"bare unsliced: {unsliced:,.0f} calls/s; {'all aims met' if ok else 'an aim was missed'}")


if __name__ == "__main__":
    main()
