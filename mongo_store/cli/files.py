"""Files the command line writes."""

from __future__ import annotations

import os
from typing import TextIO

from ..core.masking import printable
from .command import Failure


def private_file(path: str, force: bool) -> TextIO:
    """A new file only its owner can read (0600): an export with secrets must not be world-readable.
    An existing file is overwritten only with ``force``."""
    # O_NOFOLLOW: --force must not write the secrets through a symbolic link to wherever it points.
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise Failure(f"{printable(path)} exists; pass --force to overwrite it") from None
    except OSError as error:
        if os.path.islink(path):
            raise Failure(f"{printable(path)} is a symbolic link: not followed; remove it or write elsewhere") from None
        raise Failure(f"cannot write {printable(path)}: {error.strerror}") from None
    os.fchmod(descriptor, 0o600)  # an overwritten file keeps its old mode otherwise
    return os.fdopen(descriptor, "w", encoding="utf-8")
