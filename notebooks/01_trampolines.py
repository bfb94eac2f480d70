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
# # 01 · The trampolines
#
# Every traceable kernel function starts with a 5-byte `call __fentry__`.
# ftrace turns that site into a NOP, a `call ftrace_caller`, a
# `call ftrace_regs_caller`, or a call to a per-ops trampoline such as the
# seed's `live_patch_trampoline` (see docs/KERNEL.md §8-12).
#
# This notebook looks at the emulated i386 image: the trampolines' code, one
# traced call watched from entry to return, and the `struct pt_regs` that
# `ftrace_regs_caller` builds for the handlers; then at the x86_64 image the
# same way, with the per-ops trampolines only x86_64 has (docs/KERNEL.md §17).
# Nothing here is simulated: the code runs in Unicorn.

# %% tags=["parameters"]
function: str = "do_IRQ"   # a traced function of the image (do_IRQ and __migrate_task are live patched)
entry: str = "v5.3"   # i386 int3 entry variant: v5.1 or v5.3
entry_x86_64: str = "v5.2"   # x86_64 int3 entry variant: v5.1 or v5.2
ops: str = "livepatch,tracer"

# %%
from IPython.display import HTML, display

from workbench.kernel.image import build_image
from workbench.emulate.watch import trampoline_listing, watch_call
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

# %% [markdown]
# ## The same on x86_64
#
# The x86_64 image (`workbench/kernel/asm_x86_64/ftrace_64.S`) keeps the
# kernel's labels. `ftrace_caller` pushes `rbp` and builds the start of a
# 168-byte `struct pt_regs` below it (`save_mcount_regs`: the argument
# registers and `rip`), loads the ops at `ftrace_caller_op_ptr` and calls
# through `ftrace_call` with `regs = NULL`. `ftrace_regs_caller` first saves
# the flags with `pushfq`, completes `pt_regs` (r10-r15, rbx, flags, the
# kernel segments, `regs->sp`), calls through `ftrace_regs_call` with `regs`
# in `rcx` (callbacks take ip, parent_ip, op, regs in rdi, rsi, rdx, rcx) and
# copies `regs->ip` back into its return slot, as on i386.

# %%
image64 = build_image(arch="x86_64")
print(image64.listing("ftrace_caller"))

# %%
print(image64.listing("ftrace_regs_caller"))

# %% [markdown]
# ### Per-ops trampolines
#
# Only x86_64 builds them: `create_trampoline()` (arch/x86/kernel/ftrace.c,
# under `CONFIG_X86_64`) copies `ftrace_regs_caller` (for a SAVE_REGS ops,
# such as the live patch) or `ftrace_caller` (the tracer) into module text,
# appends a `jmp ftrace_epilogue` (the same address as `ftrace_stub`) and the
# ops pointer, rewrites the op-pointer load to read that pointer, and points
# the call straight at the ops' function (`ftrace_ops_get_func()`: the
# tracer's own handler; `ftrace_ops_assist_func` for the live patch). Here
# are the two the workbench makes with both ops registered:

# %%
print(trampoline_listing("livepatch", ops))

# %%
print(trampoline_listing("tracer", ops))

# %% [markdown]
# A site traced by one ops alone calls that ops' trampoline
# (`FTRACE_FL_TRAMP`); with both registered, the live-patched function is
# traced by two ops and calls the shared `ftrace_regs_caller`, whose call
# goes to the list function, while ordinary functions (the tracer's alone)
# call the tracer's trampoline.

# %%
for spec in ("livepatch", "tracer", "livepatch,tracer"):
    r = watch_call(function, spec, entry=entry_x86_64, arch="x86_64")
    print(f"{spec:18s} -> {' -> '.join(r['path'])}\n{'':21s}handlers {r['handlers']}, body {r['body']}, "
          f"{r['instructions']} instructions")

# %% [markdown]
# ### Its `pt_regs` on x86_64
#
# Before the seed's patch the live-patched site calls the live patch's own
# trampoline, whose call goes to `ftrace_ops_assist_func` (which passes on
# to `klp_ftrace_handler`). At its first instruction `rcx` holds the
# `pt_regs` the trampoline (the copy of `ftrace_regs_caller`) built: 21
# eight-byte words, `ip` the return address into the traced function; then
# the handler has written the new body's address into it.

# %%
stepper64 = CallStepper("seed", "emulate_regs_caller", entry_x86_64, function, arch="x86_64")
first64 = stepper64.seek(0, lambda cpu: cpu["pt_regs"] is not None)
display(HTML(render_state(first64)))

# %%
after64 = stepper64.seek(0, lambda cpu: cpu["pt_regs"] is not None
                         and cpu["pt_regs"]["ip"] == image64.functions[function].new_body)
display(HTML(render_state(after64)))
