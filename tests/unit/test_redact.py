"""No real value reaches a log or an error message through SDV (airflow_synth.core.redact).

Frames carry planted, distinctive values (emails, names, category labels, an extreme
number, odd dates, repeated key values); detection, training and sampling run with every
logger at DEBUG, and neither the captured log nor an error SDV raises may contain any of
them.
"""

from __future__ import annotations

import io
import logging
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sdv.metadata import Metadata

from airflow_synth.core.engine.hma import build_multitable_metadata, fit_hma, sample_hma
from airflow_synth.core.engine.sampling import fit_synthesizer, sample_to_parquet
from airflow_synth.core.engine.synthesizers import resolve_synthesizer
from airflow_synth.core.errors import DataError, SynthError
from airflow_synth.core.redact import (
    WITHHELD,
    LibraryError,
    LibraryValueFilter,
    install_log_redaction,
    library_errors,
    redact_library_record,
    redacted_names,
    scrub_message,
)
from airflow_synth.core.relations import TableShape, build_table_set

pytestmark = pytest.mark.unit

LABELS = ["ZEBRA_LABEL_7731", "OKAPI_LABEL_5512", "QUOKKA_LABEL_9043"]
EXTREME = 987654321.123
FIRST_KEY = 125126
#: Substrings that must never appear: every planted value, or a distinctive part of it.
PLANTED = [
    "zebra-mail.example",
    "Zelda Quixote",
    *LABELS,
    "987654321",
    "125126",
    "1987-06-05",
    "2031-02-03",
]


def planted_users(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    days = rng.integers(1, 9000, rows)
    days[0], days[1] = 0, (pd.Timestamp("2031-02-03") - pd.Timestamp("1987-06-05")).days
    when = pd.Series(pd.Timestamp("1987-06-05") + pd.to_timedelta(days, unit="D"))
    return pd.DataFrame(
        {
            "uid": np.arange(rows) + FIRST_KEY,
            "email": [f"person{i}@zebra-mail.example" for i in range(rows)],
            "full_name": [f"Zelda Quixote{i}" for i in range(rows)],
            "label": rng.choice(LABELS, rows),
            "amount": np.r_[rng.normal(100, 10, rows - 1), EXTREME],
            "joined": when,
        }
    )


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything logged at DEBUG: caplog plus our own handler on the root logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        stream.write("\n".join(r.getMessage() for r in caplog.records))


def assert_no_planted(text: str) -> None:
    leaked = [value for value in PLANTED if value.lower() in text.lower()]
    assert not leaked, f"real values in the output: {leaked}"


def test_planted_values_would_be_logged_without_the_filter(
    all_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The premise: SDV's metadata dump really carries them (so the next test can fail)."""
    monkeypatch.setattr(LibraryValueFilter, "filter", lambda self, record: True)
    Metadata.detect_from_dataframes({"users": planted_users()})
    text = all_logs.getvalue()
    assert "ZEBRA_LABEL_7731" in text and "987654321" in text


def test_single_table_detect_fit_sample_log_no_real_value(
    all_logs: io.StringIO, tmp_path: Path
) -> None:
    frame = planted_users()
    with library_errors("Detecting metadata", redacted_names(frame, ["users"])):
        metadata = Metadata.detect_from_dataframes({"users": frame})
    metadata.update_column("email", table_name="users", sdtype="email", pii=True)
    synthesizer, _ = fit_synthesizer(
        frame, metadata, resolve_synthesizer("gaussian_copula", {}), "users", seed=3
    )
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    rows, _ = sample_to_parquet(
        synthesizer, 50, schema, tmp_path / "s.parquet", "users", primary_key="uid"
    )
    assert rows == 50
    text = all_logs.getvalue()
    assert "Detected metadata of 6 columns" in text  # the dump became a summary
    assert "Training gaussian_copula" in text
    assert_no_planted(text)


def test_multi_table_detect_fit_sample_log_no_real_value(all_logs: io.StringIO) -> None:
    users = planted_users(60)
    rng = np.random.default_rng(9)
    orders = pd.DataFrame(
        {
            "oid": np.arange(180),
            "uid": rng.choice(users["uid"], 180),
            "channel": rng.choice(LABELS, 180),
            "total": np.r_[rng.normal(20, 3, 179), EXTREME],
        }
    )
    frames = {"users": users, "orders": orders}
    shapes = {
        "users": TableShape("users", tuple(users.columns), ("uid",)),
        "orders": TableShape("orders", tuple(orders.columns), ("oid",)),
    }
    table_set = build_table_set(shapes, declared=["orders.uid -> users.uid"])
    metadata = build_multitable_metadata(frames, table_set)
    synthesizer, _ = fit_hma(frames, metadata, seed=1)
    tables, _ = sample_hma(synthesizer, 0.5, seed=1)
    assert set(tables) == {"users", "orders"}
    text = all_logs.getvalue()
    assert "Detected metadata of" in text
    assert_no_planted(text)


def test_duplicate_key_error_is_reraised_without_the_values(all_logs: io.StringIO) -> None:
    frame = planted_users()
    metadata = Metadata.detect_from_dataframes({"users": frame})
    broken = frame.copy()
    broken.loc[7, "uid"] = broken.loc[8, "uid"]  # SDV quotes the repeated key value
    spec = resolve_synthesizer("gaussian_copula", {})
    with pytest.raises(LibraryError) as failure:
        fit_synthesizer(broken, metadata, spec, "users")
    error = failure.value
    message = str(error)
    assert isinstance(error, DataError) and isinstance(error, SynthError)
    assert "Training gaussian_copula on table 'users' failed in sdv" in message
    assert "Key column 'uid' contains repeating values" in message  # the column is named
    assert WITHHELD in message
    assert error.__cause__ is None and error.__suppress_context__  # `raise ... from None`
    printed = "".join(traceback.format_exception(error))
    assert "During handling" not in printed and "direct cause" not in printed
    assert_no_planted(printed + all_logs.getvalue())


def test_sample_errors_are_reworded_too(tmp_path: Path) -> None:
    class Broken:
        def sample(self, num_rows: int) -> dict[str, pd.DataFrame]:
            raise ValueError("Unable to parse 'ZEBRA_LABEL_7731' in [987654321.123, 125126]")

    schema = pa.schema([("label", pa.string())])
    with pytest.raises(LibraryError, match="Sampling table 'users' failed") as failure:
        sample_to_parquet(Broken(), 3, schema, tmp_path / "s.parquet", "users")
    assert "ValueError" in str(failure.value)
    assert_no_planted(str(failure.value))


def test_our_own_errors_and_memory_errors_pass_unchanged() -> None:
    with pytest.raises(SynthError, match="keep me 'ZEBRA'"), library_errors("x"):
        raise SynthError("keep me 'ZEBRA'")
    with pytest.raises(MemoryError), library_errors("x"):
        raise MemoryError


def test_library_warnings_are_relogged_without_values(all_logs: io.StringIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with library_errors("Transforming table 'users'", ["label"]):
            warnings.warn(
                "The data in column 'label' contains new categories (ZEBRA_LABEL_7731, x).",
                UserWarning,
                stacklevel=1,
            )
    text = all_logs.getvalue()
    assert "Transforming table 'users': library warning UserWarning" in text
    assert "column 'label'" in text
    assert_no_planted(text)


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        (
            "Key column 'uid' contains repeating values: [125126, 125127]",
            ["uid"],
            "Key column 'uid' contains repeating values: [<withheld>]",
        ),
        ("Unknown category 'ZEBRA_LABEL_7731'", [], "Unknown category '<withheld>'"),
        ('Unable to parse string "Zelda" at position 3', [], "Unable to parse string "),
        ("bad values {'a': [1, [2, 3]]} in 'col_1'", ["col_1"], "bad values {<withheld>} in"),
        ("Out of bounds: 2031-02-03 00:00:00 and 9.87e8", [], "Out of bounds: <withheld> and"),
        ("categories (ZEBRA, OKAPI) in (table 'users')", ["users"], "(<withheld>) in (table"),
        ("column col_2 is fine", [], "column col_2 is fine"),
    ],
)
def test_scrub_message(text: str, names: list[str], expected: str) -> None:
    scrubbed = scrub_message(text, names)
    assert expected in scrubbed
    assert_no_planted(scrubbed)
    for value in ("125126", "ZEBRA", "Zelda", "2031", "9.87e8", "OKAPI"):
        assert value not in scrubbed


def test_scrub_keeps_known_names_with_digits_and_caps_length() -> None:
    assert "'col_2024'" in scrub_message("column 'col_2024' failed", ["col_2024"])
    assert len(scrub_message("x" * 5000)) < 700


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('Detected metadata:\n{"columns": {"a": {"sdtype": "categorical"}}}', "of 1 columns"),
        ("Detected metadata:", "values withheld"),
        ('{\n    "columns": {"a": {"range_values": ["ZEBRA_LABEL_7731"]}}\n}', None),
        ("Traceback (most recent call last):\n  ... 125126", None),
        ("No rounding scheme detected for column 'amount'.", "column 'amount'"),
        ("some values were not present during fit: ('ZEBRA_LABEL_7731').", "fit: (<withheld>)"),
        ("Sampling 100 rows from table users", "Sampling 100 rows"),
    ],
)
def test_redact_library_record(message: str, expected: str | None) -> None:
    redacted = redact_library_record(message)
    if expected is None:
        assert redacted is None
    else:
        assert redacted is not None and expected in redacted
        assert_no_planted(redacted)


def test_install_is_idempotent_and_covers_loggers_created_later() -> None:
    install_log_redaction()
    assert install_log_redaction() == 0
    late = logging.getLogger("sdv.some_module_imported_later")
    assert install_log_redaction() == 1
    for name in ("sdv.metadata.metadata", "rdt.hyper_transformer", late.name):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, LibraryValueFilter)]
        assert len(filters) == 1
    late.filters.clear()


def test_sdv_usage_events_stay_dicts() -> None:
    record = logging.LogRecord("SingleTableSynthesizer", 20, "", 0, {"EVENT": "Fit"}, None, None)
    assert LibraryValueFilter().filter(record) is True
    assert record.msg == {"EVENT": "Fit"}


def test_multi_table_quality_report_errors_carry_no_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sdv.evaluation

    from airflow_synth.core.assess.set_quality import multitable_quality

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("ZEBRA_LABEL_7731")

    monkeypatch.setattr(sdv.evaluation, "evaluate_quality", broken)
    frames = {"users": planted_users(10)}
    with pytest.raises(LibraryError, match="multi-table quality report failed in a library") as err:
        multitable_quality(frames, frames, metadata=None)  # type: ignore[arg-type]
    assert_no_planted(str(err.value))
