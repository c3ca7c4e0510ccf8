"""A lost source connection is retried, with backoff, before the extract fails.

Extracting a table is idempotent: its Parquet file appears under its final name only once
complete (:func:`~airflow_synth.core.extract.stream.stream_query_to_parquet`) and a failed
extract removes what it staged, so reading the table again from the start on a fresh
connection is always safe. :func:`with_source_retries` does that when the connection was
lost (the server restarted or shut down, the backend was terminated, the network cut), a
few times with exponential backoff, and then fails with a
:class:`~airflow_synth.core.errors.SourceConnectionLostError` that names the SQL file and
the connection and says it is transient. SQL errors, timeouts and refused logins are not
retried: trying again would fail the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_synth.core.errors import SourceConnectionLostError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: SQLSTATEs of a lost connection: class 08 (connection exception), 57P01 admin_shutdown
#: (pg_terminate_backend, a fast shutdown), 57P02 crash_shutdown, 57P03 cannot_connect_now
#: (starting up, shutting down, in recovery).
_LOST_STATES = {"57P01", "57P02", "57P03"}
#: What libpq, psycopg and the ADBC driver say when the connection is gone; the ADBC
#: driver reports a connection lost mid-stream as a bare ``ArrowInvalid`` with this text.
_LOST_TEXT = (
    "terminating connection due to administrator command",
    "terminating connection due to unexpected postmaster exit",
    "terminating connection because of crash of another server process",
    "server closed the connection unexpectedly",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "no connection to the server",
    "the connection is closed",
    "connection already closed",
    "lost synchronization with server",
    "ssl syscall error",
    "ssl connection has been closed unexpectedly",
    "connection refused",
    "connection reset by peer",
    "broken pipe",
    "timeout expired",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
)
#: Refusals that look like connection failures but are settings: never retried.
_SETTINGS_TEXT = (
    "password authentication failed",
    "no pg_hba.conf entry",
    'database "',
    'role "',
    "permission denied",
)


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently a lost connection is retried: ``attempts`` tries in
    all, waiting ``first`` seconds after the first failure, ``factor`` times longer after
    each next one, at most ``most`` seconds (default 1, 2, 4 s: 7 s over 4 tries)."""

    attempts: int = 4
    first: float = 1.0
    factor: float = 2.0
    most: float = 30.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure (1-based)."""
        return min(self.most, self.first * self.factor ** (failures - 1))


DEFAULT_BACKOFF = Backoff()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (a few levels)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if state is None:
        state = getattr(getattr(exc, "diag", None), "sqlstate", None)
    return str(state) if state else None


def is_connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the source connection was lost.

    By SQLSTATE where the server sent one (class 08, 57P01-57P03), else by the driver's
    text; an error the server reported about the query (a SQL error, a statement
    timeout, a refused login) is not a lost connection.
    """
    for error in _chain(exc):
        if isinstance(error, SourceConnectionLostError):
            return True
        state = _sqlstate(error)
        if state is not None:
            return state.startswith("08") or state in _LOST_STATES
        text = str(error).lower()
        if any(marker in text for marker in _SETTINGS_TEXT):
            return False
        if any(marker in text for marker in _LOST_TEXT):
            return True
    return False


def lost_reason(exc: BaseException) -> str:
    """A short, value-free account of how the connection was lost (for the message)."""
    for error in _chain(exc):
        text = str(error).lower()
        for marker in _LOST_TEXT:
            if marker in text:
                return marker
    state = next((s for s in map(_sqlstate, _chain(exc)) if s), None)
    return f"SQLSTATE {state}" if state else type(exc).__name__


def lost_connection_error(
    sql_name: str, connection_id: str | None, exc: BaseException, *, attempts: int, seconds: float
) -> SourceConnectionLostError:
    """The error a lost connection ends in, naming the SQL file and the connection."""
    through = f" through connection {connection_id!r}" if connection_id else ""
    tries = (
        f"{attempts} attempts over {seconds:.0f} s, with backoff" if attempts > 1 else "no retry"
    )
    return SourceConnectionLostError(
        f"Extracting {sql_name}{through} failed: the connection to the source database was "
        f"lost ({lost_reason(exc)}; {tries}).\n"
        "transient: the source connection was lost; Airflow task retries are safe (nothing "
        "was staged: a table's file is kept only once complete). If it keeps failing, check "
        "that the database server is up and reachable from the worker.",
        sql_name,
    )


def with_source_retries(
    work: Callable[[Any], T],
    conn: Any,
    reconnect: Callable[[], Any],
    *,
    sql_name: str,
    connection_id: str | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work(conn)``, run again on a fresh connection from ``reconnect()`` while the
    connection is lost (see :func:`is_connection_lost`), ``backoff.attempts`` times in all.

    ``work`` must be idempotent (an extract is: see the module doc). Any other error is
    raised at once. When every attempt lost its connection (reconnecting included), a
    :class:`SourceConnectionLostError` names ``sql_name`` (or the table the last attempt
    was reading) and ``connection_id``. Connections made here are closed here; ``conn``
    stays the caller's.
    """
    started = time.monotonic()
    current: Any = conn
    opened: list[Any] = []
    last: BaseException | None = None
    try:
        for attempt in range(1, backoff.attempts + 1):
            try:
                if current is None:
                    current = reconnect()
                    opened.append(current)
                return work(current)
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                last, current = exc, None
                if attempt == backoff.attempts:
                    break
                wait = backoff.delay(attempt)
                log.warning(
                    "The source connection %s was lost while extracting %s (%s; attempt %d of "
                    "%d): retrying on a new connection in %.0f s",
                    repr(connection_id) if connection_id else "",
                    _named(exc, sql_name),
                    lost_reason(exc),
                    attempt,
                    backoff.attempts,
                    wait,
                )
                sleep(wait)
    finally:
        for extra in opened:
            with suppress(Exception):
                extra.close()
    assert last is not None
    raise lost_connection_error(
        _named(last, sql_name),
        connection_id,
        last,
        attempts=backoff.attempts,
        seconds=time.monotonic() - started,
    ) from last


def _named(exc: BaseException, default: str) -> str:
    """The SQL file the failed attempt was reading, when the error says; else ``default``."""
    for error in _chain(exc):
        name = getattr(error, "sql_name", None)
        if isinstance(name, str) and name:
            return name
    return default
