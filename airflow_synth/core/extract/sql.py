"""Finding, reading, checking and fingerprinting feature SQL files.

The SQL file is the source of truth for *what* is extracted, so its exact text is hashed
into the manifest: two published datasets with the same hash came from the same query.

A single table's SQL file is rendered with Jinja before it runs, and what a template
renders becomes SQL text. So a template may read only values Airflow computes itself (the
run's dates, ``macros``) and the DAG's own ``user_defined_macros``
(:data:`TRUSTED_TEMPLATE_NAMES`); anything a user can type (the Trigger form's
``params``, ``dag_run.conf``, Variables, XComs) is refused by :func:`check_sql_template`
with the fix: a ``%(name)s`` placeholder in the SQL and the value in the task's
``parameters``, bound by the driver, never formatted into the SQL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


#: What a SQL file's template may read: values Airflow computes for the run (dates and
#: timestamps in fixed formats) and its ``macros`` module. ``run_id`` is not among them (it
#: can be given when a run is triggered), nor ``params``, ``dag_run``, ``var``, ``conn``,
#: ``ti``/``task_instance``, ``task``, ``dag`` (they reach user input).
TRUSTED_TEMPLATE_NAMES = frozenset(
    {
        "ds",
        "ds_nodash",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
        "prev_start_date_success",
        "prev_end_date_success",
        "macros",
    }
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_sql_template(text: str, sql_name: str, trusted: Iterable[str] = ()) -> str:
    """``text`` unchanged when its Jinja template reads only trusted names
    (:data:`TRUSTED_TEMPLATE_NAMES`, plus ``trusted``: the DAG's ``user_defined_macros``);
    otherwise :class:`SqlFileError` naming the file, what it reads and the fix.

    A template that includes, imports or extends another template is refused too: the
    extract checks (and hashes) one file.
    """
    if "{" not in text:  # no Jinja at all (``{{``, ``{%``, ``{#`` all need one)
        return text
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.meta import find_undeclared_variables
    from jinja2.sandbox import SandboxedEnvironment

    try:
        tree = SandboxedEnvironment().parse(text)
    except TemplateSyntaxError as exc:
        raise SqlFileError(
            f"SQL file {sql_name} is not a valid Jinja template, at line {exc.lineno}: "
            f"{exc.message} Fix the file (a literal {{{{ in SQL is written {{{{ '{{{{' }}}})."
        ) from None
    pulled = sorted({type(n).__name__.lower() for n in tree.find_all(_PULLS_IN(nodes))})
    if pulled:
        raise SqlFileError(
            f"SQL file {sql_name} uses {{% {' / '.join(pulled)} %}}: a feature query is one "
            "file, checked and fingerprinted as it is. Write the SQL into the file."
        )
    allowed = TRUSTED_TEMPLATE_NAMES | set(trusted)
    untrusted = find_undeclared_variables(tree) - allowed
    if not untrusted:
        return text
    reads = _reads(tree, untrusted, nodes)
    name = _placeholder(reads[0])
    shown = ", ".join(f"{{{{ {expr} }}}}" for expr in reads)
    raise SqlFileError(
        f"SQL file {sql_name} reads {shown} in its Jinja template. What a template renders "
        "becomes SQL text, so a value typed into the Trigger form (or a run's conf) would "
        "run as SQL (SQL injection); the extract refuses it.\n"
        "Bind the value as a query parameter instead:\n"
        f"  in the SQL file:  ... = %({name})s\n"
        f'  on the extract:   parameters={{"{name}": "{{{{ {reads[0]} }}}}"}}\n'
        "(the operator's or extract_table's parameters, or the ESL config's; those values "
        "are bound by the database driver, never formatted into the SQL; no quotes around the "
        "placeholder, and a literal % in the SQL is written %% then). A SQL file's template "
        "may read only Airflow's own run values ({{ ds }}, {{ ts }}, "
        "{{ data_interval_start }}, {{ data_interval_end }}, {{ logical_date }}, ...), "
        "macros.* and the DAG's user_defined_macros."
    )


def _PULLS_IN(nodes: Any) -> tuple[type, ...]:  # noqa: N802 - a tuple of node classes
    return (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


def _reads(tree: Any, names: set[str], nodes: Any) -> list[str]:
    """The expressions rooted at ``names`` that ``tree`` reads (``params.since``,
    ``dag_run.conf['day']``), in the order they appear, each once."""
    found: list[str] = []

    def chain(node: Any) -> tuple[str, str] | None:
        if isinstance(node, nodes.Name):
            return node.name, node.name
        if isinstance(node, nodes.Getattr):
            inner = chain(node.node)
            return None if inner is None else (inner[0], f"{inner[1]}.{node.attr}")
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            inner = chain(node.node)
            return None if inner is None else (inner[0], f"{inner[1]}[{node.arg.value!r}]")
        return None

    def visit(node: Any) -> None:
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            got = chain(node)
            if got is not None and got[0] in names:
                if got[1] not in found:
                    found.append(got[1])
                return
        for child in node.iter_child_nodes():
            visit(child)

    visit(tree)
    return found or sorted(names)


def _placeholder(expression: str) -> str:
    """A parameter name for the value ``expression`` reads (its last identifier)."""
    parts = [p for p in _IDENTIFIER.findall(expression) if p not in ("params", "conf", "get")]
    return parts[-1] if parts else "value"
