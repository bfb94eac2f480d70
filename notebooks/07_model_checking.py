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
# # 07 · Two calling CPUs, every interleaving
#
# The model checker runs the patching CPU and k calling CPUs on the emulated
# machine code and explores every interleaving of their visible operations
# (text fetches of patched sites, the int3 handler's two reads of
# `bp_patching`, IPI acknowledgements, the patcher's stores and syncs), one
# execution per Mazurkiewicz trace, with source-DPOR and sleep sets
# (docs/MODEL_CHECKING.md). Each configuration is split into subtrees that
# run as independent work items on the sweep backends.
#
# Here: the seed scenario (on i386, the mail's sketch), CPU 0 calling
# `do_IRQ` (interrupt context, IF clear) and CPU 1 calling `schedule`
# (process context), every strategy; the command is `model-check`. Then the
# seed on x86_64, the kernel where livepatch really runs.

# %% tags=["parameters"]
entry: str = "v5.3"
split: int = 16
backend: str = "serial"

# %%
from workbench.base.paths import data_dir
from workbench.base.vocabulary import STRATEGIES
from workbench.emulate.mc.experiment import check_all, multi_cpu_only, write_counterexamples
from workbench.ui.schedule_viewer import ScheduleViewer

two = check_all([dict(strategy=s, entry=entry, calls=[["do_IRQ"], ["schedule"]]) for s in STRATEGIES],
                backend=backend, split=split, progress=False)
two.drop_duplicates("strategy")[["strategy", "mc_executions", "mc_states", "mc_blocked", "mc_subtrees"]].reset_index(drop=True)

# %% [markdown]
# ## What two CPUs reach that neither call reaches alone
#
# The same calls explored one CPU at a time, then the per-call behaviours
# only the two-CPU runs reach. Under `spin` the process-context `schedule`
# call, trapped on its site, spins for good once `do_IRQ` on the other CPU
# has stopped the patch: `do_IRQ` spins with interrupts off, so the sync IPI
# the patcher waits for never lands (docs/KERNEL.md §4).

# %%
alone = check_all([dict(strategy=s, entry=entry, calls=[[f]]) for s in STRATEGIES for f in ("do_IRQ", "schedule")],
                  backend=backend, split=split, progress=False)
multi_cpu_only(two, alone)

# %% [markdown]
# ## The seed on x86_64, as a real kernel runs it
#
# The same checker on the x86_64 machine (`entry_64.S`, the 64-bit trap frame,
# per-ops trampolines): the livepatch of `do_IRQ` with its own trampoline, then
# the tracer. With the v5.2 entry (2700fefdb2d9's gap), emulating
# `ftrace_regs_caller` (9e298e860408) keeps the live patch in every
# interleaving; `skip` (the handler up to v5.1) lets a trapped `do_IRQ` run its
# old body; with the v5.1 entry the emulated call's push lands on the trap
# frame and `iretq` faults. Below, the distinct behaviours of the trapped calls
# (the command: `model-check --arch x86_64`).

# %%
x86_64 = check_all([dict(arch="x86_64", strategy=s, entry=e, calls=[["do_IRQ"], ["schedule"]])
                    for s in ("skip", "emulate_regs_caller") for e in ("v5.1", "v5.2")],
                   backend=backend, split=split, progress=False)
x86_64[x86_64["trapped"]].drop_duplicates(["strategy", "entry", "function", "body", "violation", "crash_reason"])[
    ["arch", "strategy", "entry", "function", "body", "livepatch_ran", "violation", "crash_reason"]
].reset_index(drop=True)

# %% [markdown]
# ## A known bug, found and replayed
#
# In `text_poke_bp()` of v5.3-v5.5 the patcher cleared `bp_patching.nr_entries`
# and `bp_patching.vec` with no sync between the two stores, so a handler that
# had read `nr_entries != 0` could then read `vec == NULL` (fixed by 285a54efe386,
# whose extra sync 1f676247f36a replaced by a reference count before v5.6 was
# released). ftrace did not use that code in any release: until v5.6 it had its
# own int3 handler. The constructed negative control `racy_clear_nosync3` (the
# racy clears with the `do_sync == 0` path, and a fetch that sees every store
# at once) finds the race; the viewer replays the counterexample with the
# fewest context switches, one visible operation per step.

# %%
racy = check_all([dict(strategy="emulate_new", entry=entry, calls=[["do_IRQ"], ["schedule"]],
                       poke_method="racy_clear_nosync3", coherent_fetch=True)], backend=backend, split=split,
                 progress=False)
null = racy[racy["crash_reason"].str.contains("NULL")]
files = write_counterexamples(null, data_dir() / "counterexamples" / "07_model_checking")
viewer = ScheduleViewer(files[0])
viewer.widget
