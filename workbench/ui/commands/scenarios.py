"""``scenarios``: the named patch scenarios and their kernel-ordered plans."""

from workbench.base.errors import check_choice
from workbench.base.vocabulary import ARCHES


def configure(p):
    p.add_argument("--steps", action="store_true", help="also list every patcher step")
    p.add_argument("--arch", default="i386", help=f"plans on this emulated kernel, one of {', '.join(ARCHES)}")


def run(args):
    from workbench.emulate.scenario import KERNELS, load_scenario, scenario_names  # start-up: capstone, not for parsing
    from workbench.kernel.image import build_image  # start-up: capstone, pyelftools, not for parsing
    from workbench.kernel.text_poke import poke_steps  # start-up: capstone, not for parsing

    arch = check_choice("arch", args.arch, ARCHES)
    im = build_image(arch=arch)
    for name in scenario_names():
        sc = load_scenario(name)
        plan = sc.plan(im)
        print(f"{name}: {sc.description}")
        tag = sc.kernel_on(arch)
        print(f"    {arch} kernel: {tag}: {KERNELS[tag]}")
        print(f"    before [{', '.join(sc.before)}] -> after [{', '.join(sc.after)}]; "
              f"plan: {', '.join(p.name for p in plan)}")
        if args.steps:
            for i, s in enumerate(poke_steps(plan), 1):
                print(f"      {i:3d} {s.kind:5s} {s.name}")
    return 0
