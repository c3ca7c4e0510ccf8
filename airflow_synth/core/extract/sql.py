"""Finding, reading and fingerprinting feature SQL files.

The SQL file is the source of truth for *what* is extracted, so its exact text is hashed
into the manifest: two published datasets with the same hash came from the same query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from airflow_synth.core.errors import SqlFileError


def resolve_sql_file(sql_file: str | Path, search_dirs: Iterable[str | Path] = ()) -> Path:
    """Return the path of ``sql_file``, looking in ``search_dirs`` for relative names.

    Raises :class:`SqlFileError` naming every place that was tried, because "file not
    found" without the search path is the most common confusion in templated DAGs.
    """
    candidate = Path(sql_file)
    tried: list[Path] = []
    if candidate.is_absolute():
        tried.append(candidate)
    else:
        tried.extend(Path(d) / candidate for d in search_dirs if d)
        tried.append(Path.cwd() / candidate)
    for path in tried:
        if path.is_file():
            return path.resolve()
    places = "\n".join(f"  - {p}" for p in tried)
    raise SqlFileError(
        f"SQL file {str(sql_file)!r} not found. Looked in:\n{places}\n"
        "Fix the sql_file argument, or put the file in one of these folders "
        "(set SYNTH_SQL_DIR or the DAG's template_searchpath to add a folder)."
    )


def read_sql_file(path: str | Path) -> str:
    """Read a SQL file, refusing an empty one (which would otherwise fail obscurely)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a latin-1 file fails here, not in the DB
        raise SqlFileError(f"Cannot read SQL file {path} (as UTF-8 text): {exc}") from exc
    if not strip_sql_comments(text).strip():
        raise SqlFileError(f"SQL file {path} is empty: write the SELECT that extracts the table.")
    return text


def strip_sql_comments(text: str) -> str:
    """Remove ``--`` line comments (enough to tell an empty file from a real query)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def sql_hash(text: str) -> str:
    """Stable fingerprint of a query's text (sha256, hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def error_line(sql: str, position: int | None) -> str:
    """Say where a 1-based character ``position`` (as Postgres reports it) falls in ``sql``."""
    if not position:
        return ""
    before = sql[: position - 1]
    line_no = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    lines = sql.splitlines()
    text = lines[line_no - 1].strip() if line_no <= len(lines) else ""
    return f"line {line_no}, column {column}: {text}"
