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
# # 03 · The i386 stack gap
#
# On i386 a trap taken in kernel mode pushes only EFLAGS, CS and EIP: no
# SS:ESP. The saved `pt_regs` therefore sits directly on the interrupted
# stack, and its `sp` field is not the interrupted stack pointer.
# `int3_emulate_push()` (`regs->sp -= 4`, store there) then writes into
# something that is not the interrupted stack, and a handler that emulates
# a *call* cannot work. Commit 3c88c692c287 (v5.3, "x86/stackframe/32:
# Provide consistent pt_regs") copies the frame down, leaving a gap, and
# gives `regs->sp` its real value; only then could the call emulation of
# v5.2 (x86_64 only) be enabled on i386 (docs/KERNEL.md §10).
#
# The emulator models both entries: `v5.1` (frame on the interrupted stack)
# and `v5.3` (with the gap).

# %% tags=["parameters"]
strategy: str = "emulate_regs_caller"   # a strategy that emulates a call
function: str = "do_IRQ"

# %%
import pandas as pd
from IPython.display import HTML, display

from workbench.figures import outcome_plots
from workbench.emulate.explore import load_outcome_table
from workbench.emulate.stepper import CallStepper
from workbench.ui.step_viewer import render_state

# %% [markdown]
# ## The frame as `do_int3` sees it
#
# Under `v5.1`, `regs->sp` holds whatever lay above the 3-word hardware
# frame (here a return address into kernel text), so the emulated push
# writes to read-only text: an oops. Under `v5.3`, `regs->sp` points at the
# interrupted stack, below which the gap leaves room for the pushed return
# address.

# %%
for entry in ("v5.1", "v5.3"):
    stepper = CallStepper("seed", strategy, entry, function)
    k = stepper.trap_step()
    at = stepper.seek(k, lambda cpu: cpu["where"] == "do_int3")
    regs = at["cpus"][0]["pt_regs"]
    print(f"entry {entry}: pt_regs at {at['cpus'][0]['pt_regs_addr']:#x}, regs->ip {regs['ip']:#x}, "
          f"regs->sp {regs['sp']:#x} ({stepper.image.name_at(regs['sp'])})")
    end = stepper.state(k, stepper.length(k))
    display(HTML(render_state(end)))

# %% [markdown]
# ## Every strategy, both entries
#
# The emulator's outcome tables for the seed scenario, per trapped call.
# With the `v5.1` entry every call-emulating strategy crashes (the
# `emulate_old` of an ordinary site emulates a NOP, which needs no push);
# with `v5.3` the emulating strategies are correct, `skip` drops the tracer
# and, on live-patched sites, runs the old body (a violation).

# %%
tables = pd.concat([load_outcome_table("seed", e) for e in ("v5.1", "v5.3")], ignore_index=True)
fig = outcome_plots.outcome_grid(tables)
fig
