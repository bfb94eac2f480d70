/*
 * Shim for include/linux/linkage.h: the symbol annotations of
 * Documentation/asm-annotations.rst. SYM_*_START opens a global (or local,
 * or weak) aligned symbol, SYM_*_END sets its type and size, SYM_INNER_LABEL
 * names a point inside one; the pre-5.5 names (ENTRY, END, ENDPROC, GLOBAL)
 * mean the same. Alignment is i386's without CONFIG_X86_ALIGNMENT_16 (686).
 */
#ifndef _WB_LINUX_LINKAGE_H
#define _WB_LINUX_LINKAGE_H
#include <asm/linkage.h>

#define ASM_NL ;
#ifndef __ALIGN
#define __ALIGN .align 4,0x90
#endif
#define ALIGN __ALIGN

#define SYM_T_FUNC STT_FUNC
#define SYM_T_OBJECT STT_OBJECT
#define SYM_T_NONE STT_NOTYPE
#define SYM_A_ALIGN ALIGN
#define SYM_A_NONE
#define SYM_L_GLOBAL(name) .globl name
#define SYM_L_WEAK(name) .weak name
#define SYM_L_LOCAL(name)

#define SYM_ENTRY(name, linkage, align...) linkage(name) ASM_NL align ASM_NL name:
#define SYM_START(name, linkage, align...) SYM_ENTRY(name, linkage, align)
#define SYM_END(name, sym_type) .type name sym_type ASM_NL .size name, .-name

#define SYM_INNER_LABEL_ALIGN(name, linkage) .type name SYM_T_NONE ASM_NL SYM_ENTRY(name, linkage, SYM_A_ALIGN)
#define SYM_INNER_LABEL(name, linkage) .type name SYM_T_NONE ASM_NL SYM_ENTRY(name, linkage, SYM_A_NONE)

#define SYM_FUNC_START(name) SYM_START(name, SYM_L_GLOBAL, SYM_A_ALIGN)
#define SYM_FUNC_START_NOALIGN(name) SYM_START(name, SYM_L_GLOBAL, SYM_A_NONE)
#define SYM_FUNC_START_LOCAL(name) SYM_START(name, SYM_L_LOCAL, SYM_A_ALIGN)
#define SYM_FUNC_START_WEAK(name) SYM_START(name, SYM_L_WEAK, SYM_A_ALIGN)
#define SYM_FUNC_END(name) SYM_END(name, SYM_T_FUNC)
#define SYM_CODE_START(name) SYM_START(name, SYM_L_GLOBAL, SYM_A_ALIGN)
#define SYM_CODE_START_NOALIGN(name) SYM_START(name, SYM_L_GLOBAL, SYM_A_NONE)
#define SYM_CODE_START_LOCAL(name) SYM_START(name, SYM_L_LOCAL, SYM_A_ALIGN)
#define SYM_CODE_END(name) SYM_END(name, SYM_T_NONE)

/* before v5.5 (Documentation/asm-annotations.rst lists the old names) */
#define GLOBAL(name) .globl name ASM_NL name:
#define ENTRY(name) .globl name ASM_NL ALIGN ASM_NL name:
#define END(name) .size name, .-name
#define ENDPROC(name) .type name, @function ASM_NL END(name)
#endif
