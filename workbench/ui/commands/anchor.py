"""``anchor``: boot Debian's 6.1 kernels under QEMU and hold their ftrace updates against the v6.1 plan.

Each (arch, vCPUs) is one boot of linux-image-6.1.0-*-amd64 or -686 under
QEMU's TCG with a busybox initramfs the workbench writes. In the guest the
function tracer is turned on over N sites (set_ftrace_filter), a kprobe is
added and removed on a traced function, and the tracer is turned off; for
each update the CAL row of /proc/interrupts (function-call IPIs per CPU),
the sites changed and the elapsed time are read, and every IPI sender is
recorded by an int3 kprobe. Results: data/anchor/anchor.parquet (measured
beside the model's prediction), data/anchor/slopes.csv, the figure
data/figures/anchor_ipis.png, and each boot's console log beside its cached
result in data/anchor/<arch>-k<vcpus>-<key>/.

Needs qemu-system-x86 and busybox-static (apt-get install) and apt to fetch
the kernel packages (apt-get update; dpkg --add-architecture i386 for the
i386 guest); the packages are cached under data/cache/anchor/debs (or
$WORKBENCH_ANCHOR_DEBS).

examples:
  python -m workbench anchor --quick                the CI grid: both arches, 1 and 2 vCPUs
  python -m workbench anchor --arch i386 --vcpus 2 --sites 1,600,1200
  python -m workbench anchor                        the full grid (make anchor)
"""

from __future__ import annotations

import json

from workbench.anchor.grid import FULL_NS, QUICK_NS
from workbench.anchor.packages import GUEST_PACKAGES
from workbench.base.errors import ConfigError
from workbench.base.paths import data_dir
from workbench.base.provenance import provenance, stamp
from workbench.base.store import write_atomic


def _list(name, text, parse, check):
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            v = parse(part)
        except ValueError:
            v = None
        if v is None or not check(v):
            raise ConfigError(f"{name}: {part!r} is not valid; {_HELP[name]}")
        out.append(v)
    if len(set(out)) != len(out):
        raise ConfigError(f"{name}: a value is repeated; {_HELP[name]}")
    return tuple(out)


_HELP = {"--arch": "choose from x86_64, i386 (comma-separated)",
         "--vcpus": "whole numbers from 1 to 4 (comma-separated)",
         "--sites": "whole numbers from 0 (every traceable function) to 100000 (comma-separated)",
         "--timeout": "seconds per boot, from 30 to 7200",
         "--retries": "a whole number from 0 to 3"}


def configure(p):
    p.add_argument("--arch", default="x86_64,i386", help=_HELP["--arch"])
    p.add_argument("--vcpus", default="1,2,4", help=_HELP["--vcpus"])
    p.add_argument("--sites", default=None, help=f"site counts N; {_HELP['--sites']} "
                   f"(default: {','.join(map(str, FULL_NS))}; --quick: {','.join(map(str, QUICK_NS))})")
    p.add_argument("--quick", action="store_true", help="the reduced grid: vCPUs 1,2 and the quick site counts")
    p.add_argument("--timeout", default="900", help=_HELP["--timeout"])
    p.add_argument("--retries", default="1", help=_HELP["--retries"])


def run(args):
    arches = _list("--arch", args.arch, str, lambda v: v in GUEST_PACKAGES)
    vcpus = _list("--vcpus", "1,2" if args.quick and args.vcpus == "1,2,4" else args.vcpus, int,
                  lambda v: 1 <= v <= 4)
    ns = _list("--sites", args.sites or ",".join(map(str, QUICK_NS if args.quick else FULL_NS)), int,
               lambda v: 0 <= v <= 100000)
    timeout = _list("--timeout", args.timeout, float, lambda v: 30 <= v <= 7200)[0]
    retries = _list("--retries", args.retries, int, lambda v: 0 <= v <= 3)[0]
    from workbench.anchor.run import anchor_frame, slope_table  # start-up: NumPy, pandas, not for parsing

    frame = anchor_frame(arches, vcpus, ns, timeout_s=timeout, retries=retries)
    slopes = slope_table(frame)
    default = args.sites is None and args.vcpus == "1,2,4" and args.arch == "x86_64,i386"
    prov = provenance(seed=None, grid="anchor", run="quick" if args.quick else "full" if default else "custom")
    frame, slopes = stamp(frame, prov), stamp(slopes, prov)
    out = data_dir() / "anchor"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "anchor.parquet.part"
    frame.to_parquet(tmp)
    tmp.replace(out / "anchor.parquet")
    write_atomic(out / "slopes.csv", slopes.to_csv(index=False).encode())
    from workbench.figures.anchor_plot import anchor_ipis  # start-up: matplotlib only here
    from workbench.figures.style import save  # start-up: matplotlib only here
    kernels = {f"{p} {v}" for p, v in zip(frame.kernel_package, frame.kernel_version, strict=True)}
    fig_prov = {**prov, "kernels": sorted(kernels),
                "qemu": sorted(set(frame.qemu_version)), "accelerator": "tcg", "vcpus": list(vcpus),
                "sites": list(ns)}
    save(anchor_ipis(frame), "anchor_ipis", formats=("png", "svg"), provenance=fig_prov,
         caption_text="Function-call IPIs per ftrace update in Debian's 6.1 kernels under QEMU TCG "
                      "(points) and the v6.1 plan's prediction (lines).")
    cols = ["arch", "vcpus", "update", "n_sites", "enabled_after", "cal_total", "model_ipis",
            "sent_text_poke_sync", "model_sync_ipis", "explained", "unexplained", "elapsed_us"]
    print(frame[cols].to_string(index=False))
    print()
    print(slopes.to_string(index=False) if len(slopes) else "no slope: fewer than two batch counts")
    print(json.dumps({"written": [str(out / "anchor.parquet"), str(out / "slopes.csv"),
                                  str(data_dir() / "figures" / "anchor_ipis.png")]}))
    return 0
