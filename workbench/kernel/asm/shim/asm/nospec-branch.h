/*
 * Shim for arch/x86/include/asm/nospec-branch.h. JMP_NOSPEC / CALL_NOSPEC
 * are an indirect jump / call through a register (a retpoline thunk with
 * CONFIG_RETPOLINE reaches the same target); the ANNOTATE_* macros only mark
 * instructions for objtool (ANNOTATE_NOENDBR and ANNOTATE_INTRA_FUNCTION_CALL
 * come from linux/objtool.h, as there); UNTRAIN_RET and the call-depth
 * accounting macros (CONFIG_CALL_DEPTH_TRACKING, X86_64 only, v6.2 on) emit
 * nothing on i386, and nothing in the trampolines of a 6.1 x86_64 kernel
 * either: UNTRAIN_RET is used only at kernel entry (entry_64.S), and 6.1 has
 * no call-depth tracking.
 */
#ifndef _WB_ASM_NOSPEC_BRANCH_H
#define _WB_ASM_NOSPEC_BRANCH_H
#include <linux/objtool.h>
#include <asm/alternative.h>
.macro JMP_NOSPEC reg:req
	jmp	*%\reg
.endm
.macro CALL_NOSPEC reg:req
	call	*%\reg
.endm
#define ANNOTATE_RETPOLINE_SAFE
#define ANNOTATE_NOSPEC_ALTERNATIVE
#define ANNOTATE_UNRET_SAFE
#define UNTRAIN_RET
#define UNTRAIN_RET_FROM_CALL
#define CALL_DEPTH_ACCOUNT
#define RESET_CALL_DEPTH
#define RESET_CALL_DEPTH_FROM_CALL
#define INCREMENT_CALL_DEPTH
#endif
