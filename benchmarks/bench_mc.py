"""Model checking with several calling CPUs: states per second, reduction, growth.

1. Reduction against naive enumeration on the same (small) configurations:
   executions explored vs. every interleaving, and the time of each.
2. Speed as a ratio against a same-process baseline: one transition of the
   checker vs. restoring the machine and running one plain traced call.
3. The seed scenario with 2 calling CPUs for every strategy (v5.3; pass
   ``--entries all`` for both), and how it grows with k (1, 2, 3 calls of
   one function) and with the number of functions each CPU calls.
4. The same configurations split into subtrees (``--split``, default 16) on
   2 local worker processes: wall time against the serial unsplit run of
   part 3, and the number of subtrees per configuration; likewise the
   largest growth configuration (k=3).
5. The seed with 2 calling CPUs on the x86_64 machine against i386, in one
   process, each at its arch's latest entry: time and states per second as
   ratios x86_64 / i386.

Usage: ``python benchmarks/bench_mc.py [--quick] [--entries all]``.
"""

import sys
import time

from workbench.base.vocabulary import ENTRIES, SPLIT, STRATEGIES
from workbench.emulate.mc.check import check, default_calls
from workbench.emulate.mc.experiment import check_all
from workbench.emulate.mc.dpor import naive, source_dpor
from workbench.emulate.mc.config import McConfig, dependent
from workbench.emulate.mc.system import McSystem
from workbench.emulate.scenario import load_scenario
from workbench.kernel.image import build_image
from workbench.kernel.machine import Machine


TINY = [dict(calls=(("schedule",), ("schedule",)), items=("sites",), poke_method="no_sync"),
        dict(calls=(("schedule",),), items=("sites",)),
        dict(calls=(("schedule",),), items=("sites",), strategy="spin", poke_method="no_sync"),
        dict(calls=(("do_IRQ",),), items=("sites",), strategy="spin")]


def reduction():
    print("reduction against naive enumeration (same configuration)")
    for kw in TINY:
        s = McSystem(McConfig(**kw))
        t = time.perf_counter()
        st = source_dpor(s, dependent, lambda ex: None)
        td = time.perf_counter() - t
        t = time.perf_counter()
        n = naive(s, lambda ex: None)
        tn = time.perf_counter() - t
        print(f"  {kw}: naive {n} interleavings in {tn:.2f} s; DPOR {st.executions} executions "
              f"({st.blocked} sleep-blocked) in {td:.2f} s; reduction x{n / st.executions:.1f}")


def baseline_per_call(n=2000):
    """Seconds for one plain traced call (do_IRQ, the seed's before-state) with a memory restore:
    the same image and memory map as the checker's, one CPU, no hooks."""
    im = build_image(8)
    m = Machine(im, 1)
    load_scenario("seed").states(im)[0].apply(m)
    snap = m.mem.copy()
    cpu = m.cpus[0]
    t = time.perf_counter()
    for _ in range(n):
        m.mem[:] = snap
        m.sync_core()
        cpu.reset([(im.functions["do_IRQ"].site, 0)])
        cpu.run(10**5, until=im.sym("workload_logged"))
        cpu.drain()
    dt = (time.perf_counter() - t) / n
    assert cpu.crash is None and cpu.completed_calls() == 1
    m.close()
    return dt


def run(cfg):
    t = time.perf_counter()
    r = check(cfg)
    dt = time.perf_counter() - t
    s = r["stats"]
    return dt, s, len(r["outcomes"])


def arch_ratio(names):
    """The seed's model check on x86_64 against i386, strategy by strategy, in this process."""
    print("seed scenario, 2 calling CPUs, x86_64 (v5.2) against i386 (v5.3), serial, unsplit")
    tot = {"i386": 0.0, "x86_64": 0.0}
    for name in names:
        got = {}
        for arch in ("i386", "x86_64"):
            dt, s, n = run(McConfig(strategy=name, calls=default_calls(2, arch=arch), arch=arch))
            got[arch] = (dt, s)
            tot[arch] += dt
        (d0, s0), (d1, s1) = got["i386"], got["x86_64"]
        print(f"  {name:20s} i386 {s0['executions']} executions {d0:5.2f} s, x86_64 {s1['executions']} executions "
              f"{d1:5.2f} s: time x{d1 / d0:.2f}, states/s x{(s1['states'] / d1) / (s0['states'] / d0):.2f}")
    print(f"  total: i386 {tot['i386']:.1f} s, x86_64 {tot['x86_64']:.1f} s, x{tot['x86_64'] / tot['i386']:.2f}")


def main():
    quick = "--quick" in sys.argv
    entries = list(ENTRIES) if "all" in sys.argv else ["v5.3"]
    reduction()
    base = baseline_per_call(500)
    print(f"baseline: one plain traced call with a memory restore: {base * 1e6:.0f} us")
    total = 0.0
    print("seed scenario, 2 calling CPUs (do_IRQ, schedule)")
    for name in (["emulate_new"] if quick else STRATEGIES):
        for e in entries:
            dt, s, n = run(McConfig(strategy=name, entry=e, calls=default_calls(2)))
            total += dt
            per = dt / max(s["states"] + s["replayed"], 1)
            print(f"  {name:20s} {e}: {s['executions']:6d} executions, {s['states']:7d} states "
                  f"(+{s['replayed']} replayed), {s['blocked']} pruned, {n} outcomes, {dt:6.1f} s, "
                  f"{s['states'] / dt:7.0f} states/s, one transition = {per / base:.2f} plain calls")
    print(f"  total {total:.0f} s serial, unsplit")
    names = ["emulate_new"] if quick else list(STRATEGIES)
    pts = [dict(strategy=n, entry=e, calls=[list(c) for c in default_calls(2)]) for n in names for e in entries]
    t = time.perf_counter()
    frame = check_all(pts, backend="local", jobs=2, cache=False, progress=False, split=SPLIT)
    dt = time.perf_counter() - t
    per = frame.drop_duplicates(["strategy", "entry"])
    print(f"  split into subtrees (--split {SPLIT}), 2 local workers: {dt:.0f} s wall, "
          f"x{total / dt:.2f} against serial unsplit; subtrees per configuration: "
          + ", ".join(f"{r.strategy} {r.mc_subtrees}" for r in per.itertuples()))
    print("growth with k (each CPU calls schedule once), emulate_new, v5.3")
    for k in (1, 2) if quick else (1, 2, 3):
        dt, s, n = run(McConfig(calls=(("schedule",),) * k))
        print(f"  k={k}: {s['executions']} executions, {s['states']} states, {dt:.1f} s")
    t = time.perf_counter()
    frame = check_all([dict(calls=[["schedule"]] * k, cpus=k)], backend="local", jobs=2, cache=False,
                      progress=False, split=SPLIT)
    dt_split = time.perf_counter() - t
    print(f"  k={k} split into {frame['mc_subtrees'].iloc[0]} subtrees on 2 local workers: {dt_split:.1f} s wall, "
          f"x{dt / dt_split:.2f} against serial unsplit; {frame['mc_executions'].iloc[0]} executions "
          f"(the same: {frame['mc_executions'].iloc[0] == s['executions']})")
    arch_ratio(["emulate_new"] if quick else STRATEGIES)
    print("growth with functions per CPU (2 CPUs), emulate_new, v5.3")
    for fns in ((("schedule",), ("schedule",)), (("schedule", "do_IRQ"), ("schedule",))):
        dt, s, n = run(McConfig(calls=fns))
        print(f"  {fns}: {s['executions']} executions, {s['states']} states, {dt:.1f} s")


if __name__ == "__main__":
    main()
