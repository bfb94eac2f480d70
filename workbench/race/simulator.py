"""The statistical race simulator: trapped, dropped and stalled calls on N CPUs.

A closed form (:func:`closed_form`) and a vectorised Monte Carlo
(:func:`simulate`) over the patch timeline (``workbench.race.timeline``);
the model, its assumptions and its checks are in docs/RACE.md.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.numeric import fdot
from workbench.base.units import NS
from workbench.base.vocabulary import ARCHES, BATCHINGS, METRICS, STRATEGIES
from workbench.emulate.scenario import check_scenario, load_scenario
from workbench.kernel.int3 import get_strategy
from workbench.race.outcomes import PerCallOutcomes, load_outcomes
from workbench.race.spin import spin_draw_shared, spin_expect, spin_per_site, spin_shared, spin_wait, window_nodes
from workbench.race.timeline import (SiteGroup, TimelineStage, patch_timeline, spin_callers,
                                     stagger_spin)
from workbench.race.timing import Timing, finite_range, gamma_matched
from workbench.race.workload import LIVEPATCHED, Workload

__all__ = ["RaceConfig", "closed_form", "config_stream", "draw_chunk", "simulate", "simulate_many"]

_CHUNK = 32768  # trials per vectorised chunk: bounds memory, not results


@dataclass(frozen=True)
class RaceConfig:
    """One configuration of the race: scenario, strategy, batching, CPUs, workload, timing, arch.

    ``batching`` (:data:`~workbench.base.vocabulary.BATCHINGS`) defaults to
    ``stop_machine`` for the ``stop_machine`` strategy and ``batched``
    (ftrace's one breakpoint batch) otherwise; the two must agree.
    ``trampolines=False`` drops the trampoline-call stages (a plain
    text_poke batch, as in Bristot's jump-label measurement). The expected
    patch (hence every armed window) must fit in ``horizon_ns``.
    ``patcher_calls=False`` (the kernel): the CPU running ``text_poke_bp``
    is reached only by interrupt-context calls while it patches
    (``workbench.race.timeline``); ``True`` lets it call at full rate like the
    others (all N CPUs alike: the textbook ``N L W`` that the hand checks
    of the formulas use). ``batch_max`` (``batched`` only): at most this
    many sites per breakpoint batch, as ``text_poke_queue()`` cuts them from
    v5.6 (:data:`TP_VEC_MAX`); None: one batch of every site, as ftrace did
    before v5.6. ``arch`` is the emulated kernel (:data:`ARCHES`) whose
    plan and routing decide which sites and trampoline calls an update
    changes (``workbench.race.plan``) and whose outcome tables are read; a
    scenario the arch cannot have is refused
    (:meth:`~workbench.emulate.scenario.Scenario.check_arch`). Raises
    :class:`ConfigError` naming the bad parameter.
    """

    scenario: str = "seed"
    strategy: str = "skip"
    batching: str = None
    cpus: int = 64
    workload: Workload = field(default_factory=Workload)
    timing: Timing = field(default_factory=Timing)
    trampolines: bool = True
    horizon_ns: float = 3.6e12
    patcher_calls: bool = False
    batch_max: int = None
    arch: str = "i386"

    @property
    def blocks(self) -> bool:
        """Whether the strategy's handler holds a trapped CPU until its window closes (spin)."""
        return get_strategy(self.strategy).blocks

    def __post_init__(self) -> None:
        check_scenario(self.scenario)
        load_scenario(self.scenario).check_arch(check_choice("arch", self.arch, ARCHES))
        check_choice("strategy", self.strategy, STRATEGIES)
        implied = "stop_machine" if self.strategy == "stop_machine" else "batched"
        batching = implied if self.batching is None else check_choice("batching", self.batching, BATCHINGS)
        if (batching == "stop_machine") != (self.strategy == "stop_machine"):
            raise ConfigError(f"batching: {batching!r} does not go with strategy {self.strategy!r}; "
                              "stop_machine is both a strategy and its batching")
        object.__setattr__(self, "batching", batching)
        if self.batch_max is not None:
            if isinstance(self.batch_max, bool):
                raise ConfigError(f"batch_max: expected a whole number >= 1 or None, got {self.batch_max!r}")
            object.__setattr__(self, "batch_max",
                               int(check_range("batch_max", self.batch_max, 1, 10**9, integer=True)))
            if batching != "batched":
                raise ConfigError(f"batch_max: cuts the batched update into batches; batching {batching!r} "
                                  "has none (leave batch_max unset)")
        object.__setattr__(self, "cpus", int(check_range("cpus", self.cpus, 1, 65536, integer=True)))
        object.__setattr__(self, "horizon_ns", finite_range("horizon_ns", self.horizon_ns, 1))
        if not isinstance(self.workload, Workload) or not isinstance(self.timing, Timing):
            raise ConfigError("workload/timing: expected Workload and Timing instances")
        missing = [n for n in LIVEPATCHED if n not in dict(self.workload.hot)]
        if missing:
            raise ConfigError(f"rate: scenario {self.scenario!r} live patches {', '.join(LIVEPATCHED)}; "
                              f"give {', '.join(missing)} a rate")
        patch = _closed(self, None)["patch_ns"]
        if patch > self.horizon_ns:
            raise ConfigError(f"horizon_ns: the patch and its armed windows last {patch / 1e9:.4g} s "
                              f"on average, longer than the horizon {self.horizon_ns / 1e9:.4g} s; "
                              "raise horizon_ns or shorten the timing")


def _ipis(cfg: RaceConfig, stages: list[TimelineStage]) -> int:
    """Function-call IPI rounds the patch sends: none with one CPU online."""
    if cfg.cpus == 1:
        return 0
    if cfg.batching == "stop_machine":
        return 1  # the stop_machine rendezvous
    return sum(1 if s.what == "publish" else 3 * (s.sites if s.what == "per_site" else 1) for s in stages)


def _count(res: dict[str, np.ndarray], g: SiteGroup, k: np.ndarray, rng: np.random.Generator) -> None:
    """Add *k* trapped calls of group *g*: the count, its outcomes, handler time."""
    res["trapped"] += k
    for m, v in g.outcome.items():
        if v > 0:
            whole, frac = math.floor(v), v - math.floor(v)
            res[m] += whole * k + (rng.binomial(k, frac) if frac > 0 else 0)
    res["stall_ns"] += k * g.handler_ns


def _closed(cfg: RaceConfig, outcomes: PerCallOutcomes | None) -> dict[str, float]:
    """Closed-form expectations of every metric; see closed_form()."""
    t, n = cfg.timing, cfg.cpus
    mu, var = t.round_moments(n)
    stages = patch_timeline(cfg, outcomes)
    out = dict.fromkeys(METRICS, 0.0)
    out["ipis"] = float(_ipis(cfg, stages))
    sites = sum(s.sites for s in stages if s.what in ("batched", "per_site"))
    if cfg.batching == "stop_machine":
        writes = sum(s.sites for s in stages)  # one whole-instruction write each
        sm_mean, _ = t.stop_machine_moments(n)
        out["patch_ns"] = sm_mean + writes * t.write_ns + sites * t.prepare_ns
        out["stall_ns"] = n * out["patch_ns"]
        return out
    acc = None  # site-weighted window over the batches of one sites step
    for s in stages:
        if s.what == "publish":
            out["patch_ns"] += mu
            continue
        per = s.sites if s.what == "per_site" else 1
        # a breakpoint batch: 3 writes per site and 3 rounds; its window holds
        # 2 of the writes and the first 2 rounds
        out["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + 3 * per * mu
        ew = s.d_write + 2 * mu
        if s.batch is not None:  # batches of one sites step: their site-weighted mean window
            acc = [0.0, 0] if s.batch[0] == 0 else acc
            acc[0], acc[1] = acc[0] + s.sites * ew, acc[1] + s.sites
            out["window_ns"] = acc[0] / acc[1]
        elif s.what in ("batched", "per_site"):
            out["window_ns"] = ew
        # spin: a trapped CPU makes no further calls until the window closes
        if cfg.blocks and s.what == "batched":
            # staggered windows: re-traps after each release (workbench.race.stagger)
            callers = spin_callers(cfg)
            W, wts = window_nodes(t, n, s.d_write)
            by_kind, first, wait = stagger_spin(cfg, s, W)
            for g in s.groups:
                per = np.asarray(by_kind[g.kind], float)
                trapped = callers * float(fdot(wts, per))
                out["trapped"] += trapped
                for m, v in g.outcome.items():
                    out[m] += callers * float(fdot(wts, per * (first * v + (1 - first) * g.late[m])))
                out["stall_ns"] += trapped * g.handler_ns
            out["stall_ns"] += callers * float(fdot(wts, wait))
            for g in s.patcher:
                p = spin_shared(t, n, s.d_write, (g.sites.total,), 0.0)[0][0]
                out["trapped"] += p
                for m, v in g.outcome.items():
                    out[m] += p * v
                out["stall_ns"] += p * g.handler_ns
            continue
        spin = spin_expect(cfg, s) if cfg.blocks else None
        callers = spin_callers(cfg) if spin is not None else n
        for i, g in enumerate(s.groups):
            trapped = callers * (spin[0][i] if spin is not None else NS * g.sites.total * ew)
            out["trapped"] += trapped
            for m, v in g.outcome.items():
                out[m] += trapped * v
            out["stall_ns"] += trapped * g.handler_ns
        if spin is not None:
            out["stall_ns"] += callers * spin[1]
        for g in s.patcher:  # the patching CPU: its first interrupt in the window traps
            p = spin_shared(t, n, s.d_write, (g.sites.total,), 0.0)[0][0]
            out["trapped"] += p
            for m, v in g.outcome.items():
                out[m] += p * v
            out["stall_ns"] += p * g.handler_ns
    return out


def closed_form(config: RaceConfig, outcomes: PerCallOutcomes | None) -> dict[str, float]:
    """Expected value of every metric in :data:`METRICS` for *config*.

    ``trapped = N * sum_groups L_g E[W_g]``, except for spin, where a CPU
    traps at most once per window: ``N E[1 - e^(-L W)]`` per shared window
    (split over its groups by rate) and per per-site window; each outcome
    adds the trapped count times its per-call mean; ``stall_ns`` adds the
    handler cost per trapped call, for spin each trapped CPU's wait
    (``N E[W - (1 - e^(-L W)) / L]`` per window), and ``N * E[patch]`` for
    stop_machine. Window moments come from :meth:`Timing.round_moments`;
    spin's expectations over W from a quadrature over its two rounds.
    """
    return _closed(config, outcomes)


def draw_chunk(cfg: RaceConfig, stages: list[TimelineStage], rng: np.random.Generator,
               size: int) -> dict[str, np.ndarray]:
    """Per-trial values of every metric for *size* trials: metric -> array of *size*.

    Units are those of :data:`METRICS` (counts per patch, times in ns);
    *stages* is :func:`patch_timeline`'s list, *rng* a numpy Generator.
    """
    t, n = cfg.timing, cfg.cpus
    res = {m: np.zeros(size) for m in METRICS}
    res["ipis"][:] = _ipis(cfg, stages)
    if cfg.batching == "stop_machine":
        sites = sum(s.sites for s in stages if s.what in ("batched", "per_site"))
        writes = sum(s.sites for s in stages)
        patch = (t.stop_machine_ns + t.draw_rounds(rng, n, size)
                 + writes * t.write_ns + sites * t.prepare_ns)
        res["patch_ns"], res["stall_ns"] = patch, n * patch
        return res
    disp = cfg.workload.dispersion
    acc = None  # site-weighted window over the batches of one sites step
    for s in stages:
        if s.what == "publish":
            res["patch_ns"] += t.draw_round_sum(rng, n, 1, size)
            continue
        if s.what in ("trampoline", "batched"):
            exposures, acc = _draw_batch(cfg, s, rng, size, res, acc)
        else:
            exposures = _draw_per_site(cfg, s, rng, size, res)
        for g, x in exposures:
            if g.sites.total <= 0:
                continue
            lam = n * NS * x
            if disp > 0:
                lam = lam * rng.gamma(1 / disp, disp, size)
            _count(res, g, rng.poisson(lam), rng)
    return res


def _draw_batch(cfg: RaceConfig, s: TimelineStage, rng: np.random.Generator, size: int, res: dict[str, np.ndarray],
                acc: list | None) -> tuple[list, list | None]:
    """One breakpoint batch (a trampoline call's, or a batch of sites): its patch time, window and spin's
    traps drawn into *res*; ``(exposures (group, X = sum of rate * window) still to count, acc)``."""
    t, n = cfg.timing, cfg.cpus
    # three rounds; the window is the write time plus the first two (it closes at the
    # first-byte write, before R3)
    rounds = t.draw_rounds(rng, n, (size, 3))
    w = s.d_write + rounds[:, 0] + rounds[:, 1]
    res["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + rounds.sum(axis=1)
    if s.batch is not None:  # batches of one sites step: their site-weighted mean window
        acc = [np.zeros(size), 0] if s.batch[0] == 0 else acc
        acc[0], acc[1] = acc[0] + s.sites * w, acc[1] + s.sites
        res["window_ns"] = acc[0] / acc[1]
    elif s.what == "batched":
        res["window_ns"] = w
    if cfg.blocks and s.what == "batched":
        # staggered windows (workbench.race.stagger): the trial's conditional
        # means, Poisson counts; each trap a first trap with the trial's share
        callers = spin_callers(cfg)
        by_kind, first, wait = stagger_spin(cfg, s, w)
        for g in s.groups:
            k = rng.poisson(callers * np.asarray(by_kind[g.kind], float))
            kf = rng.binomial(k, np.clip(first, 0.0, 1.0))
            _count(res, g, kf, rng)
            _count(res, replace(g, outcome=g.late), k - kf, rng)
        res["stall_ns"] += callers * wait
        _draw_patcher(res, s, w, rng, size)
        return [], acc
    if cfg.blocks:
        spin_draw_shared(res, s.groups, w, spin_callers(cfg), cfg.workload.dispersion, rng, size, _count)
        _draw_patcher(res, s, w, rng, size)
        return [], acc
    return [(g, g.sites.total * w) for g in s.groups], acc


def _draw_per_site(cfg: RaceConfig, s: TimelineStage, rng: np.random.Generator, size: int,
                   res: dict[str, np.ndarray]) -> list:
    """A sites step patched site by site, every site its own three rounds, its window the first two:
    patch time, window and spin's traps drawn into *res*; the exposures still to count."""
    t, n = cfg.timing, cfg.cpus
    mu, var = t.round_moments(n)
    disp, spin = cfg.workload.dispersion, cfg.blocks
    exposures = []
    ew = s.d_write + 2 * mu
    all_rounds, window_rounds = np.zeros(size), np.zeros(size)
    for g in s.groups:
        x = np.zeros(size)
        gain = (rng.gamma(1 / disp, disp, size)
                if spin and disp > 0 and g.sites.total > 0 else None)
        top = g.sites.top
        if top.size:
            r = t.draw_rounds(rng, n, (size, top.size, 3))
            r12 = r[:, :, 0] + r[:, :, 1]
            all_rounds += r.sum(axis=(1, 2))
            window_rounds += r12.sum(axis=1)
            w = s.d_write + r12
            if spin:  # each CPU traps at most once in each site's window
                xs = w * (top * NS) * (1.0 if gain is None else gain[:, None])
                k = rng.binomial(spin_callers(cfg), -np.expm1(-xs))
                _count(res, g, k.sum(axis=1), rng)
                res["stall_ns"] += spin_wait(rng, k, w, xs)
            else:
                x += fdot(w, top)
        rest = g.sites.count - top.size
        # the rest's window rounds and third rounds, summed apart so
        # window_ns and patch_ns share them (the rate-weighted
        # exposure below is drawn from its own exact moments)
        r12_rest = t.draw_round_sum(rng, n, 2 * rest, size)
        window_rounds += r12_rest
        all_rounds += r12_rest + t.draw_round_sum(rng, n, rest, size)
        if spin:
            # the rest's traps per CPU from their exact mean and
            # variance (rest_sums); each waits the rest's mean wait
            _, _, (rest_p, rest_b, rest_v) = spin_per_site(t, n, s.d_write, cfg.workload, g.kind,
                                                           g.share, g.functions)
            if rest_p > 0:
                lam = spin_callers(cfg) * gamma_matched(rng, rest_p, rest_v, size)
                k = rng.poisson(lam if gain is None else lam * gain)
                _count(res, g, k, rng)
                res["stall_ns"] += k * (rest_b / rest_p)
            continue
        if g.sites.rest_total > 0:
            x += gamma_matched(rng, g.sites.rest_total * ew, g.sites.rest_sumsq * 2 * var, size)
        exposures.append((g, x))
    res["patch_ns"] += s.sites * (t.prepare_ns + 3 * t.write_ns) + all_rounds
    res["window_ns"] = s.d_write + window_rounds / max(s.sites, 1)
    if s.patcher:  # the interrupt function's own site window (its own two rounds)
        _draw_patcher(res, s, s.d_write + t.draw_rounds(rng, n, (size, 2)).sum(axis=1), rng, size)
    return exposures


def _draw_patcher(res: dict[str, np.ndarray], stage: TimelineStage, w: np.ndarray, rng: np.random.Generator,
                  size: int) -> None:
    """Spin: whether the patching CPU's first interrupt-context call fell in window *w* (per trial)."""
    for g in stage.patcher:
        k = (rng.random(size) < -np.expm1(-NS * g.sites.total * w)).astype(np.int64)
        _count(res, g, k, rng)


def _config_columns(cfg: RaceConfig, outcomes: PerCallOutcomes, trials: int, seed: int, stream: int) -> dict:
    w, t = cfg.workload, cfg.timing
    stages = patch_timeline(cfg, None)
    row = {"arch": cfg.arch, "scenario": cfg.scenario, "entry": outcomes.entry, "strategy": cfg.strategy,
           "batching": cfg.batching, "batch_max": cfg.batch_max, "cpus": cfg.cpus,
           "n_sites": sum(s.sites for s in stages if s.what in ("batched", "per_site")),
           "hot_rates": ",".join(f"{k}={v:g}" for k, v in w.hot),
           "tail_functions": w.tail_functions, "tail_rate": w.tail_rate, "zipf_s": w.zipf_s,
           "dispersion": w.dispersion, "trampolines": cfg.trampolines}
    row.update({f.name: getattr(t, f.name) for f in fields(Timing)})
    row.update({"ipi_round_ns": t.round_moments(cfg.cpus)[0], "horizon_ns": cfg.horizon_ns,
                "trials": trials, "seed": seed, "stream": stream})
    return row


def simulate(config: RaceConfig, outcomes: PerCallOutcomes | None, trials: int = 10_000, seed: int = 0, *,
             stream: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Monte Carlo of *config*: a one-row tidy frame beside the closed form.

    Columns: the configuration, then per metric ``<m>_mean``, ``<m>_se``
    (standard error of the mean), ``<m>_lo``/``<m>_hi`` (normal interval of
    the mean at *level*, default 95%) and ``<m>_cf`` (closed form), and
    ``outcome_note`` naming (strategy, site kind, trap site) keys the outcome
    table lacks (counted as 0). Random numbers come from
    ``SeedSequence(seed, spawn_key=(stream,))``: same inputs, same numbers.
    *outcomes* None loads the emulator's table (:func:`load_outcomes`).
    Raises :class:`ConfigError` for bad trials, seed, level, or an outcome
    table of another scenario.
    """
    trials = int(check_range("trials", trials, 2, 10**8, integer=True))
    seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
    stream = int(check_range("stream", stream, 0, 2**63 - 1, integer=True))
    level = check_range("level", level, 0.5, 0.999999)
    if outcomes is None:
        outcomes = load_outcomes(config.scenario, arch=config.arch)
    if outcomes.scenario != config.scenario:
        raise ConfigError(f"outcomes: table is for scenario {outcomes.scenario!r}, "
                          f"config is {config.scenario!r}")
    if outcomes.arch != config.arch:
        raise ConfigError(f"outcomes: table is for arch {outcomes.arch!r}, config is {config.arch!r}")
    stages = patch_timeline(config, outcomes)
    cf = _closed(config, outcomes)
    missing = sorted({(config.strategy, g.kind, g.trap_site) for s in stages for g in s.groups
                      if g.sites.total > 0 and config.batching != "stop_machine"
                      and not outcomes.has(config.strategy, g.kind, g.trap_site)})
    note = "; ".join(f"no emulator rows for {'/'.join(k)}: counted as 0" for k in missing)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
    count, mean, m2 = 0, dict.fromkeys(METRICS, 0.0), dict.fromkeys(METRICS, 0.0)
    lo = dict.fromkeys(METRICS, math.inf)
    hi = dict.fromkeys(METRICS, -math.inf)
    for start in range(0, trials, _CHUNK):
        size = min(_CHUNK, trials - start)
        chunk = draw_chunk(config, stages, rng, size)
        for m in METRICS:  # Chan et al.'s pairwise update of mean and M2
            lo[m], hi[m] = min(lo[m], float(chunk[m].min())), max(hi[m], float(chunk[m].max()))
            cm = float(chunk[m].mean())
            cm2 = float(((chunk[m] - cm) ** 2).sum())
            delta, total = cm - mean[m], count + size
            mean[m] += delta * size / total
            m2[m] += cm2 + delta * delta * count * size / total
        count += size
    z = _normal_quantile(0.5 + level / 2)
    row = _config_columns(config, outcomes, trials, seed, stream)
    for m in METRICS:
        if lo[m] == hi[m]:  # a constant (IPI count, no traps): exact, no rounding noise
            mean[m], m2[m] = lo[m], 0.0
        se = math.sqrt(m2[m] / (trials - 1) / trials)
        row.update({f"{m}_mean": mean[m], f"{m}_se": se, f"{m}_lo": mean[m] - z * se,
                    f"{m}_hi": mean[m] + z * se, f"{m}_cf": cf[m]})
    row["outcome_note"] = note
    return pd.DataFrame([row])


def config_stream(config: RaceConfig) -> int:
    """The 63-bit random stream of a :class:`RaceConfig`: a hash of its full ``repr`` (floats exact),
    with ``batching`` spelled ``protocol`` as when the streams were first drawn (same config, same numbers)."""
    text = repr(config).replace(", batching=", ", protocol=", 1)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def simulate_many(configs: Iterable[RaceConfig], outcomes, trials: int = 10_000, seed: int = 0, *,
                  level: float = 0.95) -> pd.DataFrame:
    """:func:`simulate` each config (stream = :func:`config_stream` of it); concatenated frame.

    *outcomes* is one :class:`PerCallOutcomes`, a mapping scenario (or
    (scenario, arch)) -> it, or None (load each (scenario, arch)'s emulator
    table once). Each point's stream
    depends only on *seed* and the configuration itself, not on its
    position in *configs*: a configuration gives the same numbers alone or
    in any list.
    """
    frames, loaded = [], {}
    for cfg in configs:
        key = (cfg.scenario, cfg.arch)
        if outcomes is None:
            if key not in loaded:
                loaded[key] = load_outcomes(cfg.scenario, arch=cfg.arch)
            table = loaded[key]
        elif isinstance(outcomes, dict):
            table = outcomes[key] if key in outcomes else outcomes[cfg.scenario]
        else:
            table = outcomes
        frames.append(simulate(cfg, table, trials, seed, stream=config_stream(cfg), level=level))
    return pd.concat(frames, ignore_index=True)


def _normal_quantile(p: float) -> float:
    """Standard normal quantile by bisection on erf (no scipy needed)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
