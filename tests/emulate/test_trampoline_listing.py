"""The per-ops trampoline create_trampoline() makes on x86_64, listed (emulate.watch.trampoline_listing)."""

import re

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.watch import trampoline_listing


def test_livepatch_trampoline_is_a_regs_caller_copy_reading_its_own_ops_pointer():
    text = trampoline_listing("livepatch", "livepatch,tracer")
    lines = text.splitlines()
    assert lines[0].endswith("<trampoline:livepatch>:") and "pushfq" in lines[1]  # ftrace_regs_caller's copy
    load = next(line for line in lines if re.search(r"movq 0x[0-9a-f]+\(%rip\), %rdx", line))
    at, disp = int(load.split(":")[0], 16), int(re.search(r"movq (0x[0-9a-f]+)\(%rip\)", load).group(1), 16)
    size = len(load.split(":", 1)[1].split("  ")[1].split())  # the instruction's bytes
    ptr = next(line for line in lines if ".quad" in line)
    assert at + size + disp == int(ptr.split(":")[0], 16)  # the load reads the pointer stored after the code
    assert "ftrace_arena" in ptr and "leaq (%rsp), %rcx" in text  # regs: the 4th argument
    assert re.search(r"callq 0x[0-9a-f]+  <ftrace_ops_assist_func>", text)  # the ops' own function, directly
    assert "jmp" in lines[-2]


def test_tracer_trampoline_is_a_caller_copy_without_regs():
    text = trampoline_listing("tracer", "livepatch,tracer")
    assert "pushfq" not in text and "movq $0, %rcx" in text  # regs = NULL, as ftrace_caller passes
    assert re.search(r"callq 0x[0-9a-f]+  <function_trace_call>", text)


def test_refused_where_there_are_none_or_no_such_ops():
    with pytest.raises(ConfigError, match=r"^arch: i386 has no per-ops trampolines .*choose arch from x86_64$"):
        trampoline_listing("tracer", arch="i386")
    with pytest.raises(ConfigError, match=r"^ops: 'probe' is not registered; choose from livepatch, tracer$"):
        trampoline_listing("probe")
