"""The guest's ``/init``: ftrace updates through tracefs, each one measured.

What the guest does is what a person at a root shell would do
(Documentation/trace/ftrace.rst, kprobetrace.rst of v6.1): choose N sites in
``set_ftrace_filter`` (by index into ``available_filter_functions``, an
empty filter being every function), ``echo function > current_tracer`` and
``echo nop`` (``kernel/trace/trace_functions.c``), and enable or disable a
kprobe event on a traced function (``kernel/trace/trace_kprobe.c``; on a
function's first instruction it is an ftrace ops with SAVE_REGS,
``arch/x86/kernel/kprobes/ftrace.c``). Around each update it reads the
``CAL``, ``TLB`` and ``RES`` rows of ``/proc/interrupts``
(``arch/x86/kernel/irq.c``: ``irq_call_count`` counts every
call-function(-single) vector received) and ``/proc/uptime``, with shell
built-ins only, so that no process is forked or reaped inside the measured
interval. Trace markers bracket the update (its elapsed time) and, around
them, the two readings (the window whose IPIs are classed) in a trace
instance of its own (not reset when ``current_tracer`` changes).

To explain the IPIs, two kprobe events (int3 kprobes one instruction past
the fentry call, so they add no ftrace ops; past entry ``$argN`` is refused,
so the arguments are read from their registers, untouched by then) record every sender:
``smp_call_function_many_cond`` (``kernel/smp.c``; ``on_each_cpu*``,
``smp_call_function``, TLB shootdowns) with the first word of its CPU mask
and its callback, and ``__smp_call_single_queue`` (single-target calls and
queued remote wakeups) with its target CPU, each with a stack trace.
Everything the guest reports is a console line starting ``@@``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KPROBE_TARGET", "UPDATES", "Update", "guest_script"]

#: the updates the guest can make (in a run, each ``tracer_on`` is followed by the others in this order)
UPDATES = ("tracer_on", "kprobe_add", "kprobe_remove", "tracer_off")

#: the traced function that carries the kprobe (always in the filter; N counts it)
KPROBE_TARGET = "vfs_read"

#: the first instruction after a 5-byte fentry call (x86_64 and i386 6.1 kernels, no IBT)
_PAST_FENTRY = 5


@dataclass(frozen=True)
class Update:
    """One measured update: its id in the run, its kind and its site count (0: every traceable function)."""

    uid: int
    kind: str
    n: int


#: the registers of a function's first two arguments (x86_64 SysV; i386 regparm(3)), by pointer type
_ARGS = {"x64": ("di", "si"), "x32": ("ax", "dx")}

#: offset of ``func`` in ``struct __call_single_data`` (include/linux/smp_types.h: llist node, flags,
#: and ``u16 src, dst`` under CONFIG_64BIT)
_CSD_FUNC = {"x64": 16, "x32": 8}

_HEAD = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tracefs nodev /sys/kernel/tracing
mount -t devtmpfs dev /dev 2>/dev/null
T=/sys/kernel/tracing
echo "@@ HELLO $(uname -r) $(uname -m) cpus=$(grep -c ^processor /proc/cpuinfo) avail=$(wc -l < $T/available_filter_functions)"
echo 0 > /proc/sys/debug/kprobes-optimization
mkdir $T/instances/anchor
I=$T/instances/anchor
echo 4096 > $I/buffer_size_kb
echo 0 > $T/tracing_on
W=__WORD__
echo "p:anchor/scf smp_call_function_many_cond+__PAST__ mask=+0(%__A1__):$W func=%__A2__:$W" >> $T/kprobe_events || echo "@@ NOPROBE scf"
echo "p:anchor/csq __smp_call_single_queue+__PAST__ cpu=%__A1__:s32" >> $T/kprobe_events || echo "@@ NOPROBE csq"
echo "p:anchor/ges generic_exec_single+__PAST__ cpu=%__A1__:s32 func=+__CSDF__(%__A2__):$W" >> $T/kprobe_events || echo "@@ NOPROBE ges"
echo "p:anchor/sfm native_send_call_func_ipi+__PAST__ mask=+0(%__A1__):$W" >> $T/kprobe_events || echo "@@ NOPROBE sfm"
echo "p:anchor/sfs native_send_call_func_single_ipi+__PAST__ cpu=%__A1__:s32" >> $T/kprobe_events || echo "@@ NOPROBE sfs"
echo 1 > $I/events/anchor/enable
echo 1 > $I/events/irq_vectors/call_function_entry/enable
echo 1 > $I/events/irq_vectors/call_function_single_entry/enable
echo 'p:anchor_kp/kp __TARGET__' >> $T/kprobe_events || echo "@@ NOPROBE kp"
echo 1 > $I/tracing_on
snap() {
  while read -r l; do
    case "$l" in CAL:*) CAL="$l";; TLB:*) TLB="$l";; RES:*) RES="$l";; esac
  done < /proc/interrupts
  read -r UP _ < /proc/uptime
}
choose() {
  if [ "$1" = 0 ]; then echo > $T/set_ftrace_filter
  else
    echo __TARGET__ > $T/set_ftrace_filter
    if [ "$1" -gt 1 ]; then seq 1 $(($1 - 1)) | tr '\n' ' ' > /tmp/idx; cat /tmp/idx >> $T/set_ftrace_filter; fi
  fi
  echo "@@ FILTER $1 $(wc -l < $T/set_ftrace_filter)"
}
measure() {
  echo > $I/trace
  sleep 0.3
  echo "anchor-pre $1" > $I/trace_marker
  snap; A="$UP|$CAL|$TLB|$RES"
  echo "anchor-begin $1" > $I/trace_marker
  eval "$2"
  echo "anchor-end $1" > $I/trace_marker
  snap; B="$UP|$CAL|$TLB|$RES"
  echo "anchor-post $1" > $I/trace_marker
  echo "@@ U $1 $3 $4"
  echo "@@ A $A"
  echo "@@ B $B"
  echo "@@ EN $1 $(wc -l < $T/enabled_functions)"
  while read -r l; do echo "@@ KP $1 $l"; done < $T/kprobe_profile
  grep -v '^#' $I/trace | sed "s/^/@@ T $1 /"
}
"""

_ACTIONS = {
    "tracer_on": "echo function > $T/current_tracer",
    "kprobe_add": "echo 1 > $T/events/anchor_kp/kp/enable",
    "kprobe_remove": "echo 0 > $T/events/anchor_kp/kp/enable",
    "tracer_off": "echo nop > $T/current_tracer",
}

_TAIL = r"""
grep -h -o 'func=0x[0-9a-f]*' $I/trace /tmp/funcs 2>/dev/null | sort -u > /tmp/funcs.u
echo "@@ DONE"
awk 'NR==FNR { sub("func=0x", ""); want[$0] = 1; next } ($1 in want) { print "@@ SYM " $1 " " $3 }' /tmp/funcs.u /proc/kallsyms
echo "@@ END"
poweroff -f
"""


def guest_script(ns: tuple[int, ...], *, word: str = "x64", sleep_init: bool = False) -> tuple[str, tuple[Update, ...]]:
    """The ``/init`` for site counts *ns* (0: all) and the updates it makes, in order.

    *word* is the kprobe fetch type of a pointer (``x64`` on x86_64, ``x32``
    on i386). ``sleep_init`` makes an init that never finishes (a hung guest,
    for the timeout's test).
    """
    if sleep_init:
        return "#!/bin/busybox sh\n/bin/busybox echo '@@ HANG'\nwhile :; do /bin/busybox sleep 1000; done\n", ()
    a1, a2 = _ARGS[word]
    head = (_HEAD.replace("__WORD__", word).replace("__A1__", a1).replace("__A2__", a2)
            .replace("__CSDF__", str(_CSD_FUNC[word])).replace("__PAST__", str(_PAST_FENTRY))
            .replace("__TARGET__", KPROBE_TARGET))
    body, updates, uid = [head], [], 0
    for n in ns:
        body.append(f"choose {n}\n")
        for kind in UPDATES:
            body.append(f"measure {uid} '{_ACTIONS[kind]}' {kind} {n}\n")
            # collect callbacks of this update's senders before the next one clears the buffer
            body.append("grep -h -o 'func=0x[0-9a-f]*' $I/trace >> /tmp/funcs\n")
            updates.append(Update(uid, kind, n))
            uid += 1
    body.append(_TAIL)
    return "".join(body), tuple(updates)
