"""Errors that tell the user what to fix.

Every error raised on purpose by airflow-synth derives from :class:`SynthError`, and its
message names the thing to fix (a file, a column, a connection id, a parameter) and what
to do about it. Operators let these propagate so the Airflow task fails with that text.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class SynthError(Exception):
    """Base class of all errors airflow-synth raises deliberately."""


class TransientError(SynthError):
    """Something outside the run failed for a while (a lost database connection, an S3
    server down or throttling) and was retried with backoff before giving up.

    The message names what failed (SQL file, connection id, bucket) and says that it is
    transient: every step is idempotent, so an Airflow task retry is safe.
    """

    transient = True


class SqlFileError(SynthError):
    """The SQL file is missing, unreadable or empty."""


class ExtractError(SynthError):
    """The extract query failed in the database."""


class SourceConnectionLostError(TransientError, ExtractError):
    """The connection to the source database was lost (server restarted, backend
    terminated, network cut); ``sql_name`` is the query that was being read."""

    def __init__(self, message: str, sql_name: str | None = None) -> None:
        super().__init__(message)
        self.sql_name = sql_name


class EmptyExtractError(ExtractError):
    """The extract query returned no rows, so there is nothing to learn from."""


class ContractError(SynthError):
    """The schema contract is invalid or disagrees with the query's columns."""


class DataError(SynthError):
    """The extracted data holds values the synthesizer cannot model (e.g. year 9999)."""


class SynthesizerConfigError(SynthError):
    """Unknown synthesizer name or a bad synthesizer parameter."""


class ConnectionConfigError(SynthError):
    """An Airflow connection is missing or of the wrong kind."""


class QualityGateError(SynthError):
    """The synthetic table missed a fidelity or privacy threshold; nothing is published.

    ``reports`` maps report file names (``quality.json``, ``report.html``, for multi-table
    ``reports/<table>/report.html``...) to the local files that explain the failure, so
    the Airflow layer can quarantine them where the user can read why (never data or a
    model).
    """

    def __init__(self, message: str, reports: Mapping[str, Path] | None = None) -> None:
        super().__init__(message)
        self.reports: dict[str, Path] = {k: Path(v) for k, v in (reports or {}).items()}


class PublishError(SynthError):
    """Publishing to the object store failed; the dataset stays unpublished."""


class StorageUnavailableError(TransientError, ConnectionConfigError):
    """The S3 server could not be reached, timed out or throttled (5xx, SlowDown) after
    botocore's retries: an outage, not the connection's settings. (A subclass of
    :class:`ConnectionConfigError` so code that lets named store errors through keeps
    doing so.)"""


class DiskFullError(SynthError):
    """A task's local folder (staging or workspace) ran out of space; ``path`` names it."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
