"""The model beside Bristot's published measurement (24 CPUs, 56 sites, per site vs batched).

docs/RACE.md "Calibration" and docs/KERNEL.md §13.
"""

from __future__ import annotations

import pandas as pd

from workbench.race.simulator import RaceConfig, closed_form
from workbench.race.timing import BRISTOT, Anchor, Timing
from workbench.race.workload import LIVEPATCHED, Workload

__all__ = ["bristot_comparison"]


def bristot_comparison(timing: Timing | None = None, anchor: Anchor = BRISTOT) -> pd.DataFrame:
    """The model beside Bristot's measurement (closed form, no trampolines).

    56 sites on 24 CPUs patched per site and batched. IPI rounds are
    structural; update times match by construction (the timing defaults are
    derived from them); the int3-hit ratio is a prediction of the exposure
    model: batched windows overlap, per-site windows tile the update, so the
    ratio is ``E[W_batched] / E[W_per_site] = (Kw + R) / (w + R)``,
    independent of call rates. With ``prepare_ns`` 0 each window is two
    thirds of its breakpoint batch (2 of 3 writes per site, 2 of 3 rounds), so
    the ratio is ``K T_batched / T_per_site`` = 56 x 1.4 / 57 = 1.375.
    """
    timing = timing or Timing()
    hot = {n: 1000.0 for n in LIVEPATCHED}
    work = Workload(hot=hot, tail_functions=anchor.sites - len(hot), tail_rate=1e4)
    runs = {p: closed_form(RaceConfig("seed", "skip", p, anchor.cpus, work, timing, trampolines=False), None)
            for p in ("per_site", "batched")}
    rows = [
        ("IPI rounds per update", runs["per_site"]["ipis"], runs["batched"]["ipis"],
         anchor.ipis_per_site, anchor.ipis_batched, "structural"),
        ("update time (ms)", runs["per_site"]["patch_ns"] / 1e6, runs["batched"]["patch_ns"] / 1e6,
         anchor.update_per_site_ns / 1e6, anchor.update_batched_ns / 1e6, "calibrated"),
        ("int3 handler (ns)", timing.handler_ns, timing.handler_batch_ns,
         anchor.handler_ns, anchor.handler_batch_ns, "input"),
        ("int3 hits per update (relative)", 1.0, runs["batched"]["trapped"] / runs["per_site"]["trapped"],
         1.0, anchor.hits_ratio, "prediction"),
    ]
    frame = pd.DataFrame(rows, columns=["quantity", "model_per_site", "model_batched",
                                        "measured_per_site", "measured_batched", "kind"])
    frame.insert(3, "model_ratio", frame.model_batched / frame.model_per_site)
    frame.insert(6, "measured_ratio", frame.measured_batched / frame.measured_per_site)
    return frame
