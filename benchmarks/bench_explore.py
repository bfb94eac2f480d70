"""Exhaustive exploration: the seed's wall time, an honest per-schedule baseline,
growth with the number of patched sites, and (optionally) the old commit side by side.

1. The seed scenario, every strategy, the v5.3 entry, do_IRQ and an ordinary
   function (what ``load_outcome_table`` computes): raw, distinct and executed
   schedules, seconds (best of two), and a check that a second run gives the
   identical frame.
2. Baseline: the simplest code doing the work of one executed schedule, with
   no patch and no strategy: restore the saved memory and registers, drop
   the translations of the patched ranges, and run plain traced calls with
   the same number of ``emu_start`` slices, instructions and syncs as the
   average schedule (counted in an untimed instrumented run). The ratio says
   what exploring costs over just executing.
3. Growth: one strategy (emulate_new), per-site batches (``batching="per_site"``),
   7 to 259 patched sites; seconds per site and the exponent b of a
   least-squares fit of ``seconds ~ sites**b`` (1 is linear).
4. ``--against DIR``: the seed exploration of the checkout at DIR (e.g. the
   commit before the speed work) and of this one, alternately in fresh
   processes, best of three each: the before/after ratio of one run.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from workbench.emulate.explore import explore
from workbench.emulate.run import Run
from workbench.kernel.machine import Cpu

SITES = (4, 16, 64, 256)  # ordinary functions; + 3 livepatched/IRQ ones = patched sites
_SNIPPET = """
import time
from workbench.emulate.explore import explore
explore("seed", strategies="emulate_new", entry="v5.3", mode="exhaustive", progress=False)  # imports, image cache
t = time.perf_counter()
explore("seed", strategies="all", entry="v5.3", mode="exhaustive", progress=False)
print(time.perf_counter() - t)
"""


def seed_exploration():
    best, frames = float("inf"), []
    for _ in range(2):
        t = time.perf_counter()
        calls, stats = explore("seed", strategies="all", entry="v5.3", mode="exhaustive", progress=False)
        best = min(best, time.perf_counter() - t)
        frames.append(calls)
    return best, frames, stats


def schedule_work():
    """Average emu_start slices, instructions and syncs per executed schedule (instrumented, untimed)."""
    tally = {"runs": 0, "insns": 0, "syncs": 0}
    run, sync = Cpu.run, Cpu.sync_core

    def counted_run(self, count, until=0):
        tally["runs"] += 1
        tally["insns"] += count if not until else 0
        return run(self, count, until)

    def counted_sync(self, lo=None, hi=None):
        tally["syncs"] += 1
        return sync(self, lo, hi)

    Cpu.run, Cpu.sync_core = counted_run, counted_sync
    try:
        calls, _ = explore("seed", strategies="all", entry="v5.3", mode="exhaustive", progress=False)
    finally:
        Cpu.run, Cpu.sync_core = run, sync
    n = int((calls.seq == 0).sum())
    return {k: v / n for k, v in tally.items()}, n


def baseline_per_schedule(work, n=500):
    """Seconds for the plain work of one schedule: restore, then calls sliced as a schedule is."""
    run = Run("seed", "emulate_new", "v5.3")
    m, im = run.machine, run.image
    cpu = m.cpus[0]
    run.reset()
    cpu.reset([(im.functions["do_IRQ"].site, 0)])
    m.sync_core()
    cpu.run(10**4, until=im.sym("workload_call"))
    mem, ctx = m.mem.copy(), cpu.uc.context_save()
    runs = max(int(round(work["runs"])), 1)
    per = max(int(work["insns"] / runs), 1)
    syncs = int(round(work["syncs"]))
    lo, hi = im.functions["do_IRQ"].site, im.functions["do_IRQ"].site + 5
    t = time.perf_counter()
    for _ in range(n):
        m.mem[:] = mem
        cpu.uc.context_restore(ctx)
        cpu.eip, cpu.drained, cpu.crash = im.sym("workload_call"), 0, None
        for _ in range(syncs):
            cpu.sync_core(lo, hi)
        for _ in range(runs):
            cpu.run(per)
        cpu.drain()
    dt = (time.perf_counter() - t) / n
    assert cpu.crash is None
    run.close()
    return dt


def growth():
    rows = []
    for k in SITES:
        t = time.perf_counter()
        calls, stats = explore("seed", strategies="emulate_new", entry="v5.3", mode="exhaustive",
                               batching="per_site", n_ordinary=k,
                               progress=False)
        rows.append((k + 3, time.perf_counter() - t, stats["emulate_new"]["distinct"]))
    s, secs = np.array([r[0] for r in rows], float), np.array([r[1] for r in rows])
    b = np.polyfit(np.log(s), np.log(secs), 1)[0]
    return rows, b


def against(old: Path, repeat=3):
    def once(path):
        out = subprocess.run([sys.executable, "-c", _SNIPPET], capture_output=True, text=True, check=True,
                             cwd=path, env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"})
        return float(out.stdout.strip().splitlines()[-1])
    here = Path(__file__).resolve().parents[1]
    t_old = t_new = float("inf")
    for _ in range(repeat):
        t_old = min(t_old, once(old))
        t_new = min(t_new, once(here))
    return t_old, t_new


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", type=Path, help="a checkout to compare with (its seed exploration)")
    ap.add_argument("--no-growth", action="store_true", help="skip the 7..259-site growth measurement")
    args = ap.parse_args(argv)

    dt, (a, b), stats = seed_exploration()
    raw = sum(s["raw"] for s in stats.values())
    distinct = sum(s["distinct"] for s in stats.values())
    executed = int((a.seq == 0).sum())
    print(f"{'strategy':<20} {'raw':>8} {'distinct':>9}")
    for name, s in stats.items():
        print(f"{name:<20} {s['raw']:>8,} {s['distinct']:>9,}")
    print(f"seed, all strategies, v5.3: {raw:,} raw schedules, {distinct:,} distinct, {executed:,} executed "
          f"in {dt:.2f} s ({executed / dt:,.0f} executed/s); identical between runs: {a.equals(b)}")

    work, _ = schedule_work()
    base = baseline_per_schedule(work)
    per = dt / executed
    print(f"a schedule on average: {work['runs']:.1f} emu_start slices, {work['insns']:.0f} instructions, "
          f"{work['syncs']:.1f} range syncs")
    print(f"baseline (restore + that plain work): {base * 1e6:.0f} us; per executed schedule {per * 1e6:.0f} us; "
          f"ratio {base / per:.2f}")

    if not args.no_growth:
        rows, b = growth()
        print(f"{'sites':>6} {'seconds':>8} {'s/site':>7} {'distinct':>9}")
        for s, t, d in rows:
            print(f"{s:>6} {t:>8.2f} {t / s:>7.3f} {d:>9,}")
        print(f"fitted exponent: seconds ~ sites^{b:.2f} (aim: linear within 20%, b <= 1.2): "
              f"{'PASS' if b <= 1.2 else 'MISS'}")
    if args.against:
        t_old, t_new = against(args.against)
        print(f"seed exploration, best of 3 fresh processes each, alternating: {args.against}: {t_old:.2f} s, "
              f"this checkout: {t_new:.2f} s; {t_old / t_new:.2f}x faster (aim: 3x)")


if __name__ == "__main__":
    main()
