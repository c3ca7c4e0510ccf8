"""Dataset names are identities (airflow_synth.core.names.check_dataset_name)."""

from __future__ import annotations

import pytest

from airflow_synth.core.names import (
    DATASET_NAME_MAX_LENGTH,
    DatasetNameError,
    check_dataset_name,
)
from airflow_synth.core.publish.layout import DatasetLayout, latest_key

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name", ["sales_eu", "a", "0", "sales-eu", "v2_bookings-eu", "a" * DATASET_NAME_MAX_LENGTH]
)
def test_allowed_names_are_used_as_they_are(name: str) -> None:
    assert check_dataset_name(name) == name
    layout = DatasetLayout("synthetic", name, "run1")
    assert layout.dataset == name
    assert layout.run_prefix == f"{name}/run1/"
    assert latest_key(name) == f"{name}/latest.json"


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("sales eu", "sales_eu"),
        ("sales/eu", "sales_eu"),
        ("Sales_EU", "sales_eu"),
        ("sales.eu", "sales_eu"),
        ("_sales", "sales"),
        ("sales_", "sales"),
        ("-sales", "sales"),
        ("../etc", "etc"),
        ("café", "caf"),
        ("a" * (DATASET_NAME_MAX_LENGTH + 1), "a" * DATASET_NAME_MAX_LENGTH),
        ("", None),
        ("  ", None),
        ("___", None),
    ],
)
def test_other_names_are_refused_naming_the_dataset_and_the_rule(
    name: str, suggestion: str | None
) -> None:
    with pytest.raises(DatasetNameError) as caught:
        check_dataset_name(name)
    message = str(caught.value)
    assert repr(name) in message
    assert "a-z, 0-9, '_' and '-'" in message and f"{DATASET_NAME_MAX_LENGTH} characters" in message
    if suggestion is None:
        assert "e.g." not in message
    else:
        assert f"(e.g. {suggestion!r})" in message
    with pytest.raises(DatasetNameError):
        DatasetLayout("synthetic", name, "run1")
    with pytest.raises(DatasetNameError):
        latest_key(name)


def test_names_that_used_to_share_a_prefix_cannot_both_exist() -> None:
    """ "sales eu", "sales/eu" and "sales_eu" once all published to ``sales_eu/``."""
    accepted = []
    for name in ("sales eu", "sales/eu", "sales_eu"):
        try:
            accepted.append(DatasetLayout("synthetic", name, "r").run_prefix)
        except DatasetNameError:
            continue
    assert accepted == ["sales_eu/r/"]


@pytest.mark.parametrize("name", [None, 3, b"sales"])
def test_non_text_is_refused(name: object) -> None:
    with pytest.raises(DatasetNameError):
        check_dataset_name(name)


def test_a_template_passes_only_where_it_is_rendered_later() -> None:
    template = "{{ params.dataset }}"
    assert check_dataset_name(template, templated_ok=True) == template
    with pytest.raises(DatasetNameError):
        check_dataset_name(template)
    with pytest.raises(DatasetNameError):
        check_dataset_name("Sales", templated_ok=True)
