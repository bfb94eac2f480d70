"""int3 workbench."""
