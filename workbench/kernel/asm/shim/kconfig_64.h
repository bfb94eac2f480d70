/*
 * The kernel configuration a tree's ftrace_64.S is assembled under: the options
 * of Debian's 6.1 amd64 kernel (linux-image-6.1.0-*-amd64, /boot/config-6.1.0-*-amd64)
 * that the trampolines test. Return thunks are on (CONFIG_RETHUNK, so RET is
 * "jmp __x86_return_thunk") and so is CONFIG_SLS; x86_64 unwinds with ORC
 * (CONFIG_UNWINDER_ORC), so there are no frame pointers; indirect branch
 * tracking is off (# CONFIG_X86_KERNEL_IBT is not set: ENDBR is empty), and
 * gcc builds it (no CONFIG_CFI_CLANG). CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS is
 * set there too; it changes C code (which ops need ftrace_regs_caller), not
 * this file.
 */
#define CONFIG_X86_64 1
#define CONFIG_64BIT 1
#define CONFIG_FUNCTION_TRACER 1
#define CONFIG_DYNAMIC_FTRACE 1
#define CONFIG_DYNAMIC_FTRACE_WITH_REGS 1
#define CONFIG_HAVE_DYNAMIC_FTRACE_WITH_REGS 1
#define CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS 1
#define CONFIG_FUNCTION_GRAPH_TRACER 1
#define CONFIG_UNWINDER_ORC 1
#define CONFIG_RETPOLINE 1
#define CONFIG_RETHUNK 1
#define CONFIG_SLS 1
#define CONFIG_OBJTOOL 1
