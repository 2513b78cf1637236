"""``python -m tideflow.cli``: the ``tideflow`` command."""

from tideflow.cli import main

raise SystemExit(main())
