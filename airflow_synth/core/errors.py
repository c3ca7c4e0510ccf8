"""Errors that tell the user what to fix.

Every error raised on purpose by airflow-synth derives from :class:`SynthError`, and its
message names the thing to fix (a file, a column, a connection id, a parameter) and what
to do about it. Operators let these propagate so the Airflow task fails with that text.
"""

from __future__ import annotations


class SynthError(Exception):
    """Base class of all errors airflow-synth raises deliberately."""


class SqlFileError(SynthError):
    """The SQL file is missing, unreadable or empty."""


class ExtractError(SynthError):
    """The extract query failed in the database."""


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
    """The synthetic table missed a fidelity or privacy threshold; nothing is published."""


class PublishError(SynthError):
    """Publishing to the object store failed; the dataset stays unpublished."""
