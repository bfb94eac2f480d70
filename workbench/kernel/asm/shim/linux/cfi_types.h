/*
 * Shim for include/linux/cfi_types.h: SYM_TYPED_FUNC_START opens a function
 * that C code calls indirectly; with CONFIG_CFI_CLANG it is preceded by the
 * function's kCFI type id. A gcc-built kernel (Debian's) has no kCFI: it is
 * SYM_FUNC_START.
 */
#ifndef _WB_LINUX_CFI_TYPES_H
#define _WB_LINUX_CFI_TYPES_H
#include <linux/linkage.h>
#define SYM_TYPED_START(name, linkage, align...) SYM_START(name, linkage, align)
#define SYM_TYPED_FUNC_START(name) SYM_TYPED_START(name, SYM_L_GLOBAL, SYM_A_ALIGN) ENDBR
#endif
