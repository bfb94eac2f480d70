"""The race sweep's parameters and their defaults, in a module that imports nothing.

The race simulator's experiment (:mod:`workbench.race.experiment`) runs a
sweep point over these parameters; the command line (``simulate``,
``sweep --set``) lists them as options without loading the simulator,
NumPy or pandas. The parameters model the patch of ``ftrace_replace_code()``
and ``text_poke_bp_batch()`` (``kernel/trace/ftrace.c``,
``arch/x86/kernel/alternative.c``) on N CPUs; docs/RACE.md gives each one.
"""

from __future__ import annotations

__all__ = ["RACE_PARAMETERS"]

#: every race-sweep parameter and its default (None: the model's calibrated default)
RACE_PARAMETERS = {
    "arch": "i386",              # emulated kernel: i386 | x86_64 (its plan, routing and outcome tables)
    "scenario": "seed",          # a named scenario or a scenario TOML file
    "strategy": "skip",          # workbench.base.vocabulary.STRATEGIES
    "batching": None,            # per_site | batched | stop_machine (None: the strategy's own)
    "entry": None,               # int3 entry whose emulated outcomes are used (None: the arch's latest,
                                 # v5.3 on i386, v5.2 on x86_64; workbench.base.vocabulary.ENTRIES_BY_ARCH)
    "cpus": 64,                  # 1..65536
    "sync_round_ns": None,       # mean IPI sync round on 24 CPUs (None: 0.337 ms, Bristot)
    "write_ns": None,            # one text_poke write (None: 2.32 us, Bristot)
    "irq_off_prob": None,        # share of time a CPU has interrupts off (None: 0.1)
    "stop_machine_ns": None,     # stop_machine fixed cost (None: 2 ms)
    "hot": None,                 # {function: per-CPU calls/s} (None: workload.DEFAULT_HOT)
    "tail_functions": 40_000,    # ordinary functions besides the hot ones
    "tail_rate": 2e6,            # their total per-CPU calls/s
    "zipf_s": 1.0,               # Zipf exponent of the tail
    "dispersion": 0.0,           # gamma-Poisson over-dispersion (0: Poisson)
    "trampolines": True,         # patch the trampoline calls too (False: a text_poke batch)
    # batched only: sites per breakpoint batch. None: one batch of every site,
    # as ftrace did before v5.6 (and the default entry v5.3). From v5.6
    # text_poke_queue() cuts batches of TP_VEC_MAX = 256 (derived:
    # PAGE_SIZE / sizeof(struct text_poke_loc) = 4096 / 16; see
    # workbench.race.plan.TP_VEC_MAX and docs/RACE.md)
    "batch_max": None,
    "outcomes": "emulator",      # emulator: measured per-call outcomes; none: count traps only
    "trials": 10_000,            # Monte Carlo trials per point
}
