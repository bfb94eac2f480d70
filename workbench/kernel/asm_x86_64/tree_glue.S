/*
 * What a kernel tree's ftrace_64.S refers to beyond the emulated kernel,
 * linked only into an image built with --kernel-tree (workbench/kernel/tree.py).
 *
 * The function graph tracer's entry points (CONFIG_FUNCTION_GRAPH_TRACER in
 * Debian's amd64 config): no scenario enables the graph tracer, so
 * prepare_ftrace_return() and ftrace_return_to_handler() (kernel/trace/fgraph.c)
 * are never reached; if a tree's trampoline reached them, ud2 faults and the
 * call is a crash.
 *
 * __x86_return_thunk (arch/x86/lib/retpoline.S in 6.1): "ret; int3", where
 * every RET of the tree's trampolines goes under CONFIG_RETHUNK. The emulated
 * CPU has X86_FEATURE_RETHUNK (apply_returns() leaves those jumps as they are,
 * and create_trampoline() ends each per-ops trampoline with a jump here).
 */
	.include "defs.inc"
	.code64
	.text

ENTRY prepare_ftrace_return
	ud2
END prepare_ftrace_return

ENTRY ftrace_return_to_handler
	ud2
END ftrace_return_to_handler

ENTRY __x86_return_thunk
	ret
	int3
END __x86_return_thunk
