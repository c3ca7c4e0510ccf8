"""The extract's guard on the source: read-only transactions with a statement timeout and
an idle-in-transaction timeout.

Every transaction the extract opens on the source (the ``DECLARE`` that checks and
describes the query, the row path's reads) starts with :func:`guard_transaction`; the
ADBC connection that reads the rows gets the same settings as connection options
(:func:`adbc_options`). So a feature query can never change the source, a query that runs
away is cancelled by the server, and a transaction left open by a task that hangs or dies
does not hold locks (and block ``VACUUM``) for ever.

The timeouts (milliseconds, ``0`` = no limit) are taken from where the source's owner set
them, else ours:

* set for this connection or role (the Airflow Postgres connection's extra
  ``{"options": "-c statement_timeout=4h"}``, ``ALTER ROLE ... SET``, ``ALTER DATABASE
  ... SET``): kept as they are, ``0`` included (no limit, deliberately);
* otherwise (PostgreSQL's default or the server's configuration file): the stricter of the
  server's value and ours (:data:`DEFAULT_STATEMENT_TIMEOUT_MS`, 1 h;
  :data:`DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS`, 10 min), a server value of ``0`` meaning
  none.

The settings are made with ``set_config(..., true)``: they last for the transaction only,
so the connection is left as it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A statement (the rows' COPY, a FETCH) runs at most this long unless the source says.
DEFAULT_STATEMENT_TIMEOUT_MS = 3_600_000
#: A transaction sits idle at most this long unless the source says.
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 600_000
#: The settings guarded, with their defaults.
DEFAULTS = {
    "statement_timeout": DEFAULT_STATEMENT_TIMEOUT_MS,
    "idle_in_transaction_session_timeout": DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
}
#: Where a setting counts as chosen for this connection (pg_settings.source): kept as is.
EXPLICIT_SOURCES = ("client", "user", "database", "database user", "session")
#: The first statement of every extract transaction: going read-only is allowed at any
#: point of a transaction, so it works on psycopg 2 and 3 alike.
READ_ONLY = "SET TRANSACTION READ ONLY"
#: The timeouts for the rest of the transaction, decided by the server from pg_settings
#: (the defaults are bound parameters); returns (name, milliseconds) per setting.
TIMEOUTS = """
SELECT name, set_config(name, value, true), value::bigint
FROM (
    SELECT s.name,
           CASE
               WHEN s.source = ANY(%(explicit)s) THEN s.setting
               WHEN s.setting::bigint = 0 THEN d.ms::text
               ELSE least(s.setting::bigint, d.ms)::text
           END AS value
    FROM pg_catalog.pg_settings AS s
    JOIN (VALUES ('statement_timeout', %(statement)s::bigint),
                 ('idle_in_transaction_session_timeout', %(idle)s::bigint)) AS d (name, ms)
      ON d.name = s.name
) AS chosen
ORDER BY name
"""


def guard_transaction(cursor: Any, defaults: Mapping[str, int] | None = None) -> dict[str, int]:
    """Make the cursor's transaction read-only and give it the timeouts (see the module
    doc); the milliseconds chosen per setting, for :func:`adbc_options`.

    Call it first in the transaction. ``defaults`` overrides :data:`DEFAULTS` (tests).
    """
    chosen = {**DEFAULTS, **(defaults or {})}
    cursor.execute(READ_ONLY)
    cursor.execute(
        TIMEOUTS,
        {
            "explicit": list(EXPLICIT_SOURCES),
            "statement": int(chosen["statement_timeout"]),
            "idle": int(chosen["idle_in_transaction_session_timeout"]),
        },
    )
    return {str(name): int(ms) for name, _, ms in cursor.fetchall()}


def adbc_options(settings: Mapping[str, int]) -> str:
    """The ``-c name=value`` options giving the ADBC connection the settings chosen by
    :func:`guard_transaction` (milliseconds; later options win over the source's own)."""
    return " ".join(f"-c {name}={int(ms)}" for name, ms in sorted(settings.items()))


__all__ = [
    "DEFAULTS",
    "DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "DEFAULT_STATEMENT_TIMEOUT_MS",
    "EXPLICIT_SOURCES",
    "READ_ONLY",
    "TIMEOUTS",
    "adbc_options",
    "guard_transaction",
]
