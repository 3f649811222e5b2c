"""`python -m tds_pipelines.simulator [flags]`: the same as `tds simulator`."""

import sys

from tds_pipelines.simulator.cli import main

sys.exit(main())
