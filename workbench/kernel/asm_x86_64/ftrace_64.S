/*
 * The x86_64 ftrace trampolines, written to the behaviour of
 * arch/x86/kernel/ftrace_64.S (v5.1-v5.5, without CONFIG_FRAME_POINTER or
 * the function graph tracer): save_mcount_regs builds the start of a
 * struct pt_regs under the saved rbp; ftrace_regs_caller completes it
 * (flags from its pushfq, kernel segments, regs->sp) and returns to
 * regs->ip, which an IPMODIFY handler may have changed.
 *
 * create_trampoline() (arch/x86/kernel/ftrace.c) copies ftrace_caller up to
 * ftrace_epilogue, or ftrace_regs_caller up to ftrace_regs_caller_end, into
 * a per-ops trampoline, rewrites the op-pointer load to read the ops pointer
 * stored after it, and arch_ftrace_update_trampoline() points its call at
 * the ops' function: workbench.kernel.ftrace does the same into
 * ftrace_tramp_area. Callbacks take ip, parent_ip, op, regs in rdi, rsi, rdx, rcx.
 */
	.include "defs.inc"
	.code64
	.text

/*
 * With --kernel-tree, __fentry__, ftrace_caller, ftrace_regs_caller,
 * ftrace_stub and their inner labels come from the tree's own ftrace_64.S
 * (workbench/kernel/tree.py), assembled with KERNEL_TREE defined, and the
 * per-ops trampolines are copies of the tree's code; ftrace_tramp_area below
 * stays ours.
 */
.ifndef KERNEL_TREE
.macro save_mcount_regs added=0
	pushq	%rbp				/* always save the original rbp */
	subq	$(MCOUNT_REG_SIZE - 8), %rsp
	movq	%rax, PT_RAX(%rsp)
	movq	%rcx, PT_RCX(%rsp)
	movq	%rdx, PT_RDX(%rsp)
	movq	%rsi, PT_RSI(%rsp)
	movq	%rdi, PT_RDI(%rsp)
	movq	%r8, PT_R8(%rsp)
	movq	%r9, PT_R9(%rsp)
	movq	MCOUNT_REG_SIZE-8(%rsp), %rdx	/* the original rbp */
	movq	%rdx, PT_RBP(%rsp)
	movq	MCOUNT_REG_SIZE+8+\added(%rsp), %rsi	/* parent_ip */
	movq	MCOUNT_REG_SIZE+\added(%rsp), %rdi	/* return into the traced function */
	movq	%rdi, PT_RIP(%rsp)
	subq	$MCOUNT_INSN_SIZE, %rdi		/* ip = the site */
.endm

.macro restore_mcount_regs
	movq	PT_R9(%rsp), %r9
	movq	PT_R8(%rsp), %r8
	movq	PT_RDI(%rsp), %rdi
	movq	PT_RSI(%rsp), %rsi
	movq	PT_RDX(%rsp), %rdx
	movq	PT_RCX(%rsp), %rcx
	movq	PT_RAX(%rsp), %rax
	movq	PT_RBP(%rsp), %rbp		/* ftrace_regs_caller can modify rbp */
	addq	$MCOUNT_REG_SIZE, %rsp
.endm

/* __fentry__: what every site called before ftrace_init() made it a NOP */
ENTRY __fentry__
	retq
END __fentry__

ENTRY ftrace_caller
	save_mcount_regs
	.globl	ftrace_caller_op_ptr
ftrace_caller_op_ptr:
	movq	function_trace_op(%rip), %rdx	/* the ftrace_ops: 3rd parameter */
	movq	$0, %rcx			/* regs = NULL */
	.globl	ftrace_call
ftrace_call:
	call	ftrace_stub
	restore_mcount_regs
	/* the code up to here is what create_trampoline() copies */
	.globl	ftrace_epilogue
ftrace_epilogue:
	.weak	ftrace_stub			/* weak keeps gas from relaxing jumps to it */
ftrace_stub:
	retq
END ftrace_caller

ENTRY ftrace_regs_caller
	pushfq					/* the flags, before anything changes them */
	save_mcount_regs 8
	.globl	ftrace_regs_caller_op_ptr
ftrace_regs_caller_op_ptr:
	movq	function_trace_op(%rip), %rdx
	movq	%r15, PT_R15(%rsp)		/* the rest of pt_regs */
	movq	%r14, PT_R14(%rsp)
	movq	%r13, PT_R13(%rsp)
	movq	%r12, PT_R12(%rsp)
	movq	%r11, PT_R11(%rsp)
	movq	%r10, PT_R10(%rsp)
	movq	%rbx, PT_RBX(%rsp)
	movq	MCOUNT_REG_SIZE(%rsp), %rcx	/* the saved flags */
	movq	%rcx, PT_EFLAGS(%rsp)
	movq	$__KERNEL_DS, %rcx
	movq	%rcx, PT_SS(%rsp)
	movq	$__KERNEL_CS, %rcx
	movq	%rcx, PT_CS(%rsp)
	leaq	MCOUNT_REG_SIZE+8*2(%rsp), %rcx	/* regs->sp: past the flags and return address */
	movq	%rcx, PT_RSP(%rsp)
	leaq	(%rsp), %rcx			/* regs: 4th parameter */
	.globl	ftrace_regs_call
ftrace_regs_call:
	call	ftrace_stub
	movq	PT_EFLAGS(%rsp), %rax		/* flags back into the pushfq slot */
	movq	%rax, MCOUNT_REG_SIZE(%rsp)
	movq	PT_RIP(%rsp), %rax		/* handlers can change the RIP */
	movq	%rax, MCOUNT_REG_SIZE+8(%rsp)
	movq	PT_R15(%rsp), %r15
	movq	PT_R14(%rsp), %r14
	movq	PT_R13(%rsp), %r13
	movq	PT_R12(%rsp), %r12
	movq	PT_R10(%rsp), %r10
	movq	PT_RBX(%rsp), %rbx
	restore_mcount_regs
	popfq
	/* create_trampoline() copies up to here and appends its own jmp to ftrace_epilogue */
	.globl	ftrace_regs_caller_end
ftrace_regs_caller_end:
	jmp	ftrace_epilogue
END ftrace_regs_caller
.endif

/*
 * Module text where create_trampoline() places the per-ops trampolines
 * (alloc_tramp() is module_alloc()): TRAMP_SLOTS slots of TRAMP_SLOT bytes,
 * one per ftrace_ops of the scenario, filled before any site calls them.
 */
	.p2align 12
	.globl	ftrace_tramp_area
ftrace_tramp_area:
	.fill	TRAMP_SLOT * TRAMP_SLOTS, 1, 0xcc
	.globl	ftrace_tramp_area_end
ftrace_tramp_area_end:
