"""``python -m saswap`` runs the command line."""

import sys

from saswap.cli import main

if __name__ == "__main__":
    sys.exit(main())
