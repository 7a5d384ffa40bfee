"""``python -m saswap`` runs the command line."""

import sys

from saswap.cli import main

sys.exit(main())
