"""Starts Streamlit for ``zoho-mongo-store dashboard`` and ``demo``, in a child process that imports
the very ``mongo_store`` package the command runs from.

``python -m streamlit`` puts the working directory first on ``sys.path``, so a ``mongo_store``
folder there (a checkout, an older copy) was imported instead of the installed package. This file
is run by its path (``python .../launch.py PACKAGE_DIR run SCRIPT ...``): its own folder, which
Python puts first instead, is dropped, and ``mongo_store`` is loaded from ``PACKAGE_DIR`` before
anything can import it from elsewhere. The dashboard's data layer is imported here too, so the
Zoho SDK's second of imports is spent at start, not on the first page someone opens.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def pin(package_dir: str) -> None:
    """Load ``mongo_store`` from ``package_dir``: every ``mongo_store.*`` import then resolves there."""
    spec = importlib.util.spec_from_file_location("mongo_store", os.path.join(package_dir, "__init__.py"),
                                                  submodule_search_locations=[package_dir])
    if spec is None or spec.loader is None:
        raise SystemExit(f"no mongo_store package in {package_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mongo_store"] = module
    spec.loader.exec_module(module)


def main(argv: list[str]) -> int:
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    package_dir, arguments = argv[0], argv[1:]
    pin(package_dir)
    from streamlit.web.cli import main as streamlit

    import mongo_store.dashboard.data  # noqa: F401  (warm: the SDK and the store, before the first page)

    sys.argv = ["streamlit", *arguments]
    return int(streamlit() or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
