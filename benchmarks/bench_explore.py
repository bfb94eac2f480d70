"""Exhaustive exploration of the seed scenario: schedules per second.

One calling CPU, every strategy, the v5.3 entry, do_IRQ and an ordinary
function. Prints raw and distinct schedule counts, schedules per second, the
wall time (aim: under a minute on a 2-core machine), checks that a second
run gives identical counts and frames, and compares the time per executed
schedule with a baseline measured in the same process: restoring the
machine's memory and running one plain traced call, the least any schedule
must cost.
"""

import time

from workbench.emulate.explore import explore
from workbench.kernel.ftrace import FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.machine import Machine
from workbench.emulate.watch import make_ops


def baseline_per_call(n=2000):
    im = build_image(8)
    m = Machine(im, 1)
    FtraceState(im, make_ops("livepatch,tracer")).apply(m)
    snap = m.mem.copy()
    cpu = m.cpus[0]
    t = time.perf_counter()
    for _ in range(n):
        m.mem[:] = snap
        m.sync_core()
        cpu.reset([(im.functions["do_IRQ"].site, 0)])
        cpu.run(10**5, until=im.sym("workload_logged"))
        cpu.drain()
    return (time.perf_counter() - t) / n


def main():
    t = time.perf_counter()
    a, stats = explore("seed", "all", "v5.3", "exhaustive", progress=False)
    dt = time.perf_counter() - t
    b, stats2 = explore("seed", "all", "v5.3", "exhaustive", progress=False)
    raw = sum(s["raw"] for s in stats.values())
    distinct = sum(s["distinct"] for s in stats.values())
    executed = len(a[a.seq == 0])
    base = baseline_per_call()
    print(f"{'strategy':<20} {'raw':>8} {'distinct':>9}")
    for name, s in stats.items():
        print(f"{name:<20} {s['raw']:>8,} {s['distinct']:>9,}")
    print(f"total: {raw:,} raw schedules, {distinct:,} distinct, {executed:,} executed in {dt:.1f} s "
          f"({raw / dt:,.0f} raw/s, {executed / dt:,.0f} executed/s)")
    print(f"baseline (restore + one plain call): {base * 1e6:.0f} us; per executed schedule "
          f"{dt / executed * 1e6:.0f} us; ratio {base / (dt / executed):.2f}")
    print(f"identical between runs: {stats == stats2 and a.equals(b)}")
    print(f"aim: under 60 s: {'PASS' if dt < 60 else 'MISS'}")


if __name__ == "__main__":
    main()
