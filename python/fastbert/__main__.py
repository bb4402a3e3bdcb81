"""``python -m fastbert``: the same command line as the ``fastbert`` script."""

import sys

from fastbert.cli import main

sys.exit(main())
