"""The anchor figure: function-call IPIs per ftrace update against N, real kernel and v6.1 model.

Reads the frame of :func:`workbench.anchor.run.anchor_frame`; models no
kernel file itself (the model is :mod:`workbench.race.plan_v6_1`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from workbench.figures.style import OKABE_ITO, new_figure

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["UPDATE_STYLE", "anchor_ipis"]

#: update -> (colour, marker)
UPDATE_STYLE = {"tracer_on": (OKABE_ITO["blue"], "o"), "tracer_off": (OKABE_ITO["vermillion"], "s"),
                "kprobe_add": (OKABE_ITO["bluish_green"], "^"), "kprobe_remove": (OKABE_ITO["reddish_purple"], "v")}


def anchor_ipis(frame: pd.DataFrame) -> Figure:
    """One panel per (arch, vCPUs): measured CAL IPIs as points, the model's as lines, against N.

    N (``sites_traced``) on a linear axis, so that the per-batch slope
    (3 (K - 1) IPIs per 256 sites for the tracer's updates) is the lines'
    slope. Small dots: what arrived less the IPIs of the classes outside the
    model (``received_in_model``).
    """
    panels = sorted({(a, int(k)) for a, k in zip(frame["arch"], frame["vcpus"], strict=True)})
    archs = sorted({a for a, _ in panels})
    ks = sorted({k for _, k in panels})
    fig, axes = new_figure("grid" if len(ks) > 1 else "wide", nrows=len(ks), ncols=len(archs), sharex=True)
    xmax = float(frame["sites_traced"].max()) * 1.04
    for r, k in enumerate(ks):
        row = frame[frame.vcpus == k]
        top = float(np.nanmax(row[["cal_total", "model_ipis"]].to_numpy(float))) if len(row) else 1.0
        for c, arch in enumerate(archs):
            ax = axes[r][c]
            g = row[row.arch == arch]
            for upd, (colour, marker) in UPDATE_STYLE.items():
                u = g[g["update"] == upd].sort_values("sites_traced")
                if not len(u):
                    continue
                x = u["sites_traced"].to_numpy(float)
                first = (r, c) == (0, 0)
                ax.plot(x, u["model_ipis"], color=colour, lw=1.2, alpha=0.8,
                        label=f"{upd}: v6.1 model" if first else None)
                ax.plot(x, u["cal_total"], ls="none", marker=marker, ms=4, mfc="none", color=colour,
                        label=f"{upd}: guest CAL" if first else None)
                ax.plot(x, u["received_in_model"], ls="none", marker=".", ms=2.5, color=colour, alpha=0.7,
                        label="less classes outside the model" if first and upd == "tracer_on" else None)
            ax.set_xlim(0, xmax)
            ax.set_ylim(-0.03 * max(top, 2.0), max(top * 1.06, 2.0))
            ax.set_title(f"{arch}, {k} vCPU{'s' if k > 1 else ''}", fontsize=8)
            if r == len(ks) - 1:
                ax.set_xlabel("sites traced N")
            if c == 0:
                ax.set_ylabel("CAL IPIs / update")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=6, frameon=False)
    return fig
