"""``zoho-mongo-store``: the operators' command line (``app.py``), its commands (``commands/``),
each declared once (``command.py``). Parsing imports nothing heavy: a command imports the store,
pymongo and (only where it needs tokens) the SDK when it runs, so ``--help`` and ``--version``
answer at once and the admin commands never import the SDK."""

from __future__ import annotations

from .. import __version__
from .app import PROG, main, parser
from .types import HEALTH, SORTS, STATUSES

__all__ = ["HEALTH", "PROG", "SORTS", "STATUSES", "__version__", "main", "parser"]
