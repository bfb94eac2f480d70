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
# # 05 · Batching and scale
#
# One breakpoint protocol per site costs three IPI sync rounds per site;
# a batch costs three for all of them (docs/KERNEL.md §13). Daniel Bristot
# de Oliveira measured it on a 24-CPU Xeon with 56 jump-label sites:
# 168 → 3 IPIs and 57 ms → 1.4 ms per update, int3 hits about 10% fewer.
# The timing model's write and round costs are derived from those two
# update times, so IPIs and times match by construction; the int3-hit
# ratio is a prediction.

# %% tags=["parameters"]
sites: list = [1, 10, 56, 1000, 40000]
cpus: int = 24
trials: int = 500
backend: str = "serial"

# %%
from workbench.figures import plots
from workbench.figures.job import batching_grid
from workbench.race.bristot import bristot_comparison
from workbench.sweep.engine import sweep
from workbench.ui.format import readable

# %% [markdown]
# ## The model beside the measurement

# %%
readable(bristot_comparison())

# %% [markdown]
# ## Over the number of sites
#
# A plain `text_poke` batch of K sites (no trampoline stages), each site
# called 50 times per second per CPU. The batched window holds every site's
# int3 while all 3K writes happen, so for large K the batch exposes *more*
# calls than one site at a time, while it needs a fraction of the IPIs and
# of the time.

# %%
frame = sweep(batching_grid(sites, trials, cpus=cpus), backend=backend, desc="batching")
readable(frame[["batching", "n_sites", "ipis_mean", "patch_ns_mean", "trapped_mean", "trapped_cf"]])

# %%
plots.batching(frame)
