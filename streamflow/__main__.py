"""``python -m streamflow``: the command line."""

import sys

from streamflow.cli import main

sys.exit(main())
