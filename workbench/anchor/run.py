"""Boot a real kernel, measure its ftrace updates, and hold them against the v6.1 plan.

One *boot* is one arch, one vCPU count and a tuple of site counts: the guest
(:mod:`workbench.anchor.guest`) makes, for each N, the tracer-on,
kprobe-add, kprobe-remove and tracer-off updates. Its measured rows
(:mod:`workbench.anchor.console`) are cached as Parquet under
``data/anchor/<key>/measured.parquet`` with the console log beside it
(``console.log``; a failed first try's log is kept as ``console.try1.log``).
The key is the kernel package and version, the QEMU version, the vCPUs, the
accelerator, the site counts and the digest of the guest-side code; an
entry that cannot be read or whose provenance does not match is booted
again. The model's columns (:mod:`workbench.race.plan_v6_1`) are added on
every read, so a change to the model needs no boot.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.anchor.boot import POWER_OFF_GRACE_S, boot
from workbench.anchor.console import CLASSES, parse_console
from workbench.anchor.grid import FULL_NS, QUICK_NS
from workbench.anchor.guest import guest_script
from workbench.anchor.initramfs import build_initramfs
from workbench.anchor.packages import GUEST_PACKAGES, Guest, guest_for
from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import data_dir
from workbench.base.store import write_atomic
from workbench.base.version import files_digest
from workbench.race.plan_v6_1 import plan_v6_1

__all__ = ["ACCELERATOR", "FULL_NS", "OUTSIDE_MODEL", "QUICK_NS", "anchor_frame", "class_table", "measure", "slope_table", "with_model"]

ACCELERATOR = "tcg"

#: what decides what the guest does (the boot's key); the parser is keyed apart: a new parser re-reads the log
_GUEST_CODE = ("guest.py", "initramfs.py", "boot.py")

#: the IPI classes the v6.1 plan leaves out (docs/ANCHOR.md: none opens or lengthens an int3 window)
OUTSIDE_MODEL = ("page_attr_flush", "kernel_range_flush", "mm_tlb_flush", "other_call", "nohz_balance_kick",
                 "single_call", "single_queue", "unprobed_wakeup")


def _guest_code_version() -> str:
    here = Path(__file__).resolve().parent
    return files_digest([here / f for f in _GUEST_CODE], here)


def _parser_version() -> str:
    here = Path(__file__).resolve().parent
    return files_digest([here / "console.py", here / "run.py"], here)


def _key(guest: Guest, cpus: int, ns: tuple) -> dict:
    return {"arch": guest.arch, "kernel_package": guest.package, "kernel_version": guest.package_version,
            "qemu_version": guest.qemu_version, "vcpus": cpus, "accelerator": ACCELERATOR,
            "ns": list(ns), "guest_code": _guest_code_version()}


def _entry_dir(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return data_dir() / "anchor" / f"{key['arch']}-k{key['vcpus']}-{digest}"


def _rows(run, key: dict, console: Path) -> pd.DataFrame:
    rows = []
    for u in run.updates:
        row = {k: v for k, v in key.items() if k not in ("ns",)}
        row.update(update=u.kind, uid=u.uid, n_requested=u.n,
                   n_sites=(run.available if u.n == 0 else u.n), filter_lines=u.filter_lines,
                   enabled_after=u.enabled, elapsed_us=u.marker_us, uptime_delta_ms=round(u.uptime_s * 1e3),
                   cal_total=sum(u.cal), received_events=u.received, send_calls=u.sent, cal_per_cpu=" ".join(map(str, u.cal)), tlb_total=sum(u.tlb),
                   res_total=sum(u.res), callbacks=json.dumps(u.callbacks, sort_keys=True),
                   console=console.name, release=run.release)
        row.update({f"asked_{c}": u.senders.get(c, 0) for c in CLASSES})
        row.update({f"sent_{c}": u.sent_by.get(c, 0) for c in CLASSES})
        rows.append(row)
    return pd.DataFrame(rows)


def _load(path: Path, key: dict) -> pd.DataFrame | None:
    """The cached frame at *path* if its key is *key*; re-read from its console log if the parser changed."""
    try:
        frame = pd.read_parquet(path)
        stored = json.loads(frame.attrs.get("anchor_key", "null") or "null")
    except Exception:  # a damaged or foreign file: booted again
        return None
    if stored != key or not len(frame):
        return None
    if frame.attrs.get("parser") != _parser_version():
        console = path.parent / "console.log"
        try:
            run = parse_console(console.read_bytes().decode("utf-8", "replace"))
        except OSError:
            return None
        if not run.ended:
            return None
        frame = _store(path, _rows(run, key, console), key, float(frame.attrs.get("boot_seconds", "nan")))
    return frame


def _store(path: Path, frame: pd.DataFrame, key: dict, seconds: float) -> pd.DataFrame:
    frame.attrs["anchor_key"] = json.dumps(key, sort_keys=True)
    frame.attrs["parser"] = _parser_version()
    frame.attrs["boot_seconds"] = str(round(seconds, 1))
    tmp = path.with_name(path.name + ".part")
    frame.to_parquet(tmp)
    tmp.replace(path)
    return frame


def measure(arch: str, cpus: int, ns: tuple, *, timeout_s: float = 600.0, retries: int = 1,
            memory_mb: int = 512, log=print) -> pd.DataFrame:
    """The measured frame of one boot (cached); :class:`ConfigError` if the guest fails every try."""
    check_choice("arch", arch, tuple(GUEST_PACKAGES))
    cpus = int(check_range("vcpus", cpus, 1, 8, integer=True))
    guest = guest_for(arch)
    key = _key(guest, cpus, tuple(ns))
    where = _entry_dir(key)
    cached = _load(where / "measured.parquet", key)
    if cached is not None:
        return cached
    where.mkdir(parents=True, exist_ok=True)
    script, updates = guest_script(tuple(ns), word=guest.kprobe_word)
    initrd = where / "initrd.gz"
    write_atomic(initrd, build_initramfs(guest.busybox, script))
    console = where / "console.log"
    for attempt in range(retries + 1):
        log(f"anchor: booting {guest.package} {guest.package_version} on {cpus} vCPU(s), "
            f"N = {', '.join(map(str, ns))} (try {attempt + 1})")
        res = boot(guest.qemu, guest.vmlinuz, initrd, cpus=cpus, memory_mb=memory_mb,
                   timeout_s=timeout_s, console=console)
        run = parse_console(console.read_bytes().decode("utf-8", "replace"))
        if res.status == "ok" and len(run.updates) == len(updates):
            if res.returncode is None:
                log(f"anchor: the guest finished its work but did not power the machine off; QEMU was "
                    f"stopped {POWER_OFF_GRACE_S:.0f} s after its END line (console kept at {console})")
            break
        kept = where / f"console.try{attempt + 1}.log"
        console.replace(kept)
        how = f"QEMU exit status {res.returncode}" if res.returncode is not None else "killed"
        log(f"anchor: guest {res.status} after {res.seconds:.0f} s ({how}, {len(run.updates)} of "
            f"{len(updates)} updates); console kept at {kept}")
    else:
        raise ConfigError(f"anchor: the {arch} guest on {cpus} vCPU(s) did not finish in {retries + 1} tries "
                          f"(timeout {timeout_s:.0f} s); console logs in {where}")
    return _store(where / "measured.parquet", _rows(run, key, console), key, res.seconds)


def with_model(frame: pd.DataFrame) -> pd.DataFrame:
    """*frame* with the v6.1 plan's prediction beside each measured update, and the residuals.

    The model's sites are the sites the update changed (``enabled_after``
    for the tracer's updates, one for the kprobe's); the ops' first
    registration in a boot creates its x86_64 trampoline instead of poking it.
    """
    out = frame.copy()
    cols = {"model_site_batches": [], "model_sync_rounds": [], "model_ftrace_sync": [], "model_ipis": []}
    for (arch, cpus), grp in out.groupby(["arch", "vcpus"], sort=False):
        seen = set()
        on = grp[grp["update"] == "tracer_on"].set_index("n_requested")["enabled_after"]
        for i, r in grp.sort_values("uid").iterrows():
            # the tracer's updates change the sites the tracer traces; the kprobe's change one
            sites = int(on.get(r.n_requested, r.n_sites)) if r["update"].startswith("tracer") else 1
            # an ops' first registration in the boot: x86_64 creates its trampoline instead of poking it
            first = arch == "x86_64" and r["update"] in ("tracer_on", "kprobe_add") and r["update"] not in seen
            seen.add(r["update"])
            plan = plan_v6_1(r["update"], arch, sites, first_registration=first)
            out.loc[i, "model_site_batches"] = plan.site_batches
            out.loc[i, "model_sync_rounds"] = plan.sync_rounds
            out.loc[i, "model_ftrace_sync"] = plan.ftrace_sync_ipis
            out.loc[i, "model_ipis"] = plan.ipis(cpus)
            out.loc[i, "first_registration"] = first
    for c in cols:
        out[c] = out[c].astype(int)
    out["first_registration"] = out["first_registration"].astype(bool)
    # the sites the tracer traces at that point of the run (the figure's N)
    traced = out[out["update"] == "tracer_on"].set_index(["arch", "vcpus", "n_requested"])["enabled_after"]
    out["sites_traced"] = [int(traced.get((a, k, n), n)) for a, k, n in
                           zip(out["arch"], out["vcpus"], out["n_requested"], strict=True)]
    k1 = out["vcpus"] - 1
    out["model_sync_ipis"] = out["model_sync_rounds"] * k1
    out["model_ftrace_sync_ipis"] = out["model_ftrace_sync"] * k1
    sent = [f"sent_{c}" for c in CLASSES]
    out["explained"] = out[sent].sum(axis=1)
    # senders and receivers are read in the same window (the markers around the two readings)
    out["unexplained"] = out["received_events"] - out["explained"]
    # IPIs that arrived between a marker and its reading: in one count and not the other
    out["window_edge"] = out["cal_total"] - out["received_events"]
    out["residual_vs_model"] = out["cal_total"] - out["model_ipis"]
    outside = out[[f"sent_{c}" for c in OUTSIDE_MODEL]].sum(axis=1)
    out["received_in_model"] = out["received_events"] - outside
    return out


def anchor_frame(arches=("x86_64", "i386"), cpus=(1, 2), ns=QUICK_NS, **kw) -> pd.DataFrame:
    """Every (arch, vCPUs) boot of the grid, measured (cached) and with the model."""
    frames = [measure(a, k, tuple(ns), **kw) for a in arches for k in cpus]
    return with_model(pd.concat(frames, ignore_index=True))


def slope_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (arch, vCPUs): IPIs per site batch of ``tracer_on``/``tracer_off``, measured against the model.

    A least-squares line of CAL IPIs against the model's site batches over
    the run's site counts (the intercept takes the trampoline pokes and the
    rest); the model's slope is 3 (K - 1) per batch (``text_poke_bp_batch``).
    ``slope_cal_less_outside`` fits the IPIs that arrived in the classed
    window (``received_events``) less those the classes outside the model
    (:data:`OUTSIDE_MODEL`) asked for: the wakeups and idle-balance kicks
    that grow with an update's duration. An ops' first registration in a boot (x86_64: its trampoline created, not
    poked) is left out, so every point has the same fixed part.
    """
    rows = []
    keep = frame["update"].isin(["tracer_on", "tracer_off"]) & ~frame["first_registration"]
    for (arch, k, upd), g in frame[keep].groupby(
            ["arch", "vcpus", "update"], sort=True):
        x = g["model_site_batches"].to_numpy(float)
        if len(set(x)) < 2:
            continue
        y_real = g["asked_text_poke_sync"].to_numpy(float)
        y_sent = g["sent_text_poke_sync"].to_numpy(float)
        y_cal = g["cal_total"].to_numpy(float)
        y_expl = (g["cal_total"] - g["sent_nohz_balance_kick"]).to_numpy(float)
        # what arrived in the classed window less what senders outside the model asked for
        y_in = (g["received_events"] - g[[f"sent_{c}" for c in OUTSIDE_MODEL]].sum(axis=1)).to_numpy(float)
        y_model = g["model_ipis"].to_numpy(float)
        def fit(y, x=x):
            return float(np.polyfit(x, y, 1)[0])

        def se(y, x=x):
            """The slope's standard error from the fit's residuals."""
            coef, res = np.polyfit(x, y, 1, full=True)[:2]
            dof = len(x) - 2
            if dof < 1:
                return float("nan")
            s2 = float(res[0]) / dof if len(res) else 0.0
            return float(np.sqrt(s2 / np.sum((x - x.mean()) ** 2)))
        rows.append({"arch": arch, "vcpus": int(k), "update": upd, "points": len(g),
                     "slope_cal": fit(y_cal), "slope_cal_se": se(y_cal), "slope_cal_less_nohz": fit(y_expl),
                     "slope_cal_less_outside": fit(y_in), "slope_sync": fit(y_real), "slope_sync_sent": fit(y_sent), "slope_model": fit(y_model),
                     "max_batches": int(x.max())})
    t = pd.DataFrame(rows)
    if len(t):
        per = t["slope_model"].where(t["slope_model"] != 0)
        t["slope_error"] = (t["slope_cal"] - t["slope_model"]) / per
        t["slope_error_less_nohz"] = (t["slope_cal_less_nohz"] - t["slope_model"]) / per
        t["slope_error_less_outside"] = (t["slope_cal_less_outside"] - t["slope_model"]) / per
    return t


def class_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (arch, vCPUs, update): IPIs received, the model's, each sender class's, and the residuals.

    Sums over the run's site counts. ``model_residual`` is what the classes
    outside the model's plan add (``cal_total - model_ipis``);
    ``sent_<class>`` the IPIs each class really sent (an ask that joined an
    IPI already on its way sends none); ``unexplained`` is what arrived
    (``received_events``) and no recorded send accounts for, in the same
    window, also as a share of what arrived;
    ``window_edge`` what arrived between a marker and its reading.
    """
    cols = (["cal_total", "received_events", "model_ipis", "asked_text_poke_sync", "asked_ftrace_sync_ipi"]
            + [f"sent_{c}" for c in CLASSES] + ["explained", "unexplained", "window_edge"])
    t = frame.groupby(["arch", "vcpus", "update"], sort=True)[cols].sum().reset_index()
    t["model_residual"] = t["cal_total"] - t["model_ipis"]
    t["unexplained_share"] = (t["unexplained"] / t["received_events"].where(t["received_events"] > 0)).round(3)
    return t
