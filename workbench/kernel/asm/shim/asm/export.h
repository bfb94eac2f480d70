/* Shim for arch/x86/include/asm/export.h, which includes include/asm-generic/export.h: the
 * same EXPORT_SYMBOL macros as linux/export.h, so it includes that shim. */
#include <linux/export.h>
