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
# # 06 · Interactive explorer
#
# Two explorers (`workbench.ui.widgets` and `workbench.ui.step_viewer`), best used in
# JupyterLab (`make lab`):
#
# * the **race explorer**: choose the scenario, the emulated kernel (arch:
#   i386 or x86_64, each with its own int3 entries; every scenario is
#   labelled with the kernel it is on that arch), the strategies, a CPU
#   range, the call rates and the IPI sync-round latency; the plot and the
#   table follow every change (the race simulator runs in this process, a
#   few hundred milliseconds per change at the default trials);
# * the **step-through viewer**: a patch-step slider and an instruction
#   slider over one call on the emulator, showing the site's bytes and
#   disassembly, each CPU's EIP (RIP on x86_64) and next instruction, and
#   `pt_regs` while a CPU is inside a frame that holds one; its arch
#   dropdown switches between the two emulated kernels.

# %% tags=["parameters"]
strategies: tuple = ("skip", "emulate_regs_caller", "emulate_old", "stop_machine")
cpus: tuple = (1, 64)
trials: int = 500
viewer_strategy: str = "emulate_new"
viewer_entry: str = "v5.3"
arch: str = "i386"   # the explorer's emulated kernel to start on: i386 or x86_64

# %%
from workbench.ui.step_viewer import StepViewer
from workbench.ui.widgets import Explorer

# %%
explorer = Explorer(strategies=strategies, cpus=cpus, trials=trials, arch=arch)
explorer.widget

# %% [markdown]
# It opens on livepatch violations per patch: `skip` loses every trapped
# call to a livepatched function, and the loss grows with the CPUs; the
# emulating strategies and `stop_machine` lose none. Every control is an
# ordinary widget: setting one from code runs the same update as moving it.
# A slower IPI round (1 ms instead of 337 µs) keeps the windows open longer:

# %%
explorer.sync_round_us.value = 1000.0
explorer.frame[["strategy", "cpus", "violations_mean", "violations_cf"]].head()

# %% [markdown]
# The same question on x86_64, where the seed is the mail's scenario as a
# real kernel runs it (the live patch with its own trampoline) and the int3
# entries are v5.1 and v5.2. The scenario list names the kernel each
# scenario is on the chosen arch: the livepatch ones are `i386 sketch` on
# i386 (the seed mail's, not a kernel) and `real x86_64` here. A scenario
# file an arch cannot have is listed as `not on <arch>` and refused in the
# status line, in the command line's words.

# %%
explorer.arch.value = "x86_64"
explorer.frame[["arch", "entry", "strategy", "cpus", "violations_mean", "violations_cf"]].head()

# %%
viewer = StepViewer("seed", viewer_strategy, viewer_entry, "do_IRQ", cpus=2)
viewer.widget
