/* Shim for arch/x86/include/asm/page_types.h: 4 KiB pages. */
#ifndef _WB_ASM_PAGE_TYPES_H
#define _WB_ASM_PAGE_TYPES_H
#define PAGE_SHIFT 12
#define PAGE_SIZE (1 << PAGE_SHIFT)
#endif
