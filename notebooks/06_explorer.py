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
# Two explorers (`workbench.ui.widgets`), best used in JupyterLab (`make lab`):
#
# * the **race explorer**: choose the scenario, the strategies, a CPU range,
#   the call rates and the IPI sync-round latency; the plot and the table
#   follow every change (the race simulator runs in this process, a few
#   hundred milliseconds per change at the default trials);
# * the **step-through viewer**: a patch-step slider and an instruction
#   slider over one call on the emulator, showing the site's bytes and
#   disassembly, each CPU's EIP and next instruction, and `pt_regs` while a
#   CPU is inside a frame that holds one.

# %% tags=["parameters"]
strategies: tuple = ("skip", "emulate_regs_caller", "emulate_old", "stop_machine")
cpus: tuple = (1, 64)
trials: int = 500
viewer_strategy: str = "emulate_new"
viewer_entry: str = "v5.3"

# %%
from workbench.ui.step_viewer import StepViewer
from workbench.ui.widgets import Explorer

# %%
explorer = Explorer(strategies=strategies, cpus=cpus, trials=trials)
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

# %%
viewer = StepViewer("seed", viewer_strategy, viewer_entry, "do_IRQ", cpus=2)
viewer.widget
