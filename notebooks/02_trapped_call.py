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
# # 02 · A trapped call under each strategy, stepped through
#
# While ftrace rewrites a call site it first writes `int3` (0xCC) over the
# first byte. A CPU that calls the function then traps, and **the int3
# handler decides what that call does**. This notebook stops the seed
# scenario's patch right after the int3 lands on the site of a live-patched
# function, runs one call, and compares the strategies (docs/KERNEL.md §9):
#
# * `skip` resumes after the site: no handler runs, the old body runs;
# * `emulate_regs_caller` emulates a call to `ftrace_regs_caller` (v5.2);
# * `emulate_new` emulates the instruction being written (v5.6);
# * `emulate_old` emulates the instruction being replaced;
# * `spin` returns to the int3 until the patch completes (here: never);
# * `stop_machine` has no int3 window at all.
#
# First on the i386 kernel, then the same call on x86_64, where the seed is
# the mail's scenario as a real kernel runs it (docs/KERNEL.md §17).

# %% tags=["parameters"]
function: str = "do_IRQ"
entry: str = "v5.3"   # i386 int3 entry: v5.1 or v5.3
entry_x86_64: str = "v5.2"   # x86_64 int3 entry: v5.1 or v5.2
strategy: str = "emulate_regs_caller"   # the one to step through below

# %%
import pandas as pd
from IPython.display import HTML, display

from workbench.emulate.explore import load_outcome_table
from workbench.ui.format import readable
from workbench.emulate.stepper import CallStepper, trapped_calls
from workbench.ui.step_viewer import StepViewer, render_state

pd.set_option("display.max_colwidth", 140)

# %% [markdown]
# ## One trapped call per strategy
#
# `path` lists the symbols the CPU entered. Under `skip` the call leaves the
# int3 handler straight back into the *old* body: neither the tracer nor the
# live patch runs. The emulating strategies enter a trampoline from the
# handler. `spin` keeps re-entering the int3 because, in this replay, the
# patch never moves on.

# %%
trapped_calls(function, entry)

# %% [markdown]
# ## Stepping through one of them
#
# The state just before `do_int3` runs (the `pt_regs` the entry built, with
# `ip` one past the int3), then just after the strategy changed it.

# %%
stepper = CallStepper("seed", strategy, entry, function)
k = stepper.trap_step()
print("patch steps:", ", ".join(stepper.step_names()))
before = stepper.seek(k, lambda cpu: cpu["where"] == "do_int3")
display(HTML(render_state(before)))

# %%
display(HTML(render_state(stepper.state(k, before["cpus"][0]["executed"] + 1))))

# %%
end = stepper.state(k, stepper.length(k))
display(HTML(render_state(end)))

# %% [markdown]
# ## The same call on x86_64
#
# On x86_64 the live patch has its own trampoline (`create_trampoline()`):
# before the patch the site of `do_IRQ` calls it; after it, with the tracer
# registered too, two ops trace the site and it calls the shared
# `ftrace_regs_caller`. The int3 entry with the gap came to x86_64 in v5.2
# (2700fefdb2d9), together with emulating a call to `ftrace_regs_caller`
# (9e298e860408). The trapped call under each strategy, with that entry:

# %%
trapped_calls(function, entry_x86_64, arch="x86_64")

# %% [markdown]
# Without the gap (the v5.1 entry), the return address the emulated call
# pushes at `regs->sp - 8` lands on the trap frame's `regs->ss`, and the
# entry's `iretq` faults on the corrupted selector; `skip` is unharmed:

# %%
trapped_calls(function, "v5.1", strategies=("skip", "emulate_regs_caller"), arch="x86_64")

# %% [markdown]
# Stepping through it as above: the 64-bit `pt_regs` the v5.2 entry built
# (`orig_ax` = -1, `ip` one past the int3), then the strategy's change: the
# call "returns" into `ftrace_regs_caller`.

# %%
stepper64 = CallStepper("seed", strategy, entry_x86_64, function, arch="x86_64")
k64 = stepper64.trap_step()
before64 = stepper64.seek(k64, lambda cpu: cpu["where"] == "do_int3")
display(HTML(render_state(before64)))

# %%
display(HTML(render_state(stepper64.state(k64, before64["cpus"][0]["executed"] + 1))))

# %%
display(HTML(render_state(stepper64.state(k64, stepper64.length(k64)))))

# %% [markdown]
# ## What every interleaving does
#
# The emulator's exhaustive exploration places each patch step at every
# distinguishable instruction of a call and classifies what the call did
# against what the old and the new instruction would have done
# (docs/ARCHITECTURE.md). Per trapped call:

# %%
columns = ["strategy", "site_kind", "trap_site", "trap_phase", "trapped_placements", "violation",
           "dropped_tracer", "dropped_livepatch", "spurious", "crash", "delay_traps"]
readable(load_outcome_table("seed", entry)[columns])

# %% [markdown]
# The same on x86_64 with its v5.2 entry: the same sites trap (the seed adds
# the tracer, so every site changes), but through other code (the ordinary
# sites now call the tracer's own trampoline); `skip` still runs the old
# body of every live-patched function it traps in:

# %%
readable(load_outcome_table("seed", entry_x86_64, arch="x86_64")[columns])

# %% [markdown]
# ## Interactive
#
# In JupyterLab, move the sliders: the patch step (each write and sync of
# the breakpoint protocol) and the instruction of the call; the arch
# dropdown switches to the other kernel (and its own int3 entries).

# %%
viewer = StepViewer("seed", strategy, entry, function, cpus=2)
viewer.widget
