"""Resident memory across repeated explorations in one process.

Runs the seed's exhaustive exploration (every strategy, v5.3) several times
in one process with the garbage collector left as it is, and prints the
resident set after each run and the peak. Unicorn engines used to live on in
reference cycles until a full collection (the resident set swung between
0.6 and 2.3 GB over 30 runs); now each run's engines are released when it
returns, so the resident set after every run stays within 10% of the first.
"""

import resource

from workbench.emulate.explore import explore

RUNS = 5


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main():
    after = []
    for i in range(RUNS):
        explore("seed", strategies="all", entry="v5.3", mode="exhaustive", progress=False)
        after.append(rss_mb())
        print(f"run {i + 1}: resident {after[-1]:.0f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spread = (max(after) - min(after)) / after[0]
    print(f"peak {peak:.0f} MB; resident after each run within {100 * spread:.1f}% of each other "
          f"(aim: flat within 10%): {'PASS' if spread <= 0.10 else 'MISS'}")


if __name__ == "__main__":
    main()
