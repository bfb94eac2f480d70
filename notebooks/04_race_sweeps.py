# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Race sweeps over CPUs and patch timings
#
# The emulator says *what* a trapped call does; the race simulator
# (`workbench.race.simulator`) says *how often* it happens. Calls arrive on N CPUs as
# Poisson processes while ftrace patches ~40,000 sites in one batch; each
# trapped call is multiplied by the per-call outcomes the emulator measured.
#
# `workbench.sweep.engine.sweep` runs a grid of configurations and returns one
# tidy frame. Every point's random numbers come from one seed, spawned per
# point, so the numbers do not depend on the backend (`serial`, `local`
# processes, or `dask`). Finished points are cached; rerunning a cell is
# instant. `make figures` runs the full grids.

# %% tags=["parameters"]
cpus: list = [1, 4, 16, 64]
sync_rounds_ns: list = [1e3, 1e5, 1e7]   # mean IPI sync round on 24 CPUs: 1 µs, 100 µs, 10 ms
strategies: list = ["skip", "emulate_regs_caller", "emulate_new", "emulate_old", "spin", "stop_machine"]
trials: int = 500
backend: str = "serial"               # "local" (processes) or "dask" for bigger grids

# %%
from workbench.figures import plots
from workbench.race.experiment import race_grid
from workbench.sweep.engine import sweep
from workbench.ui.format import readable

# %% [markdown]
# ## Drops against the number of CPUs
#
# Violations (a live-patched call that ran its old body) and dropped tracer
# calls per patch, at the default timing (0.34 ms sync round, Bristot's
# 24-CPU machine). Bands: 95% interval of the Monte Carlo mean.

# %%
by_cpus = sweep(race_grid(strategy=strategies, cpus=cpus, trials=trials), backend=backend, desc="cpus")
readable(by_cpus[["strategy", "cpus", "violations_mean", "dropped_tracer_mean", "trapped_mean", "patch_ns_mean"]])

# %%
plots.drops(by_cpus, x="cpus")

# %% [markdown]
# ## Drops against the sync-round latency
#
# For ftrace's 40,000-site batch the armed window is dominated by the
# writes (3 per site), so the IPI round latency matters only when it
# approaches milliseconds.

# %%
by_round = sweep(race_grid(strategy=strategies, cpus=64, sync_round_ns=sync_rounds_ns, trials=trials),
                 backend=backend, desc="timing")
plots.drops(by_round, x="sync_round_ns")

# %%
skip = sweep(race_grid(strategy="skip", cpus=cpus, sync_round_ns=sync_rounds_ns, trials=trials),
             backend=backend, desc="heatmap")
plots.heatmap(skip)

# %% [markdown]
# ## The trade-off
#
# `stop_machine` and `spin` drop nothing and pay in stalled CPU-time; the
# other strategies stall only for the int3 handler.

# %%
plots.tradeoff(by_cpus)

# %%
print(by_cpus.attrs["sweep"])
