/* Shim for include/linux/stringify.h: __stringify turns its (macro-expanded) arguments into a string. */
#ifndef _WB_LINUX_STRINGIFY_H
#define _WB_LINUX_STRINGIFY_H
#define __stringify_1(x...) #x
#define __stringify(x...) __stringify_1(x)
#endif
