"""Race simulator throughput: Monte Carlo trials x sites per second.

Prints, for a few configurations, the simulated trials x sites per second,
numpy's rate of drawing the same number of Poisson variates in this process,
and their ratio (aim: >= 0.25; aggregation by site group makes it far
larger). Then times the issue's sweep: 6 strategies x 8 CPU counts x 10
patch timings x 10,000 trials (aim: < 30 s on a 2-core machine).

Uses the emulator's outcome table when it is available (cached by code
version), else a synthetic one; the timing does not depend on which.

    python benchmarks/bench_race.py [--quick]
"""

import argparse
import sys
import time

import numpy as np
import pandas as pd

from workbench.base.vocabulary import STRATEGIES
from workbench.race.outcomes import load_outcomes, PerCallOutcomes, TRAP_SITES
from workbench.race.simulator import RaceConfig, simulate, simulate_many
from workbench.race.workload import SITE_KINDS, Workload
from workbench.race.timing import Timing

RATIO_AIM, SWEEP_AIM_S = 0.25, 30.0
NUMPY_CAP = 50_000_000  # variates timed for real; larger counts are extrapolated


def outcomes_for(scenario):
    try:
        return load_outcomes(scenario), "emulator"
    except Exception as exc:  # emulator unavailable: same work, synthetic means
        rows = [dict(scenario=scenario, entry="v5.3", strategy=s, site_kind=k, trap_site=t, trapped_placements=1,
                     violation=0.5, dropped_tracer=0.5, dropped_livepatch=0.5, spurious=0.0, crash=0.0)
                for s in STRATEGIES for k in SITE_KINDS for t in TRAP_SITES]
        return PerCallOutcomes(pd.DataFrame(rows), scenario), f"synthetic ({type(exc).__name__})"


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def numpy_poisson_rate(count, rng):
    """Poisson variates per second for *count* draws (timed up to NUMPY_CAP)."""
    todo = min(count, NUMPY_CAP)
    start = time.perf_counter()
    done = 0
    while done < todo:
        n = min(5_000_000, todo - done)
        rng.poisson(1.0, n)
        done += n
    return todo / (time.perf_counter() - start), todo < count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 trials in the sweep")
    args = parser.parse_args(argv)
    trials = 10_000
    outcomes, source = outcomes_for("seed")
    print(f"outcome table: {source}")
    small = Workload(tail_functions=53)  # 56 sites, Bristot's count
    cases = [
        ("batched, 64 CPUs, 40,003 sites", RaceConfig("seed", "skip", "batched", 64)),
        ("per_site, 64 CPUs, 40,003 sites", RaceConfig("seed", "skip", "per_site", 64)),
        ("spin per_site, 4096 CPUs, 40,003", RaceConfig("seed", "spin", "per_site", 4096)),
        ("batched, 24 CPUs, 56 sites", RaceConfig("seed", "skip", "batched", 24, small)),
        ("per_site, 24 CPUs, 56 sites", RaceConfig("seed", "skip", "per_site", 24, small)),
    ]
    rng = np.random.default_rng(0)
    print(f"\n{'configuration':34s} {'MC s':>8s} {'trials*sites/s':>15s} {'numpy Poisson/s':>16s} {'ratio':>9s}")
    worst = float("inf")
    for label, cfg in cases:
        sites = int(simulate(cfg, outcomes, 2, 0).n_sites[0])
        secs = best_of(lambda cfg=cfg: simulate(cfg, outcomes, trials, 1))
        mc_rate = trials * sites / secs
        np_rate, extrapolated = numpy_poisson_rate(trials * sites, rng)
        ratio = mc_rate / np_rate
        worst = min(worst, ratio)
        print(f"{label:34s} {secs:8.4f} {mc_rate:15.3e} {np_rate:15.3e}{'*' if extrapolated else ' '} {ratio:9.1f}")
    print(f"(* numpy timed on {NUMPY_CAP:,} variates and extrapolated)")
    print(f"worst ratio {worst:.1f} (aim >= {RATIO_AIM}): {'PASS' if worst >= RATIO_AIM else 'FAIL'}")

    sweep_trials = 1_000 if args.quick else trials
    cpus = (1, 2, 8, 24, 64, 256, 1024, 4096)
    timings = [Timing.for_round(r) for r in np.geomspace(2e4, 2e6, 10)]
    configs = [RaceConfig("seed", s, None, n, timing=t) for s in STRATEGIES for n in cpus for t in timings]
    start = time.perf_counter()
    frame = simulate_many(configs, outcomes, sweep_trials, seed=1)
    secs = time.perf_counter() - start
    print(f"\nsweep: {len(STRATEGIES)} strategies x {len(cpus)} CPU counts x {len(timings)} timings = "
          f"{len(frame)} points x {sweep_trials:,} trials in {secs:.2f} s "
          f"({secs / len(frame) * 1e3:.1f} ms a point; aim < {SWEEP_AIM_S:.0f} s): "
          f"{'PASS' if secs < SWEEP_AIM_S else 'FAIL'}")
    return 0 if worst >= RATIO_AIM and secs < SWEEP_AIM_S else 1


if __name__ == "__main__":
    sys.exit(main())
