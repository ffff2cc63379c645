"""The engine contract suite: one set of tests every engine backend must pass."""
