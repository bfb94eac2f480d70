/*
 * Shim for arch/x86/include/asm/frame.h. With CONFIG_FRAME_POINTER:
 * FRAME_BEGIN/FRAME_END push and pop a frame (ebp / rbp), ENCODE_FRAME_POINTER
 * points the frame pointer at pt_regs, marked for the unwinder (i386: bit 31
 * cleared; x86_64: bit 0 set). Without it (x86_64 with ORC, Debian's amd64
 * config) they emit nothing.
 */
#ifndef _WB_ASM_FRAME_H
#define _WB_ASM_FRAME_H
#if defined(CONFIG_FRAME_POINTER) && defined(CONFIG_X86_64)
.macro FRAME_BEGIN
	push	%rbp
	mov	%rsp, %rbp
.endm
.macro FRAME_END
	pop	%rbp
.endm
.macro ENCODE_FRAME_POINTER ptregs_offset=0
	leaq	1+\ptregs_offset(%rsp), %rbp
.endm
#elif defined(CONFIG_FRAME_POINTER)
.macro FRAME_BEGIN
	push	%ebp
	mov	%esp, %ebp
.endm
.macro FRAME_END
	pop	%ebp
.endm
.macro ENCODE_FRAME_POINTER
	mov	%esp, %ebp
	andl	$0x7fffffff, %ebp
.endm
#else
.macro FRAME_BEGIN
.endm
.macro FRAME_END
.endm
.macro ENCODE_FRAME_POINTER ptregs_offset=0
.endm
#endif
#endif
