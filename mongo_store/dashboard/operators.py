"""Operator accounts for the dashboard's password sign-in: a file of argon2id hashes, one
``name:role:hash`` line per operator (``viewer``, ``operator`` or ``admin``; a ``name:hash`` line
written before roles is an admin, as it was), readable by its owner only (0600), so the audit log
names who signed in instead of a name typed beside a shared password. ``zoho-mongo-store
add-operator NAME --role ROLE`` writes it. Parsed here (not in settings.py) so the CLI needs no
Streamlit."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..tools.operations import ROLES

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


class Account(NamedTuple):
    password_hash: str
    role: str


def read_operators(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{name: argon2 hash}`` (``read_accounts`` has the roles too)."""
    return {name: account.password_hash for name, account in read_accounts(path).items()}


def read_accounts(path: str | os.PathLike[str]) -> dict[str, Account]:
    """``{name: Account(argon2 hash, role)}``. Refuses a file that others may read or write, a symbolic link, and
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
    operators: dict[str, Account] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        role, _, hashed = ("admin", "", rest) if rest.startswith("$argon2") else rest.partition(":")
        if not NAME.fullmatch(name) or role not in ROLES or not hashed.startswith("$argon2"):
            raise OperatorsError(f"line {number} of the operators file {path} is not name:role:argon2-hash "
                                 f"(a role is one of {', '.join(ROLES)})")
        if name in operators:
            raise OperatorsError(f"line {number} of the operators file {path} repeats the operator {name}")
        operators[name] = Account(hashed, role)
    return operators


def add_operator(path: str | os.PathLike[str], name: str, password: str, role: str | None = None) -> bool:
    """Add the operator, or set a new password (and role, if given) for an existing one; True if it
    was new. A new account without a role is an ``operator``. Written to a new 0600 file that
    replaces the old one at once (a reader never sees half a file)."""
    check_name(name)
    if role is not None and role not in ROLES:
        raise OperatorsError(f"a role is one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise OperatorsError(f"the password must have at least {MIN_PASSWORD} characters")
    path = Path(path)
    operators = read_accounts(path) if path.exists() or path.is_symlink() else {}
    new = name not in operators
    operators[name] = Account(hasher().hash(password), role or (operators[name].role if not new else "operator"))
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("# zoho-mongo-store dashboard operators: name:role:argon2id hash (add with "
                         "`zoho-mongo-store add-operator NAME --role ROLE`)\n")
            handle.writelines(f"{key}:{value.role}:{value.password_hash}\n" for key, value in operators.items())
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
