/*
 * Shim for arch/x86/include/asm/frame.h (i386, CONFIG_FRAME_POINTER):
 * FRAME_BEGIN/FRAME_END push and pop a frame (ebp), ENCODE_FRAME_POINTER
 * points ebp at pt_regs with bit 31 cleared, which tells the unwinder a
 * pt_regs frame lies there.
 */
#ifndef _WB_ASM_FRAME_H
#define _WB_ASM_FRAME_H
#ifdef CONFIG_FRAME_POINTER
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
.macro ENCODE_FRAME_POINTER
.endm
#endif
#endif
