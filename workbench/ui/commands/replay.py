"""``replay``: re-execute a counterexample schedule file step by step (each CPU's place, the sites' bytes, pt_regs)."""

import json

from workbench.base.errors import ConfigError


def configure(p):
    p.add_argument("file", help="a counterexample file written by `model-check` (its config names the arch)")
    p.add_argument("--json", action="store_true", help="print the steps as JSON records")
    p.add_argument("--quiet", action="store_true", help="print only the outcome")


def run(args):
    if args.json and args.quiet:
        raise ConfigError("quiet: --json and --quiet conflict (--json prints every step); choose one")
    from workbench.emulate.mc.schedule import load_schedule, replay_steps  # start-up: Unicorn, not for parsing

    config, schedule, expect = load_schedule(args.file)
    steps = list(replay_steps(config, schedule, expect))  # every check before any output
    if args.json:
        print(json.dumps(steps, indent=1))
        return 0
    if not args.quiet:  # which machine ran it, first: the arch and its entry
        print(f"{config.arch} {config.scenario}: {config.strategy}, entry {config.entry}, poke method {config.poke_method}, "
              f"handler {config.handler}, calls {' | '.join(','.join(c) for c in config.calls)}")
        for s in steps[:-1]:
            cpus = "  ".join(f"{c['cpu']}@{c['at']}[{c['pause']}{'' if c['if'] else ',IF=0'}]"
                             + (" CRASH" if c["crash"] else "") for c in s["cpus"])
            sites = " ".join(f"{k}={v}" for k, v in s["sites"].items())
            print(f"{s['n']:4d} {s['thread']:>3} {s['event']:<48} | {cpus} | {sites}")
            for c in s["cpus"]:
                if "pt_regs" in c:
                    r = c["pt_regs"]
                    print(f"{'':9}{c['cpu']} pt_regs: ip={r['ip']} sp={r['sp']} flags={r['flags']} "
                          f"ax={r['ax']} bp={r['bp']}")
    end = steps[-1]
    print(f"outcome: {end['outcome']}")
    if end["blocked"]:
        print("blocked: " + "; ".join(end["blocked"]))
    return 0
