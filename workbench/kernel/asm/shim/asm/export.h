/* Shim for arch/x86/include/asm/export.h and include/asm-generic/export.h: EXPORT_SYMBOL
 * adds a symbol to the module symbol table (__ksymtab); the emulated kernel loads no modules. */
#ifndef _WB_ASM_EXPORT_H
#define _WB_ASM_EXPORT_H
#define EXPORT_SYMBOL(name)
#define EXPORT_SYMBOL_GPL(name)
#define EXPORT_SYMBOL_NS(name, ns)
#define EXPORT_SYMBOL_NS_GPL(name, ns)
#endif
