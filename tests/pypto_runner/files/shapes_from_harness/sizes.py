"""A sibling module the kernel file imports (as pypto-lib's model folders have)."""

ROWS, COLS = 8, 16
