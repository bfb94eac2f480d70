/*
 * Shim for arch/x86/include/asm/alternative.h (assembly half): ALTERNATIVE
 * emits the old instructions and records the new ones for
 * apply_alternatives() to patch in at boot when the CPU has the feature.
 * The emulated CPU has none of the features the trampolines test
 * (X86_FEATURE_CALL_DEPTH: call-depth stuffing, off unless
 * retbleed=stuff; X86_FEATURE_XENPV: not a Xen guest), so the old ones stay.
 */
#ifndef _WB_ASM_ALTERNATIVE_H
#define _WB_ASM_ALTERNATIVE_H
#include <linux/stringify.h>
.macro ALTERNATIVE oldinstr, newinstr, feature
	\oldinstr
.endm
#endif
