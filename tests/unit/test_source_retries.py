"""A lost source connection is retried with backoff; anything else fails at once.

The real thing (a backend terminated mid-stream, a server stopped) is in
``tests/faults/test_fault_injection.py``; here the decisions: which errors mean "the
connection was lost", how often and how long we wait, what the final error says.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
import pytest

from airflow_synth.core.errors import ConnectionConfigError, SourceConnectionLostError
from airflow_synth.core.extract.retry import (
    Backoff,
    is_connection_lost,
    lost_connection_error,
    with_source_retries,
)

pytestmark = pytest.mark.unit


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError(
            "consuming input failed: server closed the connection unexpectedly"
        ),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.ConnectionFailure("connection failure"),
        psycopg.OperationalError("the connection is closed"),
        # what ADBC raises when its COPY loses the server mid-stream
        pa.ArrowInvalid(
            "[libpq] Execution error [PG]: FATAL:  terminating connection due to "
            "administrator command"
        ),
        # a reconnect that finds the server down (postgres_connection wraps it)
        _wrapped(
            psycopg.OperationalError(
                'connection to server at "127.0.0.1" failed: Connection refused'
            ),
            ConnectionConfigError("Cannot connect to Postgres through connection 'src'"),
        ),
    ],
    ids=["closed", "terminated", "starting", "class08", "closed_conn", "adbc", "refused"],
)
def test_a_lost_connection_is_recognised(error: BaseException) -> None:
    assert is_connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.SyntaxError('syntax error at or near "SELEC"'),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.UndefinedTable('relation "nope" does not exist'),
        psycopg.errors.IdleInTransactionSessionTimeout(
            "terminating connection due to idle-in-transaction timeout"
        ),
        psycopg.OperationalError(
            'connection failed: FATAL:  password authentication failed for user "u"'
        ),
        psycopg.OperationalError('connection failed: FATAL:  database "nope" does not exist'),
        ValueError("a bug"),
        pa.ArrowInvalid("column 'x' holds an infinite date"),
    ],
    ids=["syntax", "timeout", "table", "idle", "password", "database", "bug", "data"],
)
def test_sql_errors_timeouts_and_settings_are_not_lost_connections(error: BaseException) -> None:
    assert not is_connection_lost(error)


class Connections:
    """The source: connection 0 is the caller's; each reconnect makes the next one."""

    def __init__(self, refuse: int = 0) -> None:
        self.made: list[dict[str, Any]] = [{"id": 0, "closed": False}]
        self.refuse = refuse

    def reconnect(self) -> Any:
        if self.refuse:
            self.refuse -= 1
            raise psycopg.OperationalError("connection to server failed: Connection refused")
        conn = {"id": len(self.made), "closed": False}
        self.made.append(conn)
        return _Conn(conn)


class _Conn:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def close(self) -> None:
        self.state["closed"] = True


def _lost(n: int) -> Any:
    """Work that loses its connection the first ``n`` times."""
    calls: list[Any] = []

    def work(conn: Any) -> str:
        calls.append(conn)
        if len(calls) <= n:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return "staged"

    work.calls = calls  # type: ignore[attr-defined]
    return work


def test_lost_twice_then_extracted_on_a_new_connection() -> None:
    source, slept = Connections(), []
    work = _lost(2)
    result = with_source_retries(
        work, "conn0", source.reconnect, sql_name="q.sql", connection_id="src", sleep=slept.append
    )
    assert result == "staged"
    assert slept == [1.0, 2.0]  # exponential backoff
    assert work.calls[0] == "conn0" and len(work.calls) == 3
    assert len(source.made) == 3
    assert all(c["closed"] for c in source.made[1:])  # what it opened, it closed


def test_every_attempt_lost_ends_in_a_transient_error_naming_file_and_connection() -> None:
    source, slept = Connections(), []
    with pytest.raises(SourceConnectionLostError) as raised:
        with_source_retries(
            _lost(99),
            "conn0",
            source.reconnect,
            sql_name="sql/features/users.sql",
            connection_id="userbookings_db",
            backoff=Backoff(attempts=3, first=0.5),
            sleep=slept.append,
        )
    text = str(raised.value)
    assert slept == [0.5, 1.0]
    assert "Extracting sql/features/users.sql through connection 'userbookings_db'" in text
    assert "server closed the connection unexpectedly" in text
    assert "3 attempts" in text
    assert "transient: the source connection was lost; Airflow task retries are safe" in text
    assert raised.value.transient and raised.value.sql_name == "sql/features/users.sql"


def test_a_reconnect_that_is_refused_counts_as_an_attempt() -> None:
    source, slept = Connections(refuse=1), []
    result = with_source_retries(
        _lost(1), "conn0", source.reconnect, sql_name="q.sql", sleep=slept.append
    )
    assert result == "staged" and slept == [1.0, 2.0]


@pytest.mark.parametrize(
    "error",
    [psycopg.errors.SyntaxError("syntax error"), psycopg.errors.QueryCanceled("timeout")],
    ids=["sql", "statement_timeout"],
)
def test_other_errors_fail_at_once(error: Exception) -> None:
    slept: list[float] = []

    def work(conn: Any) -> None:
        raise error

    with pytest.raises(type(error)):
        with_source_retries(
            work, "conn0", Connections().reconnect, sql_name="q.sql", sleep=slept.append
        )
    assert slept == []


def test_the_table_being_read_is_named_over_the_default() -> None:
    lost = lost_connection_error(
        "sql/features/sessions.sql", None, ConnectionError("x"), attempts=1, seconds=0
    )

    def work(conn: Any) -> None:
        raise lost

    with pytest.raises(SourceConnectionLostError, match="Extracting sql/features/sessions.sql"):
        with_source_retries(
            work,
            "conn0",
            Connections().reconnect,
            sql_name="the tables of bookings",
            backoff=Backoff(attempts=2),
            sleep=lambda _: None,
        )


def test_backoff_is_capped() -> None:
    assert [Backoff(first=1, factor=2, most=5).delay(n) for n in (1, 2, 3, 4, 5)] == [
        1,
        2,
        4,
        5,
        5,
    ]
