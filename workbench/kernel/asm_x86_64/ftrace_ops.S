/*
 * ftrace_ops_list_func and ftrace_ops_assist_func, written to the behaviour
 * of __ftrace_ops_list_func() and ftrace_ops_assist_func() in
 * kernel/trace/ftrace.c: walk ftrace_ops_list, skip an ops that needs saved
 * registers when regs is NULL, test the filter and notrace hashes, call the
 * handler. The assist function is what ftrace_ops_get_func() puts in the
 * trampoline of an ops without FTRACE_OPS_FL_RECURSION_SAFE (livepatch,
 * kprobes); its recursion and preemption guards do nothing here.
 */
	.include "defs.inc"
	.code64
	.text

/* %rax = hash, %rbx = ip -> ZF set if found */
hash_contains:
	pushq	%rcx
	pushq	%rdx
	movq	(%rax), %rcx			/* count */
	leaq	8(%rax), %rdx
1:	testq	%rcx, %rcx
	jz	2f
	cmpq	%rbx, (%rdx)
	je	3f
	addq	$8, %rdx
	decq	%rcx
	jmp	1b
2:	orq	$1, %rcx			/* not found: clear ZF */
3:	popq	%rdx
	popq	%rcx
	ret

/* void ftrace_ops_list_func(ip, parent_ip, op, regs) */
ENTRY ftrace_ops_list_func
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%rbx
	movq	%rdi, %rbx			/* ip */
	movq	%rsi, %r12			/* parent_ip */
	movq	%rcx, %rbp			/* regs (NULL from ftrace_caller) */
	movq	ftrace_ops_list(%rip), %r13
.Lnext_ops:
	leaq	ftrace_list_end(%rip), %rax
	cmpq	%rax, %r13
	je	.Ldone
	testq	$FTRACE_OPS_FL_SAVE_REGS, OPS_FLAGS(%r13)
	jz	1f
	testq	%rbp, %rbp
	jz	.Lskip
1:	movq	OPS_FILTER(%r13), %rax
	testq	%rax, %rax
	jz	2f
	cmpq	$0, (%rax)
	je	2f
	call	hash_contains
	jne	.Lskip
2:	movq	OPS_NOTRACE(%r13), %rax
	testq	%rax, %rax
	jz	3f
	call	hash_contains
	je	.Lskip
3:	movq	%rbx, %rdi
	movq	%r12, %rsi
	movq	%r13, %rdx
	movq	%rbp, %rcx
	call	*OPS_FUNC(%r13)
.Lskip:
	movq	OPS_NEXT(%r13), %r13
	jmp	.Lnext_ops
.Ldone:
	popq	%rbx
	popq	%r13
	popq	%r12
	popq	%rbp
	ret
END ftrace_ops_list_func

/* void ftrace_ops_assist_func(ip, parent_ip, op, regs): op->func(ip, parent_ip, op, regs) */
ENTRY ftrace_ops_assist_func
	jmp	*OPS_FUNC(%rdx)
END ftrace_ops_assist_func

	.data
	.p2align 3
	.globl	ftrace_ops_list
ftrace_ops_list:	.quad ftrace_list_end
	.globl	function_trace_op
function_trace_op:	.quad ftrace_list_end
	.globl	ftrace_list_end
ftrace_list_end:	.quad ftrace_stub, ftrace_list_end, 0, 0, 0, 0
	.globl	ftrace_arena
	.p2align 4
ftrace_arena:	.space 65536
	.globl	ftrace_arena_end
ftrace_arena_end:
