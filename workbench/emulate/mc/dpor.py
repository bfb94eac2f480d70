"""Source-DPOR with sleep sets over a replayable transition system, and naive enumeration.

Implements Algorithm 1 ("source-DPOR") of Abdulla, Aronis, Jonsson and
Sagonas, "Optimal dynamic partial order reduction", POPL 2014. A state is
reached again from a checkpoint (``save()``/``restore()``) when the system
has them, else by replaying its schedule from the initial state.
It explores at least one execution of every Mazurkiewicz trace (every
equivalence class of executions under swapping adjacent independent
events), and sleep sets keep it from completing two executions of the same
class. The system is any object with ``reset()``, ``enabled() -> {tid:
event}``, ``step(tid) -> event`` and ``outcome()``, whose events are
compared with a ``dependent(a, b)`` relation (for the patching protocol:
:mod:`workbench.emulate.mc.system`, which models ``arch/x86/kernel/alternative.c``).

:func:`naive` enumerates every interleaving (no reduction) for the
exhaustiveness tests; :func:`linearizations` counts the interleavings one
explored execution stands for, so weighted counts can be compared with the
naive ones; :func:`fewest_switches` finds the equivalent schedule with the
fewest context switches (how a counterexample is reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

__all__ = ["Execution", "Stats", "fewest_switches", "frontier", "happens_before", "linearizations", "naive",
           "prefix_sleep", "source_dpor"]


@dataclass(frozen=True)
class Execution:
    """One explored execution: its schedule (thread ids), events and outcome."""

    schedule: tuple
    events: tuple
    outcome: object


@dataclass
class Stats:
    """What an exploration did (the progress bar's numbers)."""

    executions: int = 0  #: complete executions (leaves) reached
    blocked: int = 0  #: executions cut because every enabled thread was asleep
    states: int = 0  #: transitions performed while exploring (replays excluded)
    replayed: int = 0  #: transitions replayed to return to a state (0 with checkpoints)
    races: int = 0  #: races found (dependent events, one directly before the other)
    irreversible: int = 0  #: races where the first event enabled the second
    extra: dict = field(default_factory=dict)


def happens_before(events, dependent) -> list[tuple]:
    """Vector clocks of *events*: ``vc[j][c]`` = events of the c-th thread (sorted ids) that happen before j or are j."""
    threads = sorted({e.tid for e in events})
    col = {t: n for n, t in enumerate(threads)}
    out: list[tuple] = []
    pos = dict.fromkeys(threads, 0)
    for j, e in enumerate(events):
        vc = [0] * len(threads)
        for i in range(j):
            if dependent(events[i], e):  # same thread counts as dependent
                vc = [max(a, b) for a, b in zip(vc, out[i], strict=True)]
        pos[e.tid] += 1
        vc[col[e.tid]] = pos[e.tid]
        out.append(tuple(vc))
    return out


class _Node:
    __slots__ = ("enabled", "backtrack", "sleep", "done")

    def __init__(self, sleep):
        self.enabled, self.backtrack, self.sleep, self.done = {}, set(), set(sleep), set()


def prefix_sleep(system, dependent: Callable, prefix) -> tuple[set, list]:
    """Replay *prefix* from the initial state; the sleep set it ends with, and its events.

    The sleep sets are those of a full expansion in thread order (every
    awake thread explored at every node, the earlier ones put to sleep in
    the later siblings while independent), which is how :func:`frontier`
    splits an exploration. ValueError if *prefix* is not one of its paths.
    """
    system.reset()
    sleep: set = set()
    events = []
    for n, p in enumerate(prefix):
        en = system.enabled()
        awake = sorted(set(en) - sleep)
        if p not in awake:
            raise ValueError(f"prefix: thread {p} at position {n} is not an awake thread (awake: {awake})")
        e = system.step(p)
        sleep = {q for q in sleep | {t for t in awake if t < p} if q in en and not dependent(en[q], e)}
        events.append(e)
    return sleep, events


def frontier(system, dependent: Callable, roots: int) -> list[tuple]:
    """The roots of a split exploration: at least *roots* paths from the initial state, if there are that many.

    The tree is expanded level by level until it has *roots* nodes or no
    node can grow. Every node above the roots is fully expanded (all awake
    threads, in order) with sleep sets, so each root's subtree can be
    explored by :func:`source_dpor` (``prefix=root``) on its own, anywhere,
    and the subtrees together explore every Mazurkiewicz trace, each in one
    subtree only: sleep sets keep two complete executions of one trace apart
    (Godefroid 1996, chapter 5; docs/MODEL_CHECKING.md), whether they lie in
    one subtree or two. A path whose execution has ended
    stays a root; one whose awake threads are all asleep is dropped (every
    trace through it is explored in an earlier sibling). Returns schedules
    (thread ids) in exploration order: the order of the roots of the
    serial exploration's depth-first search.
    """
    memo: dict = {}

    def awake(prefix: tuple):
        """The awake threads at *prefix*, sorted; None if its execution has ended."""
        if prefix not in memo:
            sleep, _ = prefix_sleep(system, dependent, prefix)
            en = system.enabled()
            memo[prefix] = sorted(set(en) - sleep) if en else None
        return memo[prefix]

    level: list[tuple] = [()]
    grown = True
    while len(level) < roots and grown:
        grown, nxt = False, []
        for prefix in level:
            threads = awake(prefix)
            if threads is None:
                nxt.append(prefix)
                continue
            grown = True
            nxt.extend(prefix + (p,) for p in threads)
        level = [q for q in nxt if awake(q) != []]
    return level


def source_dpor(system, dependent: Callable, visit: Callable[[Execution], None],
                progress: Callable[[Stats], None] | None = None, max_events: int = 10000,
                prefix: tuple = ()) -> Stats:
    """Explore every trace of *system*; call *visit* at each complete execution.

    With *prefix* (a root of :func:`frontier`), only the subtree under it:
    the prefix is replayed with its sleep set, and races are sought among
    the events after it only (the nodes above are fully expanded already).
    Returns :class:`Stats`. An execution longer than *max_events* raises
    RuntimeError (a model without a bound: a bug).
    """
    stats = Stats()
    seq: list = []  # events of the current execution
    sched: list = []
    vcs: list = []
    col: dict = {}
    nodes: list[_Node] = []
    at = [0]  # how many events of seq the system has performed

    sleep0, events = prefix_sleep(system, dependent, tuple(prefix))
    for e in events:
        _append(seq, sched, vcs, col, e, dependent)
    base = len(seq)
    at[0] = base
    stats.replayed += base

    snaps: list = []  # a checkpoint per node of the current path, if the system has them
    can_save = hasattr(system, "save")
    pending = getattr(system, "pending", dict)  # blocked threads' events, if the system tells them

    def goto(depth):
        if at[0] != depth:
            if can_save:
                system.restore(snaps[depth - base])
            else:
                system.reset()
                for tid in sched[:depth]:
                    system.step(tid)
                stats.replayed += depth
            at[0] = depth

    def races(j):
        """Races of event j with earlier events: add backtrack points (Algorithm 1, lines 5-8)."""
        ej = seq[j]
        for i in range(base, j):
            ei = seq[i]
            if ei.tid == ej.tid or not dependent(ei, ej):
                continue
            ci, pi = col[ei.tid], vcs[i][col[ei.tid]]
            # Every dependent pair counts, not only those with no event between
            # (the paper's e < e'): an IF change hides the race of an IPI ack with
            # the fetch that trapped behind the handler's own later events. A
            # superset of races only adds backtrack points (sound).
            stats.races += 1
            v = [m for m in range(i + 1, j) if vcs[m][ci] < pi] + [j]
            initials, seen = set(), set()
            for n, m in enumerate(v):
                t = seq[m].tid
                if t in seen:  # a thread's later events follow its first
                    continue
                seen.add(t)
                vm = vcs[m]
                if not any(vm[col[seq[x].tid]] >= vcs[x][col[seq[x].tid]] for x in v[:n]):
                    initials.add(t)
            node = nodes[i - base]
            if initials & node.backtrack:
                continue
            ok = sorted(t for t in initials if t in node.enabled)
            if ok:
                node.backtrack.add(ej.tid if ej.tid in ok else ok[0])
            else:
                # e_i enabled e_j (an IPI ack before the wait, a store a blocked
                # handler waits for): the two cannot run the other way round
                stats.irreversible += 1

    def explore(sleep):
        depth = len(seq)
        if depth > max_events:
            raise RuntimeError(f"an execution exceeded {max_events} events")
        node = _Node(sleep)
        nodes.append(node)
        if can_save:
            snaps.append(system.save())
        en = system.enabled()
        node.enabled = en
        if not en:
            # An event that is still pending when the execution ends was disabled
            # for good by an earlier one (an ack after the CPU cleared IF for a
            # call that then never returns): that race was never executed, so it
            # is sought as if the event came next.
            for _, e in sorted(pending().items()):
                _append(seq, sched, vcs, col, e, dependent)
                races(len(seq) - 1)
                seq.pop(), sched.pop(), vcs.pop()
            stats.executions += 1
            visit(Execution(tuple(sched), tuple(seq), system.outcome()))
            if progress:
                progress(stats)
            nodes.pop()
            snaps[depth - base:] = []
            return
        awake = sorted(set(en) - node.sleep)
        if not awake:
            stats.blocked += 1
            nodes.pop()
            snaps[depth - base:] = []
            return
        node.backtrack.add(awake[0])
        while True:
            cand = sorted(node.backtrack - node.done - node.sleep)
            if not cand:
                break
            p = cand[0]
            goto(depth)
            e = system.step(p)
            stats.states += 1
            at[0] = depth + 1
            _append(seq, sched, vcs, col, e, dependent)
            races(len(seq) - 1)
            child = {q for q in (node.sleep | node.done) if q in en and not dependent(en[q], e)}
            explore(child)
            seq.pop(), sched.pop(), vcs.pop()
            node.done.add(p)
        nodes.pop()
        snaps[depth - base:] = []

    explore(sleep0)
    return stats


def _append(seq, sched, vcs, col, e, dependent):
    """Append event *e* with its vector clock (columns grow as threads appear)."""
    if e.tid not in col:
        col[e.tid] = len(col)
    n = len(col)
    vc = [0] * n
    own = col[e.tid]
    for i in range(len(seq) - 1, -1, -1):
        if seq[i].tid == e.tid:
            prev = vcs[i]
            vc = [max(a, b) for a, b in zip(vc, prev + (0,) * (n - len(prev)), strict=True)]
            break
    for i, ei in enumerate(seq):
        if ei.tid != e.tid and dependent(ei, e):
            prev = vcs[i]
            vc = [max(a, b) for a, b in zip(vc, prev + (0,) * (n - len(prev)), strict=True)]
    vc[own] = sum(1 for x in seq if x.tid == e.tid) + 1
    seq.append(e)
    sched.append(e.tid)
    vcs.append(tuple(vc))
    # earlier clocks are shorter when threads appeared later: pad lazily on read
    for i in range(len(vcs)):
        if len(vcs[i]) < n:
            vcs[i] = vcs[i] + (0,) * (n - len(vcs[i]))


def naive(system, visit: Callable[[Execution], None], limit: int = 10**6) -> int:
    """Enumerate every interleaving of *system*'s enabled threads (no reduction).

    Calls *visit* for each complete execution; returns their number.
    RuntimeError past *limit* executions (too big to enumerate).
    """
    sched: list = []
    seq: list = []
    count = [0]
    at = [0]

    def goto(depth):
        if at[0] != depth:
            system.reset()
            for tid in sched[:depth]:
                system.step(tid)
            at[0] = depth

    def explore():
        depth = len(sched)
        goto(depth)
        en = sorted(system.enabled())
        if not en:
            count[0] += 1
            if count[0] > limit:
                raise RuntimeError(f"more than {limit} interleavings")
            visit(Execution(tuple(sched), tuple(seq), system.outcome()))
            return
        for p in en:
            goto(depth)
            seq.append(system.step(p))
            sched.append(p)
            at[0] = depth + 1
            explore()
            sched.pop(), seq.pop()

    system.reset()
    explore()
    return count[0]


def _chains(events, dependent):
    """Per-thread event indices and, per event, the events that must precede it."""
    vcs = happens_before(events, dependent)
    threads = sorted({e.tid for e in events})
    chains = {t: [j for j, e in enumerate(events) if e.tid == t] for t in threads}
    return threads, chains, vcs


def linearizations(events, dependent) -> int:
    """How many interleavings are equivalent to the execution *events* (linear extensions of happens-before)."""
    threads, chains, vcs = _chains(events, dependent)
    lens = tuple(len(chains[t]) for t in threads)

    @lru_cache(maxsize=None)
    def count(state):
        if state == lens:
            return 1
        total = 0
        for n, t in enumerate(threads):
            if state[n] < lens[n]:
                j = chains[t][state[n]]
                if all(vcs[j][c] <= state[c] + (1 if c == n else 0) for c in range(len(threads))):
                    total += count(state[:n] + (state[n] + 1,) + state[n + 1:])
        return total

    return count(tuple(0 for _ in threads))


def fewest_switches(events, dependent) -> tuple:
    """An equivalent schedule (thread ids) with the fewest context switches."""
    threads, chains, vcs = _chains(events, dependent)
    lens = tuple(len(chains[t]) for t in threads)

    @lru_cache(maxsize=None)
    def best(state, last):
        if state == lens:
            return 0, ()
        out = None
        for n, t in enumerate(threads):
            if state[n] < lens[n]:
                j = chains[t][state[n]]
                if all(vcs[j][c] <= state[c] + (1 if c == n else 0) for c in range(len(threads))):
                    cost, rest = best(state[:n] + (state[n] + 1,) + state[n + 1:], n)
                    cost += int(last != n and last != -1)
                    if out is None or cost < out[0]:
                        out = (cost, (t,) + rest)
        return out

    return best(tuple(0 for _ in threads), -1)[1]
