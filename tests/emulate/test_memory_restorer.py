"""MemoryRestorer gives back exactly the snapshot's bytes, also after stray stores
into the idle CPUs' memory that it does not copy otherwise."""

import numpy as np
import pytest

from workbench.emulate.run import MemoryRestorer, Run


@pytest.fixture
def run():
    r = Run("seed", "emulate_new")
    yield r
    r.close()


def _stray_guest_store(run, addr):
    cpu = run.machine.cpus[0]
    cpu.set_reg("eip", run.image.sym("int3_magic"))
    cpu.set_reg("eax", addr)  # int3_magic: *eax = 1
    cpu.run(1)


@pytest.mark.parametrize("how", ["none", "guest", "host"])
@pytest.mark.parametrize("full_snapshot", [False, True])
def test_restore_is_the_snapshot_byte_for_byte(run, how, full_snapshot):
    m = run.machine
    r = MemoryRestorer(m, run.before_memory())
    try:
        idle = m.idle_cpu_memory()
        r.to_base()
        assert np.array_equal(m.mem, run.before_memory())
        m.cpus[0].reset([(run.image.functions["do_IRQ"].site, 0)])
        if full_snapshot:  # a stray store before the snapshot: it copies everything
            m.write32(idle[2][0] + 8, 0x5A5A5A5A)
        snap = r.snapshot()
        assert isinstance(snap, np.ndarray) == full_snapshot
        want = m.mem.copy()
        m.cpus[0].run(3000)  # the workload writes its own (copied) areas
        if how == "guest":
            _stray_guest_store(run, idle[1][0] + 4 * 17)
        elif how == "host":
            m.write32(idle[3][1] - 4, 0xDEADBEEF)
        assert not np.array_equal(m.mem, want)
        r.restore(snap)
        assert np.array_equal(m.mem, want)
        r.to_base()
        assert np.array_equal(m.mem, run.before_memory())
    finally:
        r.close()
    assert m.write_watch is None


def test_an_exploration_leaves_no_machine_in_reference_cycles():
    # ctypes callbacks live on in reference cycles once removed: what they hold
    # must be small (a machine's memory is 2 MB, and it was kept per placed step)
    import gc

    from workbench.emulate.explore import explore

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        explore("seed", strategies="skip", entry="v5.3", mode="exhaustive", progress=False)
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not kinds & {"Machine", "Cpu", "Run", "MemoryRestorer", "Uc"}, kinds
