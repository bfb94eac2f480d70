/*
 * The i386 ftrace trampolines, written to the behaviour of
 * arch/x86/kernel/ftrace_32.S (v5.1) and the seed's live_patch_trampoline.
 *
 * Every traced function starts with a 5-byte site (call or NOP). A site that
 * calls ftrace_caller or ftrace_regs_caller reaches the handlers through the
 * patchable calls ftrace_call / ftrace_regs_call, which hold "call ftrace_stub",
 * "call <the single handler>" or "call ftrace_ops_list_func".
 * Callbacks are regparm(3): eax = ip, edx = parent_ip, ecx = ops, regs on the stack.
 */
	.include "defs.inc"
	.text

/*
 * With --kernel-tree, ftrace_caller, ftrace_regs_caller and ftrace_stub come
 * from the tree's own ftrace_32.S (workbench/kernel/tree.py), assembled with
 * KERNEL_TREE defined; live_patch_trampoline below stays ours.
 */
.ifndef KERNEL_TREE
ENTRY ftrace_caller
	pushl	%eax
	pushl	%ecx
	pushl	%edx
	pushl	$0				/* regs = NULL: ftrace_caller cannot redirect */
	movl	4*4(%esp), %eax			/* return into the traced function */
	subl	$MCOUNT_INSN_SIZE, %eax		/* ip = the site */
	movl	5*4(%esp), %edx			/* parent_ip: the traced function's return */
	movl	function_trace_op, %ecx
	.globl	ftrace_call
ftrace_call:
	call	ftrace_stub
	addl	$4, %esp
	popl	%edx
	popl	%ecx
	popl	%eax
.Lftrace_ret:
	.globl	ftrace_stub
ftrace_stub:
	ret
END ftrace_caller
.endif

/*
 * Build a full struct pt_regs (v5.1 layout), call through ftrace_regs_call,
 * then copy regs->ip back into the return slot so that a handler which
 * changed regs->ip (livepatch) makes the trampoline return into the new body.
 */
.macro REGS_TRAMPOLINE callsite, target
	pushl	$__KERNEL_CS
	pushl	4(%esp)				/* regs->ip: a copy of the return address */
	pushl	$0				/* orig_ax */
	pushl	%gs
	pushl	%fs
	pushl	%es
	pushl	%ds
	pushl	%eax
	pushf					/* regs->flags goes where the return address was */
	popl	%eax
	movl	%eax, 8*4(%esp)
	pushl	%ebp
	pushl	%edi
	pushl	%esi
	pushl	%edx
	pushl	%ecx
	pushl	%ebx
	movl	PT_EIP(%esp), %eax
	subl	$MCOUNT_INSN_SIZE, %eax		/* ip */
	movl	PT_OLDESP(%esp), %edx		/* parent_ip (v5.1: regs->sp holds it) */
	movl	function_trace_op, %ecx
	pushl	%esp				/* regs, the 4th argument */
	.globl	\callsite
\callsite:
	call	\target
	addl	$4, %esp
	pushl	PT_EFLAGS(%esp)
	popf
	movl	PT_EIP(%esp), %eax		/* the handler may have changed regs->ip */
	movl	%eax, PT_EFLAGS(%esp)
	RESTORE_REST
	popl	%gs
	lea	3*4(%esp), %esp			/* skip orig_ax, ip and cs */
	ret
.endm

.ifndef KERNEL_TREE
ENTRY ftrace_regs_caller
	REGS_TRAMPOLINE ftrace_regs_call, ftrace_stub
END ftrace_regs_caller
.endif

/* The seed's per-ops trampoline: ftrace_regs_caller calling the livepatch handler directly. */
ENTRY live_patch_trampoline
	REGS_TRAMPOLINE live_patch_call, klp_ftrace_handler
END live_patch_trampoline
