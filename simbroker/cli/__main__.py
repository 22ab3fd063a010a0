"""``python -m simbroker.cli``: the ``simbroker`` command."""

import sys

from simbroker.cli import main

sys.exit(main())
