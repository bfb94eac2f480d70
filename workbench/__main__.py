import sys

from workbench.ui.cli import exit_interrupted, main

status = main()
exit_interrupted(status)
sys.exit(status)
