"""`python -m workbench ...`: the command line (workbench.cli)."""

import sys

from workbench.cli import main

sys.exit(main())
