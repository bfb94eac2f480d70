"""``scenarios``: the named patch scenarios and their kernel-ordered plans."""

from workbench.kernel.image import build_image
from workbench.emulate.scenario import KERNELS, load_scenario, scenario_names
from workbench.kernel.text_poke import poke_steps


def configure(p):
    p.add_argument("--steps", action="store_true", help="also list every patcher step")


def run(args):
    im = build_image()
    for name in scenario_names():
        sc = load_scenario(name)
        plan = sc.plan(im)
        print(f"{name}: {sc.description}")
        print(f"    kernel: {sc.kernel}: {KERNELS[sc.kernel]}")
        print(f"    before [{', '.join(sc.before)}] -> after [{', '.join(sc.after)}]; "
              f"plan: {', '.join(p.name for p in plan)}")
        if args.steps:
            for i, s in enumerate(poke_steps(plan), 1):
                print(f"      {i:3d} {s.kind:5s} {s.name}")
    return 0
