"""Machine and Cpu: one shared memory, per-CPU translations, faults as outcomes."""

import pytest

from workbench.base.errors import ConfigError
from workbench.kernel.ftrace import ftrace_call_replace
from workbench.kernel.machine import Machine


def _loop(m, cpu, fn):
    cpu.reset([(m.image.functions[fn].site, 0)])


def test_data_is_shared_at_once(image):
    m = Machine(image, 2)
    for c in m.cpus:
        _loop(m, c, "do_IRQ")
    m.cpus[0].run(500)
    m.cpus[1].run(500)
    # both CPUs' logs live in the one buffer, each written by its own CPU
    assert m.cpus[0].completed_calls() > 0 and m.cpus[1].completed_calls() > 0
    assert m.read32(m.cpus[1].ti) == 1  # thread_info.cpu


def test_changed_text_is_seen_only_after_sync_core(image):
    m = Machine(image, 1)
    cpu = m.cpus[0]
    site = image.functions["fn_00000"].site
    _loop(m, cpu, "fn_00000")
    cpu.run(300)
    cpu.drain()
    # make the site call int3_magic-like code: ftrace_stub is a bare ret, harmless,
    # but a call into the tracer leaves a ring-buffer record we can see
    m.write(site, ftrace_call_replace(site, image.sym("ftrace_caller")))
    m.write32(image.sym("function_trace_op"), image.sym("ftrace_list_end"))
    m.write32(image.sym("function_enabled"), 1)  # the tracer is registered, not registering
    m.write(image.sym("ftrace_call"), ftrace_call_replace(image.sym("ftrace_call"),
                                                          image.sym("function_trace_call")))
    cpu.run(300)
    assert cpu.thread_info("rb") and m.read32(cpu.rb) == 0, "stale translation must keep the NOP"
    m.sync_core()
    cpu.run(300)
    assert m.read32(cpu.rb) > 0, "after sync_core the CPU executes the new call"


def test_store_to_text_is_a_recorded_crash(image):
    m = Machine(image, 1)
    cpu = m.cpus[0]
    cpu.set_reg("eip", image.sym("int3_magic"))
    cpu.set_reg("eax", image.sym("do_IRQ"))  # *ptr = 1 into read-only text
    assert cpu.run(10) is False
    assert cpu.crash.addr == image.sym("do_IRQ")
    assert "write" in cpu.crash.reason
    assert cpu.run(10) is False  # stays down until reset


def test_unhandled_int3_is_an_oops(image):
    m = Machine(image, 1)
    cpu = m.cpus[0]
    cpu.set_reg("eip", image.sym("int3_selftest"))
    cpu.run(100)
    assert "unhandled int3" in cpu.crash.reason
    assert cpu.crash.addr == image.sym("int3_selftest_ip")


@pytest.mark.parametrize("n", [0, 17])
def test_cpu_count_is_checked(image, n):
    with pytest.raises(ConfigError, match=r"cpus: .* valid range \[1, 16\]"):
        Machine(image, n)


def test_unknown_entry(image):
    with pytest.raises(ConfigError, match="entry: unknown value 'v4'; choose from v5.1, v5.3"):
        Machine(image, 1, entry="v4")


@pytest.mark.parametrize("reg, bit", [("ebx", 4), ("esi", 16), ("edi", 8)])
def test_workload_detects_a_callee_that_loses_callee_saved_registers(image, reg, bit):
    from workbench.emulate.outcomes import classify, observe

    m = Machine(image, 1)
    cpu = m.cpus[0]
    _loop(m, cpu, "fn_00004")
    cpu.run(10**4, until=image.sym("workload_call"))
    cpu.run(1)  # into the traced function
    cpu.set_reg(reg, 0xDEAD)
    cpu.run(10**4, until=image.sym("workload_logged"))
    obs = observe(cpu, cpu.drain()[0])
    assert obs.corrupt == bit
    assert classify(obs, frozenset(), frozenset(), frozenset())["crash"]


def _spinning(image, count_text_writes):
    """A CPU spinning on int3_selftest's int3 as ``spin`` does: back onto it, refetched."""
    site = image.sym("int3_selftest_ip")
    traps = []

    def handler(m, cpu, regs):
        traps.append(regs.ip)
        regs.ip = site
        cpu.refetch(site, site + 5)
        return True

    m = Machine(image, 1, int3_handler=handler)
    if count_text_writes:
        m.count_text_writes()
    cpu = m.cpus[0]
    syncs = []
    plain = cpu.sync_core
    cpu.sync_core = lambda lo=None, hi=None: (syncs.append((lo, hi)), plain(lo, hi))[1]
    cpu.set_reg("eip", image.sym("int3_selftest"))
    return m, cpu, traps, syncs


@pytest.mark.parametrize("cut", range(1, 180))  # three traps, ~55 instructions apart
def test_a_refetch_put_off_is_the_refetch(image, cut):
    """Counting text writes puts spin's refetches off, yet whichever instruction the
    new byte lands at, the CPU traps as often and runs the same instructions as when
    every refetch drops the site at once (a put-off drop is done before the write,
    unless the CPU stands on the site: then its block was translated already)."""
    site = image.sym("int3_selftest_ip")
    got = []
    for count in (False, True):
        m, cpu, traps, syncs = _spinning(image, count)
        cpu.run(cut)
        if count and len(traps) >= 2:
            assert len(syncs) == 1, "the same bytes were refetched on every trap"
        m.write(site, b"\x90")  # a nop: the CPU runs on once it fetches the new byte
        cpu.run(200)
        got.append((len(traps), cpu.eip, cpu.crash, [cpu.reg(r) for r in ("eax", "esp", "eflags")]))
    assert got[0] == got[1]


def test_do_int3_hook_goes_in_at_the_first_trap(image):
    """Until a CPU traps, Unicorn's instruction counter is its only code hook (inlined)."""
    seen = []
    m = Machine(image, 1, int3_handler=lambda m, cpu, regs: seen.append(regs.ip) or False)
    cpu = m.cpus[0]
    _loop(m, cpu, "do_IRQ")
    cpu.run(500)
    assert cpu.completed_calls() > 0 and not cpu._do_int3_hooked
    cpu.reset()
    cpu.set_reg("eip", image.sym("int3_selftest"))
    cpu.run(100)
    assert cpu._do_int3_hooked and seen == [image.sym("int3_selftest_ip") + 1]
    assert "unhandled int3" in cpu.crash.reason
