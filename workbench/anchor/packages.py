"""Debian's kernels, busybox and QEMU: found, fetched and unpacked.

The guest kernels are Debian bookworm's 6.1 packages
(``linux-image-6.1.0-<abi>-amd64`` and ``-686``, the i386 one reached with
``dpkg --add-architecture i386``), named through the metapackages
``linux-image-amd64`` / ``linux-image-686:i386``. A package is fetched
once with ``apt-get download`` into a cache folder (``data/cache/anchor/debs``
or ``$WORKBENCH_ANCHOR_DEBS``) and its ``/boot/vmlinuz-*`` unpacked with
``dpkg-deb``; the i386 guest's busybox comes from ``busybox-static:i386``
the same way, the x86_64 guest's from the host's ``busybox-static``. apt
is asked only when a package is not in the cache (install time: the run
itself needs no network once the cache holds it). Anything missing is a
:class:`~workbench.base.errors.ConfigError` naming what to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench.base.errors import ConfigError
from workbench.base.paths import cache_dir

__all__ = ["GUEST_PACKAGES", "Guest", "busybox_for", "debs_dir", "guest_for", "qemu_version", "resolve_package"]

#: arch -> (metapackage, QEMU binary, kprobe pointer type)
GUEST_PACKAGES = {"x86_64": ("linux-image-amd64", "qemu-system-x86_64", "x64"),
          "i386": ("linux-image-686:i386", "qemu-system-i386", "x32")}

_HOST_BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class Guest:
    """What one arch boots: QEMU, the kernel image, busybox, and their versions."""

    arch: str
    qemu: str
    qemu_version: str
    package: str
    package_version: str
    vmlinuz: Path
    busybox: Path
    kprobe_word: str


def debs_dir() -> Path:
    """Where fetched ``.deb`` files and their unpacked kernels live."""
    env = os.environ.get("WORKBENCH_ANCHOR_DEBS")
    d = Path(env) if env else cache_dir("anchor", "debs")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"WORKBENCH_ANCHOR_DEBS: cannot use {str(d)!r} ({exc.strerror or exc})") from None
    return d


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ConfigError(f"anchor: {tool} not found; install it with: apt-get install {package}")
    return path


def qemu_version(qemu: str) -> str:
    """``qemu-system-* --version``'s version, e.g. ``7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)``."""
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"version (.+)", out)
    return m.group(1).strip() if m else "unknown"


def _apt(args: list[str], cwd: Path | None = None) -> str:
    _need("apt-get", "apt")
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise ConfigError(f"anchor: {' '.join(args[:2])} failed ({last}); run apt-get update"
                          " (and dpkg --add-architecture i386 for the i386 guest) first")
    return r.stdout


def resolve_package(meta: str) -> tuple[str, str]:
    """The concrete package a metapackage depends on and its candidate version (``apt-cache``)."""
    out = _apt(["apt-cache", "depends", meta])
    dep = re.search(r"Depends: (linux-image-6\.1\.0-\S+)", out)
    if dep is None:
        raise ConfigError(f"anchor: apt does not know {meta}; run apt-get update"
                          " (and dpkg --add-architecture i386) first")
    name = dep.group(1)
    pol = _apt(["apt-cache", "policy", name])
    ver = re.search(r"Candidate: (\S+)", pol)
    if ver is None or ver.group(1) == "(none)":
        raise ConfigError(f"anchor: no candidate version of {name}; run apt-get update first")
    return name, ver.group(1)


def _fetch_deb(name: str, version: str) -> Path:
    """The cached ``.deb`` of *name* at *version*, downloaded with ``apt-get download`` if absent."""
    d = debs_dir()
    base = name.split(":")[0]
    pattern = f"{base}_{version.replace(':', '%3a')}_*.deb"
    found = sorted(d.glob(pattern))
    if not found:
        _apt(["apt-get", "download", f"{name}={version}"], cwd=d)
        found = sorted(d.glob(pattern))
        if not found:
            raise ConfigError(f"anchor: apt-get download {name}={version} left no {pattern} in {d}")
    return found[0]


def _unpack(deb: Path, member: str) -> Path:
    """*member* (a glob under the package's root) unpacked once beside the ``.deb``."""
    out = deb.with_suffix("")
    hits = sorted(out.glob(member))
    if hits:
        return hits[0]
    _need("dpkg-deb", "dpkg")
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    r = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True, check=False)
    if r.returncode != 0:  # a damaged .deb: dropped, fetched again next time
        deb.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(f"anchor: {deb.name} is damaged ({r.stderr.strip()[:80]}); removed, run again")
    keep = sorted(tmp.glob(member))
    if not keep:
        raise ConfigError(f"anchor: {deb.name} has no {member}")
    out.mkdir(exist_ok=True)
    for f in keep:  # only what the guest needs: the modules tree is 300 MB
        dst = out / f.relative_to(tmp)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dst)
    shutil.rmtree(tmp, ignore_errors=True)
    return sorted(out.glob(member))[0]


def busybox_for(arch: str) -> Path:
    """The static busybox the *arch* guest runs as init."""
    if arch == "x86_64":
        if not _HOST_BUSYBOX.exists():
            raise ConfigError("anchor: /bin/busybox not found; install it with: apt-get install busybox-static")
        return _HOST_BUSYBOX
    pol = _apt(["apt-cache", "policy", "busybox-static:i386"])
    ver = re.search(r"Candidate: (\S+)", pol)
    if ver is None or ver.group(1) == "(none)":
        raise ConfigError("anchor: apt does not know busybox-static:i386; run dpkg --add-architecture i386"
                          " && apt-get update")
    return _unpack(_fetch_deb("busybox-static:i386", ver.group(1)), "bin/busybox")


def guest_for(arch: str) -> Guest:
    """Find QEMU and busybox, fetch and unpack the kernel for *arch*: a :class:`Guest`."""
    meta, qemu_name, word = GUEST_PACKAGES[arch]
    qemu = _need(qemu_name, "qemu-system-x86")
    busybox = busybox_for(arch)
    name, version = resolve_package(meta)
    vmlinuz = _unpack(_fetch_deb(name, version), "boot/vmlinuz-*")
    return Guest(arch, qemu, qemu_version(qemu), name, version, vmlinuz, busybox, word)
