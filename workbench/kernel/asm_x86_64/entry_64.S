/*
 * The x86_64 int3 entry, written to the behaviour of arch/x86/entry/entry_64.S
 * (idtentry int3 do_int3 has_error_code=0) before and after 2700fefdb2d9
 * ("x86_64: Add gap to int3 to allow for call emulation", v5.2), and the
 * per-CPU workload that calls traced functions.
 *
 * The emulated CPU delivers int3 as 64-bit hardware does: it aligns RSP down
 * to 16 bytes and pushes SS, RSP, RFLAGS, CS and RIP, whatever the privilege
 * (no IST: int3 runs on the interrupted stack since d8ba61ba58c8, 2015).
 * Both entries push orig_ax = -1 and the registers in pt_regs order
 * (PUSH_AND_CLEAR_REGS, arch/x86/entry/calling.h) and call
 * do_int3(regs, error_code), where the int3 handler strategy runs.
 */
	.include "defs.inc"
	.code64
	.text

/* PUSH_REGS / POP_REGS of arch/x86/entry/calling.h */
.macro PUSH_REGS
	pushq	%rdi
	pushq	%rsi
	pushq	%rdx
	pushq	%rcx
	pushq	%rax
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
.endm

.macro POP_REGS
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rax
	popq	%rcx
	popq	%rdx
	popq	%rsi
	popq	%rdi
.endm

.macro INT3_BODY version
	PUSH_REGS
	GET_THREAD_INFO %rcx
	incl	TI_TRAPS(%rcx)
	movq	%rsp, %rdi			/* regs */
	xorl	%esi, %esi			/* error_code */
	call	do_int3
	POP_REGS
	addq	$8, %rsp			/* orig_ax */
	.globl	int3_iret_\version
int3_iret_\version:
	iretq					/* RIP, CS, RFLAGS, RSP and SS from pt_regs */
.endm

/*
 * v5.1: pt_regs ends with the hardware frame. regs->sp is the interrupted
 * RSP, and the frame lies right below it (below the 16-byte alignment): a
 * push by int3_emulate_push() at regs->sp - 8 lands on regs->ss when the
 * interrupted RSP was 16-byte aligned, in the alignment slot otherwise.
 */
ENTRY int3_entry_v51
	pushq	$-1				/* orig_ax */
	INT3_BODY v51
END int3_entry_v51

/*
 * v5.2 (2700fefdb2d9): from kernel mode, copy orig_ax and the hardware frame
 * six words down, leaving a gap between pt_regs and the interrupted stack
 * that int3_emulate_push() writes into; iretq then takes the (possibly
 * lowered) regs->sp.
 */
ENTRY int3_entry_v52
	pushq	$-1				/* orig_ax */
	testb	$3, PT_CS-PT_ORIG_RAX(%rsp)
	jnz	1f				/* from user mode: no gap */
	.rept	6
	pushq	5*8(%rsp)
	.endr
1:	INT3_BODY v52
END int3_entry_v52

/*
 * void do_int3(struct pt_regs *regs, long error_code): the C part of the
 * trap. The machine runs the int3 handler strategy here (a host hook on this
 * address acting on regs in emulated memory) before the ret.
 */
ENTRY do_int3
	nop
	ret
END do_int3

/* reg := this CPU's current call record (thread_info in %rbp) */
.macro LOG_RECORD reg, reg32
	movl	TI_LOG_HEAD(%rbp), \reg32
	andl	$(LOG_N - 1), \reg32
	shll	$CR_SHIFT, \reg32
	addl	TI_LOG(%rbp), \reg32
.endm

.macro SNAPSHOT phase, rb, traps
	movl	patch_phase(%rip), %eax
	movl	%eax, \phase(%rdi)
	movl	TI_RB(%rbp), %eax
	movl	RB_HEAD(%rax), %eax
	movl	%eax, \rb(%rdi)
	movl	TI_TRAPS(%rbp), %eax
	movl	%eax, \traps(%rdi)
.endm

.macro CHECK want, have, bit, repair:vararg
	cmpq	\want, \have
	je	1f
	orl	$\bit, %ecx
	\repair
1:
.endm

/*
 * The per-CPU workload, as on i386: forever call thread_info->calls[i].fn
 * after an idle loop of calls[i].gap iterations, and log each call.
 * The machine starts it with RSP 8 bytes below a 16-byte boundary, so a
 * traced function is entered with RSP 16-byte aligned. The kernel is built
 * with -mpreferred-stack-boundary=3 (arch/x86/Makefile), so a kernel
 * function can be entered at either parity; this is the one at which a push
 * at regs->sp - 8 reaches the v5.1 frame (see int3_entry_v51).
 */
ENTRY cpu_workload
	GET_THREAD_INFO %rbp
.Lnext_call:
	movl	TI_NEXT(%rbp), %ecx
	cmpl	TI_NCALLS(%rbp), %ecx
	jb	1f
	xorl	%ecx, %ecx
1:	leal	1(%rcx), %eax
	movl	%eax, TI_NEXT(%rbp)
	movl	TI_CALLS(%rbp), %eax
	movl	(%rax,%rcx,8), %esi		/* fn */
	movl	4(%rax,%rcx,8), %edx		/* gap, bit 31: the call's context has IF clear */
	movl	%edx, %eax
	andl	$GAP_IRQOFF, %eax
	movl	%eax, TI_IRQOFF(%rbp)
	andl	$~GAP_IRQOFF, %edx
2:	testl	%edx, %edx
	jz	3f
	decl	%edx
	jmp	2b
3:	LOG_RECORD %rdi, %edi
	movl	%esi, CR_FN(%rdi)
	SNAPSHOT CR_PHASE0, CR_RB0, CR_TRAPS0
	movl	TI_KLP(%rbp), %eax
	movl	%eax, CR_KLP(%rdi)
	movl	TI_PROBE(%rbp), %eax
	movl	%eax, CR_PROBE(%rdi)
	movl	$0, TI_BODY(%rbp)
	movl	$0, TI_BODY_CNT(%rbp)
	movl	$CANARY_EBX, %ebx
	movl	%esp, TI_SAVED_ESP(%rbp)
	.globl	workload_enter
workload_enter:
	cmpl	$0, TI_IRQOFF(%rbp)
	je	4f
	cli
4:
	.globl	workload_call
workload_call:
	call	*%rsi
	.globl	workload_return
workload_return:
	sti
	xorl	%ecx, %ecx			/* corruption bits */
	GET_THREAD_INFO %rax
	CHECK	%rax, %rbp, 1, movq %rax, %rbp			/* rbp lost */
	movl	TI_SAVED_ESP(%rbp), %eax
	CHECK	%rax, %rsp, 2, movq %rax, %rsp			/* rsp moved */
	movl	$CANARY_EBX, %eax
	CHECK	%rax, %rbx, 4					/* rbx lost */
	LOG_RECORD %rax, %eax
	CHECK	%rax, %rdi, 8, movq %rax, %rdi			/* rdi lost */
	movl	CR_FN(%rdi), %eax
	CHECK	%rax, %rsi, 16					/* rsi lost */
	movl	%ecx, CR_CORRUPT(%rdi)
	movl	TI_BODY(%rbp), %eax
	movl	%eax, CR_BODY(%rdi)
	movl	TI_BODY_CNT(%rbp), %eax
	movl	%eax, CR_BODY_CNT(%rdi)
	SNAPSHOT CR_PHASE1, CR_RB1, CR_TRAPS1
	movl	TI_KLP(%rbp), %eax
	subl	CR_KLP(%rdi), %eax
	movl	%eax, CR_KLP(%rdi)
	movl	TI_PROBE(%rbp), %eax
	subl	CR_PROBE(%rdi), %eax
	movl	%eax, CR_PROBE(%rdi)
	movl	TI_LOG_HEAD(%rbp), %eax
	movl	%eax, CR_SEQ(%rdi)
	incl	TI_LOG_HEAD(%rbp)
	.globl	workload_logged
workload_logged:
	jmp	.Lnext_call
END cpu_workload

	.data
	.p2align 3
	/* GDT: entries 2 and 3 are __KERNEL_CS (64-bit code) and __KERNEL_DS */
	.globl	gdt_table
gdt_table:
	.quad	0, 0
	.quad	0x00af9b000000ffff
	.quad	0x00cf93000000ffff
	.globl	gdt_table_end
gdt_table_end:

	.globl	patch_phase
patch_phase:	.long 0

	.bss
	.p2align 14
	.globl	cpu_stacks
cpu_stacks:	.space THREAD_SIZE * MAX_CPUS
	.p2align 6
	.globl	ring_buffers
ring_buffers:	.space RB_SIZE * MAX_CPUS
	.p2align 6
	.globl	call_logs
call_logs:	.space (LOG_N << CR_SHIFT) * MAX_CPUS
	.globl	workload_calls
workload_calls:	.space 8 * 4096 * MAX_CPUS
