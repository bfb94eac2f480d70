"""Unicorn engines are released as soon as their Machine is, and a long-lived
Machine that syncs on every call stays flat in native memory."""

import gc
import weakref

from workbench.emulate.run import Run
from workbench.emulate.watch import make_ops
from workbench.kernel.ftrace import FtraceState
from workbench.kernel.machine import Machine


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _engines_released_without_gc(make):
    gc.collect()
    gc.disable()  # only reference counting may free them
    try:
        machines = make()
        refs = [weakref.ref(c.uc) for m in machines for c in m.cpus]
        del machines
        return [r() is None for r in refs]
    finally:
        gc.enable()


def test_dropped_machine_releases_its_engines_at_once(image):
    def make():
        m = Machine(image, 3)
        m.int3_handler = lambda machine, cpu, regs: False
        m.cpus[0].reset([(image.functions["do_IRQ"].site, 0)])
        m.cpus[0].run(500)
        return [m]
    assert all(_engines_released_without_gc(make))


def test_dropped_run_releases_its_engines_at_once():
    def make():
        run = Run("seed", "emulate_new")
        run.expected(0, "do_IRQ")
        return [run.machine, run.ref]
    assert all(_engines_released_without_gc(make))


def test_close_releases_the_engines(image):
    m = Machine(image, 2)
    refs = [weakref.ref(c.uc) for c in m.cpus]
    gc.disable()
    try:
        m.close()
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_long_lived_machine_syncing_every_call_stays_flat(image):
    # Removing all text from the translation cache used to retire each call's
    # retranslated code into Unicorn's 1 GB code buffer: about 15-30 KB a call.
    m = Machine(image, 1)
    FtraceState(image, make_ops("livepatch,tracer")).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(image.functions["do_IRQ"].site, 0)])

    def calls(n):
        for _ in range(n):
            m.sync_core()
            cpu.run(10**4, until=image.sym("workload_logged"))
            cpu.run(1)
            if cpu.completed_calls() - cpu.drained > 512:
                cpu.drain()

    calls(300)  # warm: first translations, allocator pools
    before, c0 = _rss_mb(), cpu.completed_calls()
    calls(2000)
    per_call_kb = (_rss_mb() - before) * 1024 / (cpu.completed_calls() - c0)
    assert cpu.crash is None and cpu.completed_calls() - c0 >= 2000
    assert per_call_kb < 2.0, f"native memory grows {per_call_kb:.1f} KB per call"


def test_stores_into_idle_cpus_memory_are_seen_by_a_write_hook_and_the_host_watch(image):
    from unicorn import UC_HOOK_MEM_WRITE

    m = Machine(image, 1)
    cpu = m.cpus[0]
    idle = m.idle_cpu_memory()
    assert len(idle) == 4 and all(lo < hi for lo, hi in idle)
    assert not any(lo < cpu.ti + 8192 and cpu.ti < hi for lo, hi in idle)  # CPU 0's own stack is not idle
    hits = []
    for lo, hi in idle:
        cpu.add_hook(UC_HOOK_MEM_WRITE, lambda access, addr, size, value: hits.append(addr), begin=lo, end=hi - 1)
    target = idle[1][0] + 64  # another CPU's call log, say
    cpu.set_reg("eip", image.sym("int3_magic"))
    cpu.set_reg("eax", target)  # int3_magic: *eax = 1
    cpu.run(1)
    assert hits == [target] and m.read32(target) == 1
    m.write_watch = tuple(idle)
    m.write32(cpu.ti, 0)
    assert m.write_hits == 0
    m.write32(target, 2)
    assert m.write_hits == 1
