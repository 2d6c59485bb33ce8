"""Importing tokens from where SDK users keep them today, through the store's own save path.

Sources: the SDK's FileStore CSV (9- and 10-column layouts), a SQLite database with the Kaizen
sample's ``oauthtoken`` table, the SDK's MySQL DBStore table, and our own JSON-lines export.
Every row is checked on its own: a malformed one is rejected with its line number and the import
goes on. Running an import twice changes nothing the second time.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pymongo.errors import OperationFailure, PyMongoError
from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

from ..core import events
from ..core.connection import uri_problem
from ..core.errors import sentence
from ..core.mapping import token_fields
from ..core.masking import is_masked
from ..core.store import MongoTokenStore
from .records import RECORD_FIELDS, record_to_token

# The SDK's FileStore header (Constants), and the record field each column becomes.
FILESTORE_COLUMNS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token",
                     "grant_token", "expiry_time", "redirect_uri", "api_domain"]
_RENAMED = {"expiry_time": "expires_in", "redirect_uri": "redirect_url"}
SQL_COLUMNS = ["id", "user_name", "client_id", "client_secret", "refresh_token", "access_token", "grant_token",
               "expiry_time", "redirect_url", "api_domain"]
_TABLE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class SourceError(Exception):
    """The source as a whole cannot be read (wrong format, missing table, unreachable server)."""


@dataclass
class Row:
    line: int
    record: dict[str, Any] | None = None
    error: str | None = None
    id: str | None = None
    """The token id a rejected row names, when it names one (an example in the summary)."""


EXAMPLES = 3
"""How many lines and ids a summarized rejection names."""
_HOLDER = re.compile(r"another stored token \([^)]*\)")


@dataclass
class Rejection:
    """The rows rejected for one reason: how many, and a few of their lines and ids."""

    reason: str
    lines: list[int]
    ids: list[str]

    def describe(self) -> str:
        """One line: the row itself when it is alone, else the count and a few examples."""
        if len(self.lines) == 1:
            return f"rejected line {self.lines[0]}: {self.reason}"
        more = ", …" if len(self.lines) > EXAMPLES else ""
        ids = f"; ids {', '.join(self.ids[:EXAMPLES])}{', …' if len(self.ids) > EXAMPLES else ''}" if self.ids else ""
        return (f"rejected {len(self.lines)} lines: {self.reason} "
                f"(lines {', '.join(map(str, self.lines[:EXAMPLES]))}{more}{ids})")


@dataclass
class Report:
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejected_ids: dict[int, str] = field(default_factory=dict)
    """Line -> the id the rejected row names (when it names one)."""
    imported: list[str] = field(default_factory=list)
    """The ids inserted or updated (a dry run's: none)."""

    def summary(self, dry_run: bool) -> str:
        verb = "would insert" if dry_run else "inserted"
        update = "would update" if dry_run else "updated"
        return f"{verb} {self.inserted}, {update} {self.updated}, skipped {self.skipped}, rejected {len(self.rejected)}"

    def reasons(self) -> list[Rejection]:
        """The rejections grouped by reason, the most frequent first: a masked export's 295 rows are
        one line. Conflicts with different stored tokens count as one reason (the row's own line
        says which, with ``--verbose``)."""
        groups: dict[str, Rejection] = {}
        for line, reason in self.rejected:
            key = _HOLDER.sub("another stored token", reason)
            group = groups.setdefault(key, Rejection(key, [], []))
            group.lines.append(line)
            if line in self.rejected_ids and len(group.ids) <= EXAMPLES:
                group.ids.append(self.rejected_ids[line])
        for group in groups.values():
            if len(group.lines) == 1:  # alone, it keeps its whole reason (which token holds the name)
                group.reason = dict(self.rejected)[group.lines[0]]
        return sorted(groups.values(), key=lambda group: (-len(group.lines), group.lines[0]))

    def reason_counts(self) -> list[dict[str, Any]]:
        """For the audit log: how many rows each reason rejected (``[{"reason", "rows"}]``)."""
        counts: dict[str, int] = {}
        for _, reason in self.rejected:
            key = _HOLDER.sub("another stored token", reason)
            counts[key] = counts.get(key, 0) + 1
        return [{"reason": reason, "rows": rows} for reason, rows in sorted(counts.items(), key=lambda item: -item[1])]


def _record(columns: list[str], values: Iterable[Any]) -> dict[str, Any]:
    record = {}
    for column, value in zip(columns, values, strict=True):
        if isinstance(value, (bytes, bytearray)):
            raise ValueError(f"{column} is binary data, not text")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # SQLite and MySQL may hand back numeric ids and expiry times
        record[_RENAMED.get(column, column)] = value
    return record


def _text_lines(path: Path, encoding: str) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, error) for each line, decoded on its own: one line in another encoding
    is one rejected line, not a failed import."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode(encoding), None
            except UnicodeDecodeError:
                yield number, None, (f"not valid {encoding} text (the SDK's FileStore writes the platform's "
                                     "encoding, such as cp1252 on Windows: pass --encoding)")


def read_filestore(path: Path, encoding: str = "utf-8") -> Iterator[Row]:
    """The SDK's FileStore CSV: a 10-column header, or the 9-column one older SDKs wrote. Its rows
    are one line each (the SDK writes no line breaks inside values)."""
    header: list[str] | None = None
    for number, text, error in _text_lines(path, encoding):
        if error is not None:
            if header is None:
                raise SourceError(f"the first line of the file is {error}")
            yield Row(number, error=error)
            continue
        try:
            values = next(csv.reader([text or ""]), [])
        except csv.Error as failure:  # a field over csv's 131,072-character limit, a stray quote
            yield Row(number, error=f"not a valid CSV line ({str(failure).split(':')[0]})")
            continue
        if header is None:
            header = [name.strip().lower() for name in values]
            if header not in (FILESTORE_COLUMNS, FILESTORE_COLUMNS[:9]):
                raise SourceError(f"not a FileStore CSV: its header is not {','.join(FILESTORE_COLUMNS)}")
            continue
        if not values:
            continue
        if len(values) != len(header):
            yield Row(number, error=f"expected {len(header)} columns, found {len(values)}")
            continue
        yield Row(number, _record(header, values))


def read_sql(connection: Any, table: str,
             decode: Callable[[list[str], Iterable[Any]], Iterable[Any]] | None = None) -> Iterator[Row]:
    """Rows of a Kaizen/DBStore ``oauthtoken`` table from any DB-API connection; line = row number.
    ``decode`` turns raw values into text first (SQLite read as bytes)."""
    if not _TABLE_NAME.fullmatch(table):
        raise SourceError("a table name has only letters, digits and underscores")
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT {', '.join(SQL_COLUMNS)} FROM {table} ORDER BY id")
    except Exception as error:
        raise SourceError(f"cannot read table {table}: {error}") from None
    for number, values in enumerate(cursor, start=1):
        try:
            yield Row(number, _record(SQL_COLUMNS, decode(SQL_COLUMNS, values) if decode else values))
        except ValueError as error:
            yield Row(number, error=str(error))


def _lenient_text(data: bytes) -> str:
    """SQLite text that is not valid UTF-8 keeps its bad bytes as surrogates, for ``_checked``."""
    return data.decode("utf-8", "surrogateescape")


def _checked(columns: list[str], values: Iterable[Any]) -> list[Any]:
    """Each SQLite value, refused when it was not valid UTF-8: the reason names the column only."""
    values = list(values)
    for column, value in zip(columns, values, strict=True):
        if isinstance(value, str) and _UNDECODABLE.search(value):
            raise ValueError(f"{column} is not valid UTF-8 text")
    return values


def read_sqlite(path: Path, table: str = "oauthtoken") -> Iterator[Row]:
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    # A URI made from the path (so ? and # in a file name are part of the name), read-only.
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    connection.text_factory = _lenient_text  # one bad value must not end the import: checked per row
    try:
        yield from read_sql(connection, table, decode=_checked)
    except sqlite3.DatabaseError as error:
        raise SourceError(f"cannot read {path.name}: {error}") from None
    finally:
        connection.close()


def read_mysql(url: str) -> Iterator[Row]:
    """``mysql://user:password@host:3306/database?table=oauthtoken`` (the SDK's DBStore defaults)."""
    try:
        import mysql.connector
    except ImportError:
        raise SourceError("the MySQL driver is missing: pip install 'zoho-mongo-store[mysql]'") from None
    parts = urlparse(url)
    try:
        port = parts.port or 3306
        if parts.scheme != "mysql" or "@" in url.partition("://")[2][len(parts.netloc):]:
            raise ValueError
    except ValueError:  # never repeat the URL: a piece of it may be the password
        raise SourceError(f"invalid MySQL URL: {uri_problem(url, ('mysql',))}") from None
    table = parse_qs(parts.query).get("table", ["oauthtoken"])[0]
    try:
        connection = mysql.connector.connect(
            host=parts.hostname or "localhost", port=port, user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""), database=unquote(parts.path.lstrip("/")) or "zohooauth",
            connection_timeout=10,
        )
    except Exception as error:
        raise SourceError(f"cannot connect to MySQL at {parts.hostname}:{port}: {type(error).__name__}") from None
    try:
        yield from read_sql(connection, table)
    finally:
        connection.close()


def read_export(path: Path) -> Iterator[Row]:
    """Our own JSON-lines export. A masked export holds no secrets, so it cannot be imported."""
    for number, line, problem in _text_lines(path, "utf-8"):
        if problem is not None or line is None:
            yield Row(number, error="not valid UTF-8 text")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield Row(number, error=f"not JSON ({error.msg})")
            continue
        except RecursionError:
            yield Row(number, error="not a token record (nested too deeply)")
            continue
        if not isinstance(record, dict):
            yield Row(number, error="not a JSON object")
        elif any(is_masked(record.get(name)) for name in RECORD_FIELDS):
            named = record.get("id")
            yield Row(number, error="secrets are masked: export again with --include-secrets",
                      id=named if isinstance(named, str) else None)
        else:
            yield Row(number, record)


def sniff(path: Path) -> str | None:
    """The kind of a file by its first bytes: the SDK's FileStore writes ``sdk_tokens.txt``."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(256)
    except OSError:
        return None
    if start.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    first_line = start.split(b"\n", 1)[0].strip().lower()
    if first_line.startswith(b"id,user_name,client_id,client_secret"):
        return "filestore"
    return "export" if start.lstrip().startswith(b"{") else None


def source_kind(source: str, kind: str | None = None) -> str:
    """``kind``, else what ``source`` is by its name or first bytes: filestore, sqlite, mysql or export."""
    if kind is None:
        suffix = Path(source).suffix.lower()
        kind = ("mysql" if source.startswith("mysql://") else "filestore" if suffix == ".csv"
                else "sqlite" if suffix in (".db", ".sqlite", ".sqlite3") else "export" if suffix in (".jsonl", ".json")
                else sniff(Path(source)))
        if kind is None:
            raise SourceError(f"cannot tell what {source} is: give --from filestore|sqlite|mysql|export")
    return kind


def open_source(source: str, kind: str | None = None, table: str = "oauthtoken",
                encoding: str = "utf-8") -> Iterator[Row]:
    """Rows from ``source``; ``kind`` is filestore, sqlite, mysql or export, else guessed.
    ``encoding`` is the FileStore CSV's text encoding."""
    kind = source_kind(source, kind)
    if kind == "mysql":
        return read_mysql(source)
    path = Path(source)
    if not path.is_file():
        raise SourceError(f"{source} does not exist")
    if kind == "filestore":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise SourceError(f"unknown text encoding {encoding!r}") from None
        return read_filestore(path, encoding)
    return read_sqlite(path, table) if kind == "sqlite" else read_export(path)


def dry_run_conflict(store: MongoTokenStore, fields: dict[str, Any], own: str | None,
                     claimed: dict[tuple[str, str], str]) -> tuple[str, str] | None:
    """What a real save would collide with: a stored token, or a row this dry run would write."""
    for key in ("user_name", "refresh_token"):
        holder = claimed.get((key, fields.get(key, "")))
        if holder is not None and holder != own:
            return holder, key
    return store.call("check for conflicts", lambda: store.conflict(fields, own))


def import_rows(store: MongoTokenStore, rows: Iterable[Row], dry_run: bool = False, who: str | None = None,
                source: str = "an import") -> Report:
    """Save each row through ``store.restore_token``; a stored token equal to the row is skipped. A dry
    run reads only, and applies the same matching and conflict rules, also between its own rows.
    Each token inserted or updated gets an "imported" event in its history (by ``who``, from
    ``source``: a kind, never a URL), written a batch at a time; a failed event write is a warning."""
    report = Report()
    claimed: dict[tuple[str, str], str] = {}  # (field, value) -> id, for the rows a dry run would write
    pending: list[dict[str, Any]] = []
    actor = who or events.sdk_actor()

    def flush() -> None:
        if pending and store.events is not None:
            events.record_quietly(store.events, pending, store.socket_timeout)
        pending.clear()

    try:
        for row in rows:
            if row.error is not None or row.record is None:
                report.rejected.append((row.line, row.error or "empty row"))
                if row.id is not None:
                    report.rejected_ids[row.line] = row.id
                continue
            named = row.record.get("id")
            if isinstance(named, str) and named:
                report.rejected_ids[row.line] = named  # (kept only if the row is rejected below)
            try:
                token = record_to_token(row.record)
                fields = token_fields(token)
                stored = store.find_document(token)
                if stored is not None and all(stored.get(key) == value for key, value in fields.items()):
                    report.skipped += 1
                    report.rejected_ids.pop(row.line, None)
                    continue
                if dry_run:
                    own = (stored or {}).get("_id") or fields.get("_id")
                    clash = dry_run_conflict(store, fields, own, claimed)
                    if clash is not None:
                        report.rejected.append((row.line, f"could not save the token: another stored token "
                                                          f"({clash[0]}) already has this {clash[1]}"))
                        continue
                    for key in ("user_name", "refresh_token"):
                        if key in fields:
                            claimed[(key, fields[key])] = own or f"line {row.line}"
                else:
                    store.restore_token(token)
            except (SDKException, ValueError) as error:
                cause = getattr(error, "cause", None)
                if isinstance(cause, PyMongoError) and not isinstance(cause, OperationFailure):
                    raise  # the server is gone: stop, rather than reject every remaining row
                report.rejected.append((row.line, sentence(error)))
                continue
            report.rejected_ids.pop(row.line, None)
            if stored is None:
                report.inserted += 1
            else:
                report.updated += 1
            if not dry_run and token.get_id():
                report.imported.append(token.get_id())
                name = fields.get("user_name")
                pending.append(events.entry(token.get_id(), name if isinstance(name, str) else None, "imported",
                                            f"imported from {source} ({'inserted' if stored is None else 'updated'})",
                                            actor))
                if len(pending) >= 1000:
                    flush()
    finally:
        flush()  # what was imported before a failure is in the history too
    return report
