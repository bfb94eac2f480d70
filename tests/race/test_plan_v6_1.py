"""The v6.1 update plan: batches as text_poke_queue cuts them, rounds and IPIs per update."""

import pytest

from workbench.base.errors import ConfigError
from workbench.race.plan_v6_1 import ROUNDS_PER_BATCH, batches_of, plan_v6_1
from workbench.race.plan import TP_VEC_MAX


def test_batches_cut_at_tp_vec_max_and_at_a_lower_address():
    assert batches_of([]) == 0
    assert batches_of(range(TP_VEC_MAX)) == 1
    assert batches_of(range(TP_VEC_MAX + 1)) == 2
    # tp_order_fail(): an address below the last queued one flushes early
    assert batches_of([10, 20, 5, 30]) == 2
    assert batches_of([10, 20, 5, 4]) == 3


@pytest.mark.parametrize("arch", ["i386", "x86_64"])
def test_tracer_on_and_off_rounds(arch):
    # list func on both trampoline calls, the site batches, ftrace_sync_ipi, the final func on both
    for n, b in ((1, 1), (256, 1), (257, 2), (2400, 10)):
        off = plan_v6_1("tracer_off", arch, n)
        assert off.site_batches == b
        assert off.sync_rounds == ROUNDS_PER_BATCH * (4 + b)
        assert off.ftrace_sync_ipis == 1
        on = plan_v6_1("tracer_on", arch, n)
        extra = 1 if arch == "x86_64" else 0  # arch_ftrace_update_trampoline() pokes the ops' own trampoline
        assert on.sync_rounds == ROUNDS_PER_BATCH * (4 + b + extra)
        first = plan_v6_1("tracer_on", arch, n, first_registration=True)
        assert first.sync_rounds == ROUNDS_PER_BATCH * (4 + b)


def test_kprobe_updates_change_one_site_and_scale_with_cpus():
    add = plan_v6_1("kprobe_add", "i386", 5000)
    assert (add.site_batches, add.sync_rounds, add.ftrace_sync_ipis) == (1, 9, 0)
    rem = plan_v6_1("kprobe_remove", "i386", 5000)
    assert (rem.site_batches, rem.sync_rounds, rem.ftrace_sync_ipis) == (1, 15, 1)
    assert rem.ipis(1) == 0 and rem.ipis(2) == 16 and rem.ipis(4) == 48
    assert add.per_batch_ipis(4) == 9


def test_bad_update_is_a_config_error():
    with pytest.raises(ConfigError, match="update"):
        plan_v6_1("tracer_sideways", "i386", 1)
    with pytest.raises(ConfigError, match="arch"):
        plan_v6_1("tracer_on", "arm64", 1)
