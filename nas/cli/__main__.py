"""``python -m nas.cli``: the ``hwnas`` entry point."""

import sys

from nas.cli import main

sys.exit(main())
