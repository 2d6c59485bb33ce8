"""Every command of ``zoho-mongo-store``: each declared once, with ``@command``, in one of these
modules; ``COMMANDS`` collects them in this order (the order ``--help`` lists them in). A new
command in one of these modules is its declaration alone; a new module is one more entry in
``MODULES`` (docs/architecture.md)."""

from __future__ import annotations

from ..command import Command
from . import audit, dashboard, delete, monitoring, tokens, transfer, zoho

MODULES = (tokens, audit, zoho, delete, transfer, dashboard, monitoring)
COMMANDS: tuple[Command, ...] = tuple(value for module in MODULES for value in vars(module).values()
                                      if isinstance(value, Command))
"""Every declared command, module by module, in declaration order."""
