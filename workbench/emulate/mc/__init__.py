"""Model checking of the patching protocol with several calling CPUs.

Models ``text_poke_bp()`` / ``text_poke_bp_batch()`` of
``arch/x86/kernel/alternative.c`` (and ``poke_int3_handler()`` with its two
reads of ``bp_patching``) against k calling CPUs executing the workbench's
i386 or x86_64 code, interleaved at visible operations only:

* :mod:`workbench.emulate.mc.config`: what to check (configuration,
  poke methods), threads, visible operations and their dependence;
* :mod:`workbench.emulate.mc.system`: the transition system (each visible
  operation's access set, stepping, replay from the initial state);
* :mod:`workbench.emulate.mc.dpor`: source-DPOR with sleep sets (Abdulla,
  Aronis, Jonsson, Sagonas, POPL 2014) and the naive enumeration it is
  checked against;
* :mod:`workbench.emulate.mc.schedule`: counterexample files (JSON, schema
  version, content hash) and their step-by-step replay;
* :mod:`workbench.emulate.mc.check`: exhaustive exploration of one
  configuration, its outcome rows, its split into subtrees;
* :mod:`workbench.emulate.mc.experiment`: the subtrees as the sweep
  engine's work items (backends, cache, resume), joined per configuration.

docs/MODEL_CHECKING.md gives the model and the soundness argument.
"""
