"""``python -m mongo_store.cli``."""

import sys

from .app import main

sys.exit(main())
