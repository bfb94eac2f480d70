/* Shim for arch/x86/include/asm/unwind_hints.h: hints for objtool and the ORC unwinder
 * (x86_64 only); they emit no instructions. */
#ifndef _WB_ASM_UNWIND_HINTS_H
#define _WB_ASM_UNWIND_HINTS_H
.macro UNWIND_HINT_EMPTY
.endm
.macro UNWIND_HINT_FUNC
.endm
.macro UNWIND_HINT_REGS base=0 offset=0 indirect=0 extra=1 partial=0
.endm
.macro UNWIND_HINT_IRET_REGS base=0 offset=0
.endm
.macro UNWIND_HINT_END_OF_STACK
.endm
.macro UNWIND_HINT_UNDEFINED
.endm
#endif
