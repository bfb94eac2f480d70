/*
 * The livepatch handler, written to the behaviour of klp_ftrace_handler()
 * in kernel/livepatch/patch.c (v5.0-v5.6): find the patched function for ip
 * and set regs->ip to its new body (ops flags SAVE_REGS | IPMODIFY), unless
 * the function is in transition and the current task is still unpatched.
 *
 * klp_funcs holds one struct klp_func per patched function: {old function's
 * site, new_func, transition}. The func stack of the kernel holds one entry
 * per patch of a function; the workbench applies first patches only, so the
 * entry below the top is always the list head: a task that is still
 * KLP_UNPATCHED during a transition runs the original function (the handler
 * returns without touching regs->ip). klp_patch_state[cpu] is
 * current->patch_state of the task running on that CPU (an interrupt runs
 * on the interrupted task).
 */
	.include "defs.inc"
	.text

/* void klp_ftrace_handler(ip, parent_ip, op, regs) */
ENTRY klp_ftrace_handler
	movl	4(%esp), %ecx			/* regs */
	testl	%ecx, %ecx
	jz	2f				/* reached without regs: cannot redirect */
	movl	$klp_funcs, %edx
1:	cmpl	$0, KLP_FUNC_OLD(%edx)
	je	2f
	cmpl	%eax, KLP_FUNC_OLD(%edx)
	je	3f
	addl	$KLP_FUNC_SIZE, %edx
	jmp	1b
3:	cmpl	$0, KLP_FUNC_TRANSITION(%edx)	/* func->transition */
	je	4f
	GET_THREAD_INFO %eax
	movl	TI_CPU(%eax), %eax
	cmpl	$KLP_UNPATCHED, klp_patch_state(,%eax,4)
	je	2f				/* next on the func stack: the original function */
4:	movl	KLP_FUNC_NEW(%edx), %eax
	movl	%eax, PT_EIP(%ecx)		/* return into the new function */
	GET_THREAD_INFO %eax
	incl	TI_KLP(%eax)
2:	ret
END klp_ftrace_handler

	.data
	.p2align 2
	/* struct klp_func {old site, new_func, transition}, 0-terminated; filled by workbench.kernel.ftrace */
	.globl	klp_funcs
klp_funcs:	.space KLP_FUNC_SIZE * 64
	/* current->patch_state of the task on each CPU (KLP_UNDEFINED outside a transition) */
	.globl	klp_patch_state
klp_patch_state:	.space 4 * MAX_CPUS
