/*
 * ftrace_ops_list_func and the ops list, written to the behaviour of
 * __ftrace_ops_list_func() in kernel/trace/ftrace.c: walk ftrace_ops_list,
 * skip an ops that needs saved registers when regs is NULL, test the filter
 * hash (empty = every function) and the notrace hash, and call the handler.
 */
	.include "defs.inc"
	.text

/* int ftrace_ops_test(ops=%edi, ip=%ebx): 1 if the ops traces ip (in %eax) */
hash_contains:				/* %eax = hash, %ebx = ip -> ZF set if found */
	pushl	%ecx
	pushl	%edx
	movl	(%eax), %ecx			/* count */
	leal	4(%eax), %edx
1:	testl	%ecx, %ecx
	jz	2f
	cmpl	%ebx, (%edx)
	je	3f
	addl	$4, %edx
	decl	%ecx
	jmp	1b
2:	orl	$1, %ecx			/* not found: clear ZF */
3:	popl	%edx
	popl	%ecx
	ret

/* void ftrace_ops_list_func(ip, parent_ip, op, regs) */
ENTRY ftrace_ops_list_func
	pushl	%ebp
	pushl	%edi
	pushl	%esi
	pushl	%ebx
	movl	%eax, %ebx			/* ip */
	movl	%edx, %esi			/* parent_ip */
	movl	5*4(%esp), %ebp			/* regs (NULL from ftrace_caller) */
	movl	ftrace_ops_list, %edi
.Lnext_ops:
	cmpl	$ftrace_list_end, %edi
	je	.Ldone
	testl	$FTRACE_OPS_FL_SAVE_REGS, OPS_FLAGS(%edi)
	jz	1f
	testl	%ebp, %ebp
	jz	.Lskip				/* needs regs, got none */
1:	movl	OPS_FILTER(%edi), %eax
	testl	%eax, %eax
	jz	2f
	cmpl	$0, (%eax)
	je	2f				/* empty filter: trace everything */
	call	hash_contains
	jne	.Lskip
2:	movl	OPS_NOTRACE(%edi), %eax
	testl	%eax, %eax
	jz	3f
	call	hash_contains
	je	.Lskip
3:	movl	%ebx, %eax
	movl	%esi, %edx
	movl	%edi, %ecx
	pushl	%ebp
	call	*OPS_FUNC(%edi)
	addl	$4, %esp
.Lskip:
	movl	OPS_NEXT(%edi), %edi
	jmp	.Lnext_ops
.Ldone:
	popl	%ebx
	popl	%esi
	popl	%edi
	popl	%ebp
	ret
END ftrace_ops_list_func

	.data
	.p2align 2
	.globl	ftrace_ops_list
ftrace_ops_list:	.long ftrace_list_end
	.globl	function_trace_op
function_trace_op:	.long ftrace_list_end
	.globl	ftrace_list_end
ftrace_list_end:	.long ftrace_stub, ftrace_list_end, 0, 0, 0, 0
	/* ops structures and hashes are allocated here by workbench.ftrace */
	.globl	ftrace_arena
	.p2align 4
ftrace_arena:	.space 65536
	.globl	ftrace_arena_end
ftrace_arena_end:
