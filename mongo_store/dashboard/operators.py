"""Operator accounts for the dashboard's password sign-in: a file of argon2id hashes, one
``name:hash`` line per operator, readable by its owner only (0600), so the audit log names who
signed in instead of a name typed beside a shared password. ``zoho-mongo-store add-operator``
writes it. Parsed here (not in settings.py) so the CLI needs no Streamlit."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

OPERATORS_FILE_ENV = "DASHBOARD_OPERATORS_FILE"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
"""An account name: letters, digits and ``. _ @ + -`` (an e-mail works), no ``:`` or spaces."""
MIN_PASSWORD = 12


class OperatorsError(Exception):
    """The operators file cannot be used (one sentence, never a hash or a password)."""


def hasher() -> PasswordHasher:
    """argon2id with the library's recommended parameters (RFC 9106 low-memory profile)."""
    try:
        from argon2 import PasswordHasher
    except ImportError:
        raise OperatorsError("operator accounts need argon2-cffi: pip install 'zoho-mongo-store[dashboard]'") from None
    return PasswordHasher()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise OperatorsError("an operator name is 1 to 128 letters, digits or . _ @ + - (no spaces or colons), "
                             "starting with a letter or digit")
    return name


def read_operators(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{name: argon2 hash}``. Refuses a file that others may read or write, a symbolic link, and
    any malformed line (naming its number, never its content)."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as error:
        raise OperatorsError(f"cannot read the operators file {path}: "
                             f"{'it is a symbolic link' if path.is_symlink() else error.strerror}") from None
    with os.fdopen(descriptor, encoding="utf-8") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            raise OperatorsError(f"the operators file {path} may be read or changed by others (mode {mode:04o}): "
                                 f"chmod 600 {path}")
        try:
            lines = handle.read().splitlines()
        except UnicodeDecodeError:
            raise OperatorsError(f"the operators file {path} is not UTF-8 text") from None
    operators: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, hashed = line.partition(":")
        if not NAME.fullmatch(name) or not hashed.startswith("$argon2"):
            raise OperatorsError(f"line {number} of the operators file {path} is not name:argon2-hash")
        if name in operators:
            raise OperatorsError(f"line {number} of the operators file {path} repeats the operator {name}")
        operators[name] = hashed
    return operators


def add_operator(path: str | os.PathLike[str], name: str, password: str) -> bool:
    """Add the operator, or set a new password for an existing one; True if it was new. Written to
    a new 0600 file that replaces the old one at once (a reader never sees half a file)."""
    check_name(name)
    if len(password) < MIN_PASSWORD:
        raise OperatorsError(f"the password must have at least {MIN_PASSWORD} characters")
    path = Path(path)
    operators = read_operators(path) if path.exists() or path.is_symlink() else {}
    new = name not in operators
    operators[name] = hasher().hash(password)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("# zoho-mongo-store dashboard operators: name:argon2id hash (add with "
                         "`zoho-mongo-store add-operator NAME`)\n")
            handle.writelines(f"{key}:{value}\n" for key, value in operators.items())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return new


DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
"""Verified against for an unknown name, so a wrong name takes as long as a wrong password."""


def verify(operators: dict[str, str], name: str, password: str) -> bool:
    """Whether ``password`` is this operator's (argon2's own comparison; as slow for unknown names)."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    ph = hasher()
    try:
        return bool(ph.verify(operators.get(name, DUMMY_HASH), password)) and name in operators
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
