/*
 * Shim for include/linux/objtool.h (assembly half): objtool's annotations,
 * which only write .discard sections objtool reads at build time:
 * STACK_FRAME_NON_STANDARD(_FP) exempts a function from the frame-pointer
 * checks, ANNOTATE_NOENDBR marks a symbol that needs no ENDBR. No
 * instructions.
 */
#ifndef _WB_LINUX_OBJTOOL_H
#define _WB_LINUX_OBJTOOL_H
#define STACK_FRAME_NON_STANDARD(func)
#define STACK_FRAME_NON_STANDARD_FP(func)
#ifndef ANNOTATE_NOENDBR
#define ANNOTATE_NOENDBR
#endif
#define ANNOTATE_INTRA_FUNCTION_CALL
#endif
