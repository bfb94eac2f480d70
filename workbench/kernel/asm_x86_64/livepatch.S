/*
 * The livepatch handler, written to the behaviour of klp_ftrace_handler()
 * in kernel/livepatch/patch.c (v5.0-v5.6), as the i386 file: find the
 * patched function for ip and set regs->ip to its new body, unless
 * func->transition is set and the current task is still KLP_UNPATCHED
 * (then the next entry on the func stack, here the original function,
 * runs). klp_funcs: one struct klp_func {old site, new_func, transition}
 * per patched function; klp_patch_state[cpu]: current->patch_state.
 */
	.include "defs.inc"
	.code64
	.text

/* void klp_ftrace_handler(ip, parent_ip, op, regs) */
ENTRY klp_ftrace_handler
	testq	%rcx, %rcx
	jz	2f				/* reached without regs: cannot redirect */
	leaq	klp_funcs(%rip), %rdx
1:	cmpq	$0, KLP_FUNC_OLD(%rdx)
	je	2f
	cmpq	%rdi, KLP_FUNC_OLD(%rdx)
	je	3f
	addq	$KLP_FUNC_SIZE, %rdx
	jmp	1b
3:	cmpq	$0, KLP_FUNC_TRANSITION(%rdx)	/* func->transition */
	je	4f
	GET_THREAD_INFO %rax
	movl	TI_CPU(%rax), %eax
	leaq	klp_patch_state(%rip), %rsi
	cmpl	$KLP_UNPATCHED, (%rsi,%rax,4)
	je	2f				/* next on the func stack: the original function */
4:	movq	KLP_FUNC_NEW(%rdx), %rax
	movq	%rax, PT_RIP(%rcx)		/* klp_arch_set_pc(): return into the new function */
	GET_THREAD_INFO %rax
	incl	TI_KLP(%rax)
2:	ret
END klp_ftrace_handler

	.data
	.p2align 3
	.globl	klp_funcs
klp_funcs:	.space KLP_FUNC_SIZE * 64
	.globl	klp_patch_state
klp_patch_state:	.space 4 * MAX_CPUS
