/*
 * The function tracer's callback, written to the behaviour of
 * function_trace_call() in kernel/trace/trace_functions.c: append one
 * {ip, parent_ip, cpu, seq} entry to this CPU's ring buffer.
 */
	.include "defs.inc"
	.text

/* void function_trace_call(ip, parent_ip, op, regs) */
ENTRY function_trace_call
	pushl	%ebx
	pushl	%esi
	GET_THREAD_INFO %ebx
	movl	TI_RB(%ebx), %esi
	movl	RB_HEAD(%esi), %ecx
	andl	$(RB_N - 1), %ecx
	shll	$RB_SHIFT, %ecx
	leal	RB_RECS(%esi,%ecx), %ecx
	movl	%eax, 0(%ecx)			/* ip */
	movl	%edx, 4(%ecx)			/* parent_ip */
	movl	TI_CPU(%ebx), %eax
	movl	%eax, 8(%ecx)			/* cpu */
	movl	RB_HEAD(%esi), %eax
	movl	%eax, 12(%ecx)			/* sequence number */
	incl	RB_HEAD(%esi)			/* commit */
	popl	%esi
	popl	%ebx
	ret
END function_trace_call
