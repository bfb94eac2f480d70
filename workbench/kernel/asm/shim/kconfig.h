/*
 * The kernel configuration a tree's ftrace_32.S is assembled under: the options
 * of Debian's 6.1 i386 "686" kernel (linux-config-6.1, config.i386_none_686)
 * that the trampolines test. CONFIG_RETHUNK is not set there (return thunks
 * default on for X86_64 only), CONFIG_SLS and call-depth tracking are X86_64-only,
 * and i386 has no ORC unwinder, so it uses frame pointers.
 */
#define CONFIG_X86_32 1
#define CONFIG_FUNCTION_TRACER 1
#define CONFIG_DYNAMIC_FTRACE 1
#define CONFIG_DYNAMIC_FTRACE_WITH_REGS 1
#define CONFIG_HAVE_DYNAMIC_FTRACE_WITH_REGS 1
#define CONFIG_FUNCTION_GRAPH_TRACER 1
#define CONFIG_FRAME_POINTER 1
#define CONFIG_UNWINDER_FRAME_POINTER 1
#define CONFIG_RETPOLINE 1
