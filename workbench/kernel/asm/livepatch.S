/*
 * The livepatch handler, written to the behaviour of klp_ftrace_handler()
 * in kernel/livepatch/patch.c: find the patched function for ip and set
 * regs->ip to its new body (ops flags SAVE_REGS | IPMODIFY).
 */
	.include "defs.inc"
	.text

/* void klp_ftrace_handler(ip, parent_ip, op, regs) */
ENTRY klp_ftrace_handler
	movl	4(%esp), %ecx			/* regs */
	testl	%ecx, %ecx
	jz	2f				/* reached without regs: cannot redirect */
	movl	$klp_funcs, %edx
1:	cmpl	$0, (%edx)
	je	2f
	cmpl	%eax, (%edx)
	je	3f
	addl	$8, %edx
	jmp	1b
3:	movl	4(%edx), %eax
	movl	%eax, PT_EIP(%ecx)		/* return into the new function */
	GET_THREAD_INFO %eax
	incl	TI_KLP(%eax)
2:	ret
END klp_ftrace_handler

	.data
	.p2align 2
	/* {old function's site, new function} pairs, 0-terminated; filled by workbench.ftrace */
	.globl	klp_funcs
klp_funcs:	.space 8 * 64
