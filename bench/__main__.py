"""Entry point: ``python -m bench [--quick | --tiny] [--json PATH] [--only NAMES]``."""

import sys

from bench.run import main

sys.exit(main())
