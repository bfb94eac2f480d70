/*
 * The i386 int3 entry, written to the behaviour of arch/x86/entry/entry_32.S
 * before and after 3c88c692c287 ("x86/stackframe/32: Provide consistent
 * pt_regs", v5.3), and the per-CPU workload that calls traced functions.
 *
 * The emulated CPU delivers int3 as i386 hardware does for a same-privilege
 * trap: it pushes EFLAGS, CS and EIP (no SS:ESP) and jumps to the entry the
 * machine was built with. Both entries build a struct pt_regs and call
 * do_int3(regs), where the int3 handler strategy runs.
 */
	.include "defs.inc"
	.text

.macro COUNT_TRAP
	GET_THREAD_INFO %ecx
	incl	TI_TRAPS(%ecx)
.endm

/*
 * What both entries do with a complete pt_regs at %esp: count the trap, call
 * do_int3(regs) (the strategy acts on regs), and restore the registers and gs.
 */
.macro INT3_BODY
	SAVE_REST
	COUNT_TRAP
	movl	%esp, %eax
	call	do_int3
	RESTORE_REST
	popl	%gs
.endm

/*
 * v5.1: pt_regs ends at the hardware frame. regs->sp and regs->ss are not
 * saved: those two fields overlay the interrupted stack, so code that uses
 * regs->sp (int3_emulate_push) reads and writes the wrong thing.
 */
ENTRY int3_entry_v51
	pushl	$-1				/* orig_ax */
	pushl	%gs
	INT3_BODY
	addl	$4, %esp			/* orig_ax */
	iret
END int3_entry_v51

/*
 * v5.3: copy the frame down and complete it with sp and ss, leaving the
 * original five words as a gap that int3_emulate_push may write into; on the
 * way out rebuild the iret frame just below the (possibly changed) regs->sp.
 */
ENTRY int3_entry_v53
	pushl	$-1				/* orig_ax */
	pushl	%gs
	pushl	%ss				/* regs->ss */
	pushl	%esp				/* regs->sp ... */
	addl	$6*4, (%esp)			/* ... = the interrupted context */
	pushl	6*4(%esp)			/* flags */
	pushl	6*4(%esp)			/* cs */
	pushl	6*4(%esp)			/* ip */
	pushl	6*4(%esp)			/* orig_ax */
	pushl	6*4(%esp)			/* gs */
	INT3_BODY
	/* stack: orig_ax, ip, cs, flags, sp, ss */
	pushl	%eax
	pushl	%ecx
	movl	6*4(%esp), %eax			/* regs->sp, maybe moved by an emulated push */
	movl	5*4(%esp), %ecx
	movl	%ecx, -4(%eax)			/* flags */
	movl	4*4(%esp), %ecx
	movl	%ecx, -8(%eax)			/* cs */
	movl	3*4(%esp), %ecx
	movl	%ecx, -12(%eax)			/* ip */
	movl	1*4(%esp), %ecx
	movl	%ecx, -16(%eax)			/* the saved eax */
	popl	%ecx
	leal	-16(%eax), %esp
	popl	%eax
	iret
END int3_entry_v53

/*
 * void do_int3(struct pt_regs *regs): the C part of the trap. The machine
 * runs the int3 handler strategy here (a host hook on this address acting on
 * regs in emulated memory, as the kernel's C handler does) before the ret.
 */
ENTRY do_int3
	nop
	ret
END do_int3

/* reg := this CPU's current call record (thread_info in %ebp) */
.macro LOG_RECORD reg
	movl	TI_LOG_HEAD(%ebp), \reg
	andl	$(LOG_N - 1), \reg
	shll	$CR_SHIFT, \reg
	addl	TI_LOG(%ebp), \reg
.endm

/* the patch phase, ring-buffer head and int3 count, into the record at %edi */
.macro SNAPSHOT phase, rb, traps
	movl	patch_phase, %eax
	movl	%eax, \phase(%edi)
	movl	TI_RB(%ebp), %eax
	movl	RB_HEAD(%eax), %eax
	movl	%eax, \rb(%edi)
	movl	TI_TRAPS(%ebp), %eax
	movl	%eax, \traps(%edi)
.endm

/* %ecx |= bit unless want == have, then repair what the caller needs */
.macro CHECK want, have, bit, repair:vararg
	cmpl	\want, \have
	je	1f
	orl	$\bit, %ecx
	\repair
1:
.endm

/*
 * The per-CPU workload: forever call thread_info->calls[i].fn after an idle
 * loop of calls[i].gap iterations, and log each call: which body ran, the
 * tracer records and int3 entries it caused, the patch phase around it, and
 * whether the caller's registers and stack survived it.
 */
ENTRY cpu_workload
	GET_THREAD_INFO %ebp
.Lnext_call:
	movl	TI_NEXT(%ebp), %ecx
	cmpl	TI_NCALLS(%ebp), %ecx
	jb	1f
	xorl	%ecx, %ecx
1:	leal	1(%ecx), %eax
	movl	%eax, TI_NEXT(%ebp)
	movl	TI_CALLS(%ebp), %eax
	movl	(%eax,%ecx,8), %esi		/* fn */
	movl	4(%eax,%ecx,8), %edx		/* gap, bit 31: the call's context has IF clear */
	movl	%edx, %eax
	andl	$GAP_IRQOFF, %eax
	movl	%eax, TI_IRQOFF(%ebp)
	andl	$~GAP_IRQOFF, %edx
2:	testl	%edx, %edx			/* idle: random call times */
	jz	3f
	decl	%edx
	jmp	2b
3:	LOG_RECORD %edi
	movl	%esi, CR_FN(%edi)
	SNAPSHOT CR_PHASE0, CR_RB0, CR_TRAPS0
	movl	TI_KLP(%ebp), %eax
	movl	%eax, CR_KLP(%edi)
	movl	TI_PROBE(%ebp), %eax
	movl	%eax, CR_PROBE(%edi)
	movl	$0, TI_BODY(%ebp)
	movl	$0, TI_BODY_CNT(%ebp)
	movl	$CANARY_EBX, %ebx
	movl	%esp, TI_SAVED_ESP(%ebp)
	.globl	workload_enter
workload_enter:					/* the call begins; IF is still set */
	cmpl	$0, TI_IRQOFF(%ebp)
	je	4f
	cli					/* irq-off or interrupt context: the interrupt gate's IF = 0 */
4:
	.globl	workload_call
workload_call:
	call	*%esi
	.globl	workload_return
workload_return:
	sti					/* back in the workload's process context */
	xorl	%ecx, %ecx			/* corruption bits */
	GET_THREAD_INFO %eax
	CHECK	%eax, %ebp, 1, movl %eax, %ebp			/* ebp lost */
	CHECK	TI_SAVED_ESP(%ebp), %esp, 2, movl TI_SAVED_ESP(%ebp), %esp	/* esp moved */
	CHECK	$CANARY_EBX, %ebx, 4				/* ebx lost */
	LOG_RECORD %eax
	CHECK	%eax, %edi, 8, movl %eax, %edi			/* edi lost */
	CHECK	CR_FN(%edi), %esi, 16				/* esi lost */
	movl	%ecx, CR_CORRUPT(%edi)
	movl	TI_BODY(%ebp), %eax
	movl	%eax, CR_BODY(%edi)
	movl	TI_BODY_CNT(%ebp), %eax
	movl	%eax, CR_BODY_CNT(%edi)
	SNAPSHOT CR_PHASE1, CR_RB1, CR_TRAPS1
	movl	TI_KLP(%ebp), %eax
	subl	CR_KLP(%edi), %eax
	movl	%eax, CR_KLP(%edi)		/* livepatch redirections during the call */
	movl	TI_PROBE(%ebp), %eax
	subl	CR_PROBE(%edi), %eax
	movl	%eax, CR_PROBE(%edi)		/* probe handler calls during the call */
	movl	TI_LOG_HEAD(%ebp), %eax
	movl	%eax, CR_SEQ(%edi)
	incl	TI_LOG_HEAD(%ebp)
	.globl	workload_logged
workload_logged:
	jmp	.Lnext_call
END cpu_workload

	.data
	.p2align 3
	/* flat GDT; entries 12 and 13 are __KERNEL_CS and __KERNEL_DS */
	.globl	gdt_table
gdt_table:
	.fill	12, 8, 0
	.quad	0x00cf9b000000ffff
	.quad	0x00cf93000000ffff
	.fill	2, 8, 0
	.globl	gdt_table_end
gdt_table_end:

	/* index of the patch step in force; the patcher writes it at every step */
	.globl	patch_phase
patch_phase:	.long 0

	.bss
	.p2align 13
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

	.text
/*
 * The int3 selftest of 7457c0da024b: an int3 whose handler emulates a call
 * to int3_magic(&val), which sets the flag; returns val in eax.
 */
ENTRY int3_selftest
	pushl	$0				/* unsigned int val = 0 */
	movl	%esp, %eax			/* "a" (&val) */
	.globl	int3_selftest_ip
int3_selftest_ip:
	int3
	nop
	nop
	nop
	nop
	popl	%eax
	ret
END int3_selftest

ENTRY int3_magic
	movl	$1, (%eax)
	ret
END int3_magic
