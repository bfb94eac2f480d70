# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · A real kernel as the anchor
#
# Every window the race simulator counts drops in comes from its plan of an
# ftrace update: how many `text_poke_bp_batch()` calls, how many sync rounds,
# which trampoline calls change. Here a running kernel is asked. Debian's
# 6.1 kernels (`linux-image-6.1.0-*-686` and `-amd64`) boot under QEMU's TCG
# with a busybox initramfs the workbench writes; in the guest, through
# tracefs, the function tracer is turned on over N sites chosen with
# `set_ftrace_filter`, a kprobe is added and removed on a traced function
# (`vfs_read`) with the tracer running, and the tracer is turned off. For
# each update the guest reads the `CAL` row of `/proc/interrupts` (the
# function-call IPIs each CPU received), the sites it changed
# (`enabled_functions`) and its own elapsed time, and an int3 kprobe on each
# IPI sender (`smp_call_function_many_cond`, `generic_exec_single`,
# `__smp_call_single_queue`) records who asked for every IPI and why (its
# callback). The model beside it is `workbench.race.plan_v6_1`: v6.1's plan
# read in its sources (docs/ANCHOR.md).
#
# The default grid is the i386 kernel on 1 and 2 vCPUs at four site counts
# (cached after the first boot); `make anchor` runs both arches, 1, 2 and 4
# vCPUs and site counts up to every traceable function.

# %% tags=["parameters"]
arches: tuple = ("i386",)
vcpus: tuple = (1, 2)
sites: tuple = (1, 1200, 2400, 4800)

# %%
from workbench.anchor.run import anchor_frame, class_table, slope_table
from workbench.figures.anchor_plot import anchor_ipis

frame = anchor_frame(arches, vcpus, sites, log=lambda *_: None)
frame[["arch", "vcpus", "update", "n_sites", "enabled_after", "cal_total", "model_ipis",
       "asked_text_poke_sync", "model_sync_ipis", "sent_text_poke_sync", "elapsed_us"]]

# %% [markdown]
# ## IPIs per update against N
#
# Points: the function-call IPIs the guest's CPUs received during the
# update. Lines: the v6.1 plan's prediction, `(3 × batches + ftrace_sync_ipi
# rounds) × (K − 1)`. With one vCPU `on_each_cpu()` runs its callback locally
# and sends nothing: every point is zero. With two, the tracer's updates
# climb by three IPIs per batch of 256 sites; the kprobe's change one site
# whatever N is.

# %%
anchor_ipis(frame)

# %% [markdown]
# ## The per-batch slope
#
# A least-squares line of IPIs against the model's site batches, per update:
# the `do_sync_core` rounds the guest sent (`slope_sync`), everything its CPUs
# received (`slope_cal`), and the same less the scheduler's idle-balance
# kicks (`slope_cal_less_nohz`), against the model's 3 (K − 1).

# %%
slope_table(frame)

# %% [markdown]
# ## Every IPI in a class
#
# Each sender's callback names its class: `text_poke_sync` (`do_sync_core`,
# the breakpoint protocol's rounds), `ftrace_sync_ipi`, page-attribute and
# kernel-range TLB flushes (x86_64 only: the ops' own trampoline made
# read-only and executable when it is first created), `nohz_balance_kick`
# (`kick_ilb()` from the scheduler tick on the busy CPU; the amd64 config has
# `NO_HZ_FULL`, the 686 config a periodic tick and none), and remote
# wakeups. A request sends an IPI only if the target's call queue was empty:
# `asked_<class>` counts the requests, `sent_<class>` the IPIs. What arrived
# (the receivers' `call_function*_entry` events) and no send accounts for is
# `unexplained`.

# %%
class_table(frame)
