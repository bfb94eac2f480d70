/*
 * The function tracer's callback, written to the behaviour of
 * function_trace_call() in kernel/trace/trace_functions.c: return at once
 * while tr->function_enabled is 0 (tracing_start_function_trace() clears it
 * around register_ftrace_function(), tracing_stop_function_trace() before
 * unregister_ftrace_function()), else append one {ip, parent_ip, cpu, seq}
 * entry to this CPU's ring buffer.
 */
	.include "defs.inc"
	.text

/* void function_trace_call(ip, parent_ip, op, regs) */
ENTRY function_trace_call
	cmpl	$0, function_enabled
	je	1f				/* the tracer is being (un)registered */
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
1:	ret
END function_trace_call

/*
 * A probe callback for tests and notebooks: copy the struct pt_regs it is
 * given (or nothing, for regs = NULL) into regs_probe, and count its calls.
 */
ENTRY regs_probe_handler
	movl	4(%esp), %ecx			/* regs */
	incl	regs_probe_calls
	GET_THREAD_INFO %eax
	incl	TI_PROBE(%eax)			/* per-CPU evidence for the call log */
	testl	%ecx, %ecx
	jz	2f
	pushl	%esi
	pushl	%edi
	movl	%ecx, %esi
	movl	$regs_probe, %edi
	movl	$(PT_SIZE / 4), %ecx
	cld
	rep movsl
	popl	%edi
	popl	%esi
2:	ret
END regs_probe_handler

	.data
	.p2align 2
	.globl	regs_probe
regs_probe:	.space PT_SIZE
	.globl	regs_probe_calls
regs_probe_calls:	.long 0
	/* tr->function_enabled of the one trace array; workbench.kernel.ftrace writes it */
	.globl	function_enabled
function_enabled:	.long 0
