"""Emulated traced calls per second through Machine, against a bare Unicorn loop.

State: livepatch (own trampoline) + tracer, one CPU calling do_IRQ in a loop
(ftrace_regs_caller -> ftrace_ops_list_func -> tracer + livepatch -> new
body). The baseline maps the same image bytes into a plain Unicorn engine
and runs the same instructions with no workbench code in between; both run
in this process, and the ratio is what the workbench costs.
"""

import time

import numpy as np
from unicorn import UC_ARCH_X86, UC_MODE_32, UC_PROT_ALL, Uc
from unicorn import x86_const as X

from workbench.kernel.ftrace import FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.machine import Machine
from workbench.emulate.watch import make_ops

INSNS = 20_000_000


def machine_rate(slice_insns):
    im = build_image(8)
    m = Machine(im, 1)
    FtraceState(im, make_ops("livepatch,tracer")).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(im.functions["do_IRQ"].site, 0)])
    cpu.run(1000)  # warm the translations
    c0 = cpu.completed_calls()
    t = time.perf_counter()
    for _ in range(INSNS // slice_insns):
        cpu.run(slice_insns)
        if cpu.completed_calls() - cpu.drained > 512:
            cpu.drain()  # what an exploration does with the log
    dt = time.perf_counter() - t
    assert cpu.crash is None
    return (cpu.completed_calls() - c0) / dt, m


def bare_rate(m):
    """The same memory image, a plain engine, one emu_start: the ceiling."""
    im = m.image
    mem = m.mem.copy()
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map_ptr(im.base, len(mem), UC_PROT_ALL, mem.ctypes.data)
    cpu = m.cpus[0]
    gdt = im.sym("gdt_table")
    uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt, im.sym("gdt_table_end") - gdt - 1, 0))
    for r in ("cs", "ds", "es", "ss", "esp", "ebp", "esi", "edi", "ebx", "eax", "ecx", "edx", "eflags"):
        uc.reg_write(getattr(X, f"UC_X86_REG_{r.upper()}"), cpu.reg(r))
    head = cpu.ti + 8  # thread_info.log_head
    read = lambda: int(np.frombuffer(mem[head - im.base:head - im.base + 4].tobytes(), np.uint32)[0])
    uc.emu_start(cpu.eip, 0, count=1000)
    c0 = read()
    t = time.perf_counter()
    uc.emu_start(uc.reg_read(X.UC_X86_REG_EIP), 0, count=INSNS)
    dt = time.perf_counter() - t
    return (read() - c0) / dt


def main():
    rows = []
    for slice_insns in (200, 1000, 10_000):
        rate, m = machine_rate(slice_insns)
        rows.append((slice_insns, rate))
    base = bare_rate(m)
    print(f"{'slice (insns)':>14} {'Machine calls/s':>16} {'bare Unicorn calls/s':>21} {'ratio':>6}")
    for s, r in rows:
        print(f"{s:>14,} {r:>16,.0f} {base:>21,.0f} {r / base:>6.2f}")
    print(f"aim: ratio >= 0.5 at the 10,000-instruction slices explorations use for long runs: "
          f"{'PASS' if rows[-1][1] / base >= 0.5 else 'MISS'}")


if __name__ == "__main__":
    main()
