/*
 * The function tracer's callback, written to the behaviour of
 * function_trace_call() in kernel/trace/trace_functions.c (as the i386
 * file: return while tr->function_enabled is 0, else append one
 * {ip, parent_ip, cpu, seq} entry to this CPU's ring buffer), and the
 * SAVE_REGS probe handler that copies the struct pt_regs it is given.
 */
	.include "defs.inc"
	.code64
	.text

/* void function_trace_call(ip, parent_ip, op, regs) */
ENTRY function_trace_call
	cmpl	$0, function_enabled(%rip)
	je	1f
	pushq	%rbx
	GET_THREAD_INFO %rbx
	movl	TI_RB(%rbx), %r8d
	movl	RB_HEAD(%r8), %ecx
	andl	$(RB_N - 1), %ecx
	shll	$RB_SHIFT, %ecx
	leaq	RB_RECS(%r8,%rcx), %rcx
	movl	%edi, 0(%rcx)			/* ip */
	movl	%esi, 4(%rcx)			/* parent_ip */
	movl	TI_CPU(%rbx), %eax
	movl	%eax, 8(%rcx)			/* cpu */
	movl	RB_HEAD(%r8), %eax
	movl	%eax, 12(%rcx)			/* sequence number */
	incl	RB_HEAD(%r8)			/* commit */
	popq	%rbx
1:	ret
END function_trace_call

/* a probe callback: copy *regs (nothing for regs = NULL) into regs_probe, count its calls */
ENTRY regs_probe_handler
	incl	regs_probe_calls(%rip)
	GET_THREAD_INFO %rax
	incl	TI_PROBE(%rax)
	testq	%rcx, %rcx
	jz	2f
	movq	%rcx, %rsi
	leaq	regs_probe(%rip), %rdi
	movl	$(PT_SIZE / 8), %ecx
	cld
	rep movsq
2:	ret
END regs_probe_handler

	.data
	.p2align 3
	.globl	regs_probe
regs_probe:	.space PT_SIZE
	.globl	regs_probe_calls
regs_probe_calls:	.long 0
	.globl	function_enabled
function_enabled:	.long 0
