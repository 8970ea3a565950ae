"""``python -m lava_retrieval.cli``: the command line."""

import sys

from lava_retrieval.cli import main

sys.exit(main())
