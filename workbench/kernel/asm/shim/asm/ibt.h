/*
 * Shim for arch/x86/include/asm/ibt.h: ENDBR marks an indirect branch target
 * (endbr64) under CONFIG_X86_KERNEL_IBT, which neither Debian 6.1 config sets:
 * it emits nothing.
 */
#ifndef _WB_ASM_IBT_H
#define _WB_ASM_IBT_H
#define ENDBR
#endif
