"""`python -m pldsl ...`: the `pldsl` command where the console script is not on PATH."""

import sys

from pldsl.cli import main

sys.exit(main())
