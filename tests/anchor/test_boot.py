"""Real boots measured: Debian's 6.1 kernels under QEMU TCG (CI installs qemu-system-x86 and busybox-static).

Each test boots a kernel (10-60 s under TCG on two busy cores); the full
grid is ``make anchor``, not these. The faults (a hung guest, Ctrl-C, no
QEMU) are ``test_boot_faults.py``: two modules, so that two end-to-end
workers boot side by side.
"""

import pytest

from workbench.anchor.run import QUICK_NS, measure, slope_table, with_model

# each test boots a guest: the end-to-end part, `make endtoend`
pytestmark = [pytest.mark.qemu, pytest.mark.slow(60)]  # about 60 s: started first


def test_one_vcpu_guest_receives_no_function_call_ipi():
    frame = with_model(measure("i386", 1, QUICK_NS))
    assert len(frame) == 4 * len(QUICK_NS) and (frame.enabled_after[frame["update"] == "tracer_on"] > 500).any()
    # on_each_cpu() runs the callback locally and sends nothing with one CPU online
    assert (frame.cal_total == 0).all() and (frame.model_ipis == 0).all()
    # the guest did run the protocol: its own do_sync_core rounds were asked of no other CPU
    assert (frame.asked_text_poke_sync == 0).all() and (frame.send_calls == 0).all()


def test_i386_per_batch_slope_matches_the_v6_1_model():
    frame = with_model(measure("i386", 2, QUICK_NS))
    slopes = slope_table(frame)
    assert set(slopes["update"]) == {"tracer_on", "tracer_off"}
    for _, s in slopes.iterrows():
        # do_sync_core rounds sent per extra batch of 256 sites: exactly text_poke_bp_batch's three
        assert s.slope_sync == pytest.approx(3.0, abs=1e-9)
        assert s.slope_model == pytest.approx(3.0, abs=1e-9)
        # what the CAL row received per batch, less the classes outside the model (remote wakeups,
        # idle-balance kicks: they grow with the update's duration): within 5 % of the model
        assert abs(s.slope_error_less_outside) < 0.05, s.to_dict()
    # every update: the sync rounds the guest sent equal the model's, to the round
    assert (frame.asked_text_poke_sync == frame.model_sync_ipis).all()
    assert (frame.asked_ftrace_sync_ipi == frame.model_ftrace_sync_ipis).all()
    # every IPI that arrived has a send in a class, but for a tenth at most
    k2 = frame[frame.vcpus == 2]
    assert k2.unexplained.abs().sum() <= 0.1 * k2.received_events.sum()
