"""Keep real cell values out of logs and error messages that come from SDV and its helpers.

Task logs are readable by far more people than the source database, yet the libraries we
train with write real values there as a matter of course:

- ``sdv.metadata`` logs a "Detected metadata" dump on every detection: every category
  label, the real min/max of every numeric and date column (the multi-table path dumps
  every training customer's name when a name column is detected as categorical);
- ``rdt`` logs its transformer config and lists of "unseen" category values, and warns
  with examples of categories;
- SDV's errors quote the offending values (``Key column 'id' contains repeating values:
  [125126, ...]``), and a library traceback printed by Airflow repeats them.

This module is the one place that stops that (no Airflow import):

- :func:`install_log_redaction` puts a :class:`LibraryValueFilter` on the library loggers
  (idempotent; call it before touching SDV). The filter replaces the metadata dump with a
  one-line summary of sdtypes, drops JSON/config dumps and library tracebacks, and withholds
  bracketed lists in every other library record.
- :func:`library_errors` wraps a library call: it installs the filter, re-logs library
  warnings with their values withheld, and re-raises any exception that is not already a
  :class:`~airflow_synth.core.errors.SynthError` as :class:`LibraryError`, whose message
  names the step and keeps column/table names it recognises but carries no value, raised
  ``from None`` so the original (value-quoting) exception is not printed with it.
- :func:`scrub_message` is the pure text scrubber both use.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow_synth.core.errors import DataError, SynthError

log = logging.getLogger(__name__)

#: Logger name roots of the libraries that see real rows. SDV's usage-event loggers
#: (``SingleTableSynthesizer`` ...) are top-level names, not under ``sdv``.
LIBRARY_LOGGER_ROOTS = (
    "sdv",
    "rdt",
    "copulas",
    "sdmetrics",
    "ctgan",
    "deepecho",
    "SingleTableSynthesizer",
    "MultiTableSynthesizer",
    "Metadata",
    "SingleTableMetadata",
)
#: Loggers known to write values, created here if the library is not imported yet, so the
#: filter is on them whatever the import order (a filter only sees records logged on the
#: logger it is attached to, not those propagated from children).
KNOWN_VALUE_LOGGERS = (
    "sdv.metadata.metadata",
    "sdv.metadata._single_table",
    "sdv.multi_table.base",
    "sdv.multi_table.hma",
    "sdv.single_table.base",
    "sdv.data_processing.data_processor",
    "sdv.sampling.independent_sampler",
    "sdv.sampling.hierarchical_sampler",
    "rdt.hyper_transformer",
    "rdt.transformers.ordinal",
    "rdt.transformers.categorical",
    "rdt.transformers.null",
    "rdt.transformers.id",
    "sdmetrics.multi_table.statistical.constraint_adherence",
)

WITHHELD = "<withheld>"
_MAX_MESSAGE = 600
_QUOTED = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"|`([^`\n]*)`")
#: Innermost bracket groups; applied repeatedly, so nested lists collapse from inside out.
_BRACKETS = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}")
_PARENS = re.compile(r"\([^()]*\)")
_LISTY = re.compile(r"[\[\]{}(),]")
#: Numbers, dates and times standing alone (not part of a word such as ``col_1``).
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d_]*(?:[.,:/\-T ]\d+)*(?:[eE][-+]?\d+)?(?![\w])")
#: Placeholders start and end with letters, so ``_NUMBER`` never matches their index.
_SLOT = "\x00Q{}Z\x00"
_SLOT_RE = re.compile("\x00Q(\\d+)Z\x00")


class LibraryError(DataError):
    """A library (SDV, rdt, copulas, sdmetrics) failed; its message had values withheld.

    A :class:`DataError`, because a library failing on our inputs almost always means the
    data holds something the synthesizer cannot model; the message says which step and,
    where the library named one we know, which column.
    """

    def __init__(self, message: str, *, library: str, error_type: str) -> None:
        super().__init__(message)
        self.library = library
        self.error_type = error_type


def scrub_message(
    text: str,
    names: Iterable[str] = (),
    *,
    keep_quoted: bool = False,
    keep_numbers: bool = False,
) -> str:
    """``text`` with everything that could be a real value replaced by ``<withheld>``.

    Always removed: bracketed lists and dicts, and parenthesised groups that hold a comma
    or a quote other than a known name (rdt lists categories as ``('a', 'b')``). Quoted
    strings survive only when they are one of ``names`` (the column and table names the
    user needs to fix anything) or with ``keep_quoted``; numbers, dates and times only with
    ``keep_numbers``.
    Libraries quote the column they mean, so a known name survives; an unknown quoted word
    may be a category label, so in an error message it does not.
    """
    known = {str(name) for name in names}
    slots: list[tuple[str, bool]] = []  # (text, a known name?)

    def slot(value: str, name: bool = False) -> str:
        slots.append((value, name))
        return _SLOT.format(len(slots) - 1)

    def quoted(match: re.Match[str]) -> str:
        inner = next(group for group in match.groups() if group is not None)
        if inner in known:
            return slot(match.group(0), name=True)
        if keep_quoted and not _LISTY.search(inner):
            return slot(match.group(0))
        return slot(f"'{WITHHELD}'")

    def bracket(match: re.Match[str]) -> str:
        group = match.group(0)
        return slot(f"{group[0]}{WITHHELD}{group[-1]}")

    def parens(match: re.Match[str]) -> str:
        group = match.group(0)
        names_only = all(slots[int(i)][1] for i in _SLOT_RE.findall(group))
        if "," in _SLOT_RE.sub("", group) or not names_only:
            return slot(f"({WITHHELD})")
        return group.replace("(", "\x01").replace(")", "\x02")  # keep, look no further

    out = _QUOTED.sub(quoted, text)
    previous = None
    while previous != out:
        previous = out
        out = _BRACKETS.sub(bracket, out)
    previous = None
    while previous != out:
        previous = out
        out = _PARENS.sub(parens, out)
    out = out.replace("\x01", "(").replace("\x02", ")")
    if not keep_numbers:
        out = _NUMBER.sub(WITHHELD, out)
    while _SLOT_RE.search(out):
        out = _SLOT_RE.sub(lambda m: slots[int(m.group(1))][0], out)
    if len(out) > _MAX_MESSAGE:
        out = out[:_MAX_MESSAGE].rstrip() + " ..."
    return out


def summarise_metadata_dump(message: str) -> str:
    """The "Detected metadata" dump as counts of sdtypes: no ranges, no category lists."""
    _, _, body = message.partition("\n")
    try:
        detected = json.loads(body) if body.strip() else None
    except ValueError:
        detected = None
    if not isinstance(detected, dict):
        return "Detected metadata (values withheld by airflow-synth)"
    columns = detected.get("columns", {})
    kinds: dict[str, int] = {}
    for spec in columns.values() if isinstance(columns, dict) else ():
        sdtype = str(spec.get("sdtype", "?")) if isinstance(spec, dict) else "?"
        kinds[sdtype] = kinds.get(sdtype, 0) + 1
    shown = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    return (
        f"Detected metadata of {len(columns)} columns ({shown}); ranges and categories "
        "withheld by airflow-synth"
    )


def redact_library_record(message: str) -> str | None:
    """What a library log line may say: None to drop it, else the (scrubbed) text."""
    stripped = message.lstrip()
    if stripped.startswith("Detected metadata"):
        return summarise_metadata_dump(stripped)
    if stripped.startswith(("{", "[")):
        return None  # a JSON or config dump (sdtypes with ranges, transformer settings)
    if "Traceback (most recent call last)" in message:
        return None  # the values an error quotes, a second time
    return scrub_message(message, keep_quoted=True, keep_numbers=True)


class LibraryValueFilter(logging.Filter):
    """Rewrites or drops library log records that would put real values in a task log.

    Usage events that SDV logs as dicts (class names and row counts) pass untouched: SDV's
    own CSV formatter needs them as dicts.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format: better dropped than leaked
            return False
        redacted = redact_library_record(message)
        if redacted is None:
            return False
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _library_logger_names() -> list[str]:
    names = set(LIBRARY_LOGGER_ROOTS) | set(KNOWN_VALUE_LOGGERS)
    for name, value in list(logging.root.manager.loggerDict.items()):
        if isinstance(value, logging.Logger) and (name.split(".", 1)[0] in LIBRARY_LOGGER_ROOTS):
            names.add(name)
    return sorted(names)


def install_log_redaction() -> int:
    """Put :class:`LibraryValueFilter` on every library logger; returns how many were new.

    Idempotent and cheap (a scan of the logger registry), so it is called before every
    library call: loggers of SDV modules imported after an earlier call get it then.
    """
    added = 0
    for name in _library_logger_names():
        logger = logging.getLogger(name)
        if not any(isinstance(f, LibraryValueFilter) for f in logger.filters):
            logger.addFilter(LibraryValueFilter())
            added += 1
    return added


def _library_of(exc: BaseException) -> str:
    module = type(exc).__module__ or ""
    return module.split(".", 1)[0] if module != "builtins" else "a library"


@contextmanager
def library_errors(what: str, names: Iterable[str] = ()) -> Iterator[None]:
    """Run a library call so that neither its logs, warnings nor errors carry real values.

    ``what`` names the step for the user ("Training gaussian_copula on table 'users'");
    ``names`` are the column and table names a scrubbed message may keep. A
    :class:`SynthError` (ours, already value-free), ``MemoryError`` and non-``Exception``
    signals (timeouts, interrupts) pass through unchanged.
    """
    install_log_redaction()
    known = [str(name) for name in names]
    error: LibraryError | None = None
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        except (SynthError, MemoryError):
            raise  # ours are value-free already; running out of memory quotes nothing
        except Exception as exc:  # noqa: BLE001 - every library error is re-worded
            library = _library_of(exc)
            error = LibraryError(
                f"{what} failed in {library} ({type(exc).__name__}): "
                f"{scrub_message(str(exc), known)}\n(Values in the library's message are "
                "withheld so that no real value reaches the task log.)",
                library=library,
                error_type=type(exc).__name__,
            )
        finally:
            _relog_warnings(caught, what, known)
    if error is not None:
        raise error from None


def _relog_warnings(caught: list[warnings.WarningMessage], what: str, names: list[str]) -> None:
    """Log the block's warnings once each, values withheld (they quote categories)."""
    seen: set[str] = set()
    for item in caught:
        text = f"{item.category.__name__}: {scrub_message(str(item.message), names)}"
        if text not in seen:
            seen.add(text)
            log.warning("%s: library warning %s", what, text)


def redacted_names(*groups: Any) -> list[str]:
    """Column and table names from frames, mappings of frames or plain iterables of names."""
    found: list[str] = []
    for group in groups:
        if group is None:
            continue
        if hasattr(group, "columns"):
            found.extend(str(c) for c in group.columns)
        elif isinstance(group, dict):
            for key, value in group.items():
                found.append(str(key))
                if hasattr(value, "columns"):
                    found.extend(str(c) for c in value.columns)
        elif isinstance(group, str):
            found.append(group)
        else:
            found.extend(str(g) for g in group)
    return found
