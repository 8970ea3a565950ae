"""``python -m lava_retrieval`` runs the command line."""

import sys

from lava_retrieval.cli import main

sys.exit(main())
