/*
 * What a kernel tree's ftrace_32.S refers to beyond the emulated kernel,
 * linked only into an image built with --kernel-tree (workbench/kernel/tree.py).
 *
 * The function graph tracer's entry points (CONFIG_FUNCTION_GRAPH_TRACER in
 * Debian's 686 config): ftrace_graph_call stays "jmp ftrace_stub" because no
 * scenario enables the graph tracer, so prepare_ftrace_return() and
 * ftrace_return_to_handler() (kernel/trace/fgraph.c) are never reached; if a
 * tree's trampoline reached them, ud2 faults and the call is a crash.
 * __x86_return_thunk (arch/x86/lib/retpoline.S) is a return, reached by RET
 * under CONFIG_RETHUNK.
 */
	.include "defs.inc"
	.text

ENTRY prepare_ftrace_return
	ud2
END prepare_ftrace_return

ENTRY ftrace_return_to_handler
	ud2
END ftrace_return_to_handler

ENTRY __x86_return_thunk
	ret
END __x86_return_thunk
