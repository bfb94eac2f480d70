"""What a call did, and how that compares with what it should have done.

Reads the evidence the emulated code leaves in memory: the body mark a
traced function's body writes into ``thread_info``, the function tracer's
ring-buffer entries for the call's ip, the int3 entries the entry stub
counted, and the workload's check of the caller's registers and stack.
Classifies a trapped call by the outcome semantics of docs/KERNEL.md §15 against the
handlers that the old and the new instruction run, which are themselves
measured by running the call with each instruction in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.kernel.layout import EQU

__all__ = ["Observed", "observe", "classify", "HANDLERS"]

#: handler names as they appear in expected/observed sets
HANDLERS = ("livepatch", "probe", "tracer")


@dataclass(frozen=True)
class Observed:
    """The evidence one call left in memory."""

    function: str
    body: str  #: "old", "new" or "none"
    bodies: int  #: bodies that ran (1 when all is well)
    tracer_runs: int  #: ring-buffer entries for this call's ip and return address
    livepatch_runs: int  #: redirections the livepatch handler made
    traps: int  #: int3 entries during the call
    corrupt: int  #: bit set of caller state the call destroyed (0 = intact)
    phase0: int
    phase1: int
    probe_runs: int = 0  #: calls of the SAVE_REGS probe handler during the call
    bogus_records: int = 0  #: tracer records written during the call with another ip or parent

    @property
    def handlers(self) -> frozenset[str]:
        h = set()
        if self.tracer_runs:
            h.add("tracer")
        if self.body == "new":
            h.add("livepatch")
        if self.probe_runs:
            h.add("probe")
        return frozenset(h)


def observe(cpu, rec: dict) -> Observed:
    """Decode a call-log record of *cpu* (from :meth:`Cpu.drain`)."""
    im = cpu.machine.image
    fn = im.name_at(rec["fn"])
    body_id, which = rec["body"] >> 8, rec["body"] & 0xFF
    fobj = im.functions.get(fn)
    if rec["body_cnt"] == 0:
        body = "none"
    elif fobj is not None and body_id == fobj.id:
        body = {EQU["BODY_OLD"]: "old", EQU["BODY_NEW"]: "new"}.get(which, "none")
    else:
        body = "none"  # another function's body ran: the call went astray
    tracer = bogus = 0
    if rec["rb1"] > rec["rb0"]:
        # every record this CPU wrote during the call is checked: one with
        # another ip or parent traced a call that did not happen
        recs = cpu.trace_records(rec["rb0"], rec["rb1"])
        ret = im.sym("workload_return")
        tracer = int(((recs[:, 0] == rec["fn"]) & (recs[:, 1] == ret)).sum())
        bogus = len(recs) - tracer
    return Observed(fn, body, rec["body_cnt"], tracer, rec["klp"], rec["traps1"] - rec["traps0"],
                    rec["corrupt"], rec["phase0"], rec["phase1"], rec.get("probe", 0), bogus)


def classify(obs: Observed, old: frozenset[str], new: frozenset[str],
             registered: frozenset[str]) -> dict:
    """Outcome of a call against the handlers of the *old* and *new* instruction.

    *registered* holds the handler kinds of ops registered and not being
    removed. Returns counts: ``violation`` (a handler both instructions run
    did not run; a livepatched function running its old body is one),
    ``dropped_tracer`` / ``dropped_livepatch`` (a registered handler that
    either instruction runs did not run), ``spurious`` (a handler neither
    runs, one that ran more than once, or a tracer record with a wrong ip or
    parent), and ``crash``.
    """
    ran = obs.handlers
    either = (old | new) & registered
    out = {
        "violation": len((old & new) - ran),
        "dropped_tracer": int("tracer" in either and "tracer" not in ran),
        "dropped_livepatch": int("livepatch" in either and "livepatch" not in ran),
        "spurious": len(ran - (old | new)) + max(obs.tracer_runs - 1, 0) + max(obs.bodies - 1, 0)
        + obs.bogus_records + max(obs.probe_runs - 1, 0),
        "crash": bool(obs.corrupt) or obs.body == "none",
    }
    return out
