/*
 * Shim for arch/x86/include/asm/linkage.h: RET is how kernel assembly
 * returns: through the return thunk with CONFIG_RETHUNK, "ret; int3" with
 * CONFIG_SLS, a plain ret otherwise. x86_64 aligns functions to 16 bytes,
 * padded with nops. ENDBR comes from asm/ibt.h, as there.
 */
#ifndef _WB_ASM_LINKAGE_H
#define _WB_ASM_LINKAGE_H
#include <asm/ibt.h>
#ifdef CONFIG_X86_64
#define __ALIGN .p2align 4, 0x90
#endif
#if defined(CONFIG_RETHUNK)
#define RET jmp __x86_return_thunk
#elif defined(CONFIG_SLS)
#define RET ret; int3
#else
#define RET ret
#endif
#define asmlinkage
#endif
