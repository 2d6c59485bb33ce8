"""Importing tokens from where SDK users keep them today, through the store's own save path.

Sources: the SDK's FileStore CSV (9- and 10-column layouts), a SQLite database with the Kaizen
sample's ``oauthtoken`` table, the SDK's MySQL DBStore table, and our own JSON-lines export.
Every row is checked on its own: a malformed one is rejected with its line number and the import
goes on. Running an import twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pymongo.errors import OperationFailure, PyMongoError
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from .errors import sentence
from .mapping import token_fields
from .masking import is_masked
from .records import RECORD_FIELDS, record_to_token
from .store import MongoTokenStore

# The SDK's FileStore header (Constants), and the record field each column becomes.
FILESTORE_COLUMNS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token",
                     "grant_token", "expiry_time", "redirect_uri", "api_domain"]
_RENAMED = {"expiry_time": "expires_in", "redirect_uri": "redirect_url"}
SQL_COLUMNS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token",
               "expiry_time", "redirect_url", "api_domain"]
_TABLE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class SourceError(Exception):
    """The source as a whole cannot be read (wrong format, missing table, unreachable server)."""


@dataclass
class Row:
    line: int
    record: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Report:
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def summary(self, dry_run: bool) -> str:
        verb = "would insert" if dry_run else "inserted"
        update = "would update" if dry_run else "updated"
        return f"{verb} {self.inserted}, {update} {self.updated}, skipped {self.skipped}, rejected {len(self.rejected)}"


def _record(columns: list[str], values: Iterable[Any]) -> dict[str, Any]:
    record = {}
    for column, value in zip(columns, values, strict=True):
        if isinstance(value, (bytes, bytearray)):
            raise ValueError(f"{column} is binary data, not text")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # SQLite and MySQL may hand back numeric ids and expiry times
        record[_RENAMED.get(column, column)] = value
    return record


def read_filestore(path: Path) -> Iterator[Row]:
    """The SDK's FileStore CSV: a 10-column header, or the 9-column one older SDKs wrote."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        if header not in (FILESTORE_COLUMNS, FILESTORE_COLUMNS[:9]):
            raise SourceError(f"{path} is not a FileStore CSV: its header is not {','.join(FILESTORE_COLUMNS)}")
        for values in reader:
            if not values:
                continue
            if len(values) != len(header):
                yield Row(reader.line_num, error=f"expected {len(header)} columns, found {len(values)}")
                continue
            yield Row(reader.line_num, _record(header, values))


def read_sql(connection: Any, table: str) -> Iterator[Row]:
    """Rows of a Kaizen/DBStore ``oauthtoken`` table from any DB-API connection; line = row number."""
    if not _TABLE_NAME.fullmatch(table):
        raise SourceError("a table name has only letters, digits and underscores")
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT {', '.join(SQL_COLUMNS)} FROM {table} ORDER BY id")
    except Exception as error:
        raise SourceError(f"cannot read table {table}: {error}") from None
    for number, values in enumerate(cursor, start=1):
        try:
            yield Row(number, _record(SQL_COLUMNS, values))
        except ValueError as error:
            yield Row(number, error=str(error))


def read_sqlite(path: Path, table: str = "oauthtoken") -> Iterator[Row]:
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield from read_sql(connection, table)
    finally:
        connection.close()


def read_mysql(url: str) -> Iterator[Row]:
    """``mysql://user:password@host:3306/database?table=oauthtoken`` (the SDK's DBStore defaults)."""
    try:
        import mysql.connector  # type: ignore[import-not-found]
    except ImportError:
        raise SourceError("the MySQL driver is missing: pip install 'zoho-mongo-store[mysql]'") from None
    parts = urlparse(url)
    table = parse_qs(parts.query).get("table", ["oauthtoken"])[0]
    try:
        connection = mysql.connector.connect(
            host=parts.hostname or "localhost", port=parts.port or 3306, user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""), database=parts.path.lstrip("/") or "zohooauth",
            connection_timeout=10,
        )
    except Exception as error:
        raise SourceError(f"cannot connect to MySQL at {parts.hostname}:{parts.port or 3306}: {type(error).__name__}") from None
    try:
        yield from read_sql(connection, table)
    finally:
        connection.close()


def read_export(path: Path) -> Iterator[Row]:
    """Our own JSON-lines export. A masked export holds no secrets, so it cannot be imported."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield Row(number, error=f"not JSON ({error.msg})")
                continue
            if not isinstance(record, dict):
                yield Row(number, error="not a JSON object")
            elif any(is_masked(record.get(name)) for name in RECORD_FIELDS):
                yield Row(number, error="secrets are masked: export again with --include-secrets")
            else:
                yield Row(number, record)


def open_source(source: str, kind: str | None = None, table: str = "oauthtoken") -> Iterator[Row]:
    """Rows from ``source``; ``kind`` is filestore, sqlite, mysql or export, else guessed."""
    if kind is None:
        suffix = Path(source).suffix.lower()
        kind = ("mysql" if source.startswith("mysql://") else "filestore" if suffix == ".csv"
                else "sqlite" if suffix in (".db", ".sqlite", ".sqlite3") else "export" if suffix in (".jsonl", ".json")
                else None)
        if kind is None:
            raise SourceError(f"cannot tell what {source} is: give --from filestore|sqlite|mysql|export")
    if kind == "mysql":
        return read_mysql(source)
    path = Path(source)
    if not path.is_file():
        raise SourceError(f"{source} does not exist")
    readers = {"filestore": read_filestore, "export": read_export}
    return read_sqlite(path, table) if kind == "sqlite" else readers[kind](path)


def import_rows(store: MongoTokenStore, rows: Iterable[Row], dry_run: bool = False) -> Report:
    """Save each row through ``store.save_token``; a stored token equal to the row is skipped."""
    report = Report()
    for row in rows:
        if row.error is not None or row.record is None:
            report.rejected.append((row.line, row.error or "empty row"))
            continue
        try:
            token = record_to_token(row.record)
            fields = token_fields(token)
            stored = store.find_document(token)
            if stored is not None and all(stored.get(key) == value for key, value in fields.items()):
                report.skipped += 1
                continue
            if not dry_run:
                store.save_token(token)
        except (SDKException, ValueError) as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, PyMongoError) and not isinstance(cause, OperationFailure):
                raise  # the server is gone: stop, rather than reject every remaining row
            report.rejected.append((row.line, sentence(error)))
            continue
        if stored is None:
            report.inserted += 1
        else:
            report.updated += 1
    return report
