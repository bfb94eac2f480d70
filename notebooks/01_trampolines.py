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
# # 01 · The trampolines
#
# Every traceable kernel function starts with a 5-byte `call __fentry__`.
# ftrace turns that site into a NOP, a `call ftrace_caller`, a
# `call ftrace_regs_caller`, or a call to a per-ops trampoline such as the
# seed's `live_patch_trampoline` (see docs/KERNEL.md §8-12).
#
# This notebook looks at the emulated i386 image: the trampolines' code, one
# traced call watched from entry to return, and the `struct pt_regs` that
# `ftrace_regs_caller` builds for the handlers. Nothing here is simulated:
# the code runs in Unicorn.

# %% tags=["parameters"]
function: str = "do_IRQ"   # a traced function of the image (do_IRQ and __migrate_task are live patched)
entry: str = "v5.3"   # int3 entry variant: v5.1 or v5.3
ops: str = "livepatch,tracer"

# %%
from IPython.display import HTML, display

from workbench.kernel.image import build_image
from workbench.emulate.watch import watch_call
from workbench.emulate.stepper import CallStepper
from workbench.ui.step_viewer import render_state

image = build_image()

# %% [markdown]
# ## The code
#
# `ftrace_caller` saves the three regparm registers and calls through the
# patchable `ftrace_call` with `regs = NULL`. `ftrace_regs_caller` builds a
# full `pt_regs`, calls through `ftrace_regs_call`, and then copies
# `regs->ip` back into its return slot: a handler that changes `regs->ip`
# (livepatch) makes the trampoline "return" into the new function.

# %%
print(image.listing("ftrace_caller"))

# %%
print(image.listing("ftrace_regs_caller"))

# %% [markdown]
# ## One traced call
#
# With the live patch and the function tracer both registered, the site of
# a live-patched function calls `ftrace_regs_caller`, whose call goes to
# `ftrace_ops_list_func`: the list function runs every ops whose filter
# matches, so both the tracer and `klp_ftrace_handler` run, and the new body
# runs instead of the old one.

# %%
result = watch_call(function, ops, entry=entry)
print(f"site {result['site']['address']:#x}: {result['site']['bytes']}  ({result['site']['insn']})")
print("handlers that ran:", result["handlers"], "| body:", result["body"])
print("path:", " -> ".join(result["path"]))
print("tracer records:", result["tracer_records"])

# %%
for spec in ("livepatch", "tracer", "livepatch,tracer"):
    r = watch_call(function, spec, entry=entry)
    print(f"{spec:18s} -> handlers {r['handlers']}, body {r['body']}, {r['instructions']} instructions")

# %% [markdown]
# ## Its `pt_regs`
#
# Step the same call instruction by instruction (after the whole patch of
# the seed scenario has landed) up to the first instruction of a handler:
# the 4th argument on its stack is the `pt_regs` that `ftrace_regs_caller`
# built. `ip` is the return address into the traced function; `klp_ftrace_handler`
# will overwrite it with the new body's address.

# %%
stepper = CallStepper("seed", "emulate_regs_caller", entry, function)
done = stepper.n_steps
first = stepper.seek(done, lambda cpu: cpu["pt_regs"] is not None)
display(HTML(render_state(first)))

# %%
after = stepper.seek(done, lambda cpu: cpu["pt_regs"] is not None
                     and cpu["pt_regs"]["ip"] == image.functions[function].new_body)
display(HTML(render_state(after)))
