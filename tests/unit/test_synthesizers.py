"""The synthesizer registry and SynthesizerSpec (airflow_synth.core.engine.synthesizers).

Error paths of ``resolve_synthesizer`` for names and the most common typos live in
test_synthesize_unit.py; this module checks the registry, the spec object and the type
rules for every kind of parameter default (bool, int, float, tuple, distributions).
"""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from sdv.metadata import Metadata

from airflow_synth.core.engine.synthesizers import (
    DEFAULT_SYNTHESIZER,
    SYNTHESIZERS,
    SynthesizerSpec,
    resolve_synthesizer,
)
from airflow_synth.core.errors import SynthesizerConfigError

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore:We strongly recommend")]


@pytest.fixture(scope="module")
def metadata() -> Metadata:
    frame = pd.DataFrame({"age": [21, 35, 48, 52], "country": ["DE", "FR", "DE", "US"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Metadata.detect_from_dataframes({"people": frame})


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SYNTHESIZERS))
def test_every_registered_synthesizer_resolves_and_imports(name: str) -> None:
    spec = resolve_synthesizer(name)
    assert spec.name == name
    assert spec.params == {}
    cls = spec.load_class()
    assert cls.__name__ == SYNTHESIZERS[name].rsplit(".", 1)[1]
    assert callable(cls.fit) and callable(cls.sample) and callable(cls.save)


@pytest.mark.parametrize(
    ("name", "neural"),
    [("gaussian_copula", False), ("ctgan", True), ("tvae", True), ("copulagan", True)],
)
def test_is_neural(name: str, neural: bool) -> None:
    assert resolve_synthesizer(name).is_neural is neural


@pytest.mark.parametrize("name", [None, "", "  \t"])
def test_missing_or_blank_name_means_the_default(name: str | None) -> None:
    spec = resolve_synthesizer(name)
    assert DEFAULT_SYNTHESIZER == "auto"
    assert spec.name == "tabular_argn"  # the argn extra is part of the dev install
    assert spec.class_path.endswith("TabularARGNSynthesizer")


def test_auto_falls_back_to_the_copula_where_the_engine_is_missing(monkeypatch, caplog) -> None:
    from airflow_synth.core.engine import tabular_argn

    monkeypatch.setattr(tabular_argn, "engine_available", lambda: False)
    spec = resolve_synthesizer("auto", {"default_distribution": "norm"})
    assert spec.name == "gaussian_copula"
    assert spec.params == {"default_distribution": "norm"}
    assert "airflow-synth[argn]" in caplog.text


@pytest.mark.parametrize("typed", ["CTGAN", " ctgan ", "CtGaN\n"])
def test_names_are_case_and_space_insensitive(typed: str) -> None:
    spec = resolve_synthesizer(typed)
    assert spec.name == "ctgan"
    assert spec.class_path == "sdv.single_table.CTGANSynthesizer"


# --------------------------------------------------------------------------------------------
# parameter rules by type of SDV's default
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("ctgan", {"verbose": True, "enable_gpu": False}, {"verbose": True, "enable_gpu": False}),
        ("ctgan", {"generator_lr": "0.001"}, {"generator_lr": 0.001}),
        ("ctgan", {"discriminator_decay": 0}, {"discriminator_decay": 0.0}),
        ("ctgan", {"generator_dim": [64, 32]}, {"generator_dim": (64, 32)}),
        (
            "tvae",
            {"compress_dims": (16,), "l2scale": 1e-4},
            {"compress_dims": (16,), "l2scale": 1e-4},
        ),
        ("tvae", {"batch_size": 7}, {"batch_size": 7}),  # TVAE has no pac
        ("ctgan", {"batch_size": 30, "pac": 5}, {"batch_size": 30, "pac": 5}),
        (
            "gaussian_copula",
            {"default_distribution": "truncnorm"},
            {"default_distribution": "truncnorm"},
        ),
        ("gaussian_copula", {"enforce_rounding": False}, {"enforce_rounding": False}),
        ("gaussian_copula", {"default_distribution": None}, {}),
    ],
)
def test_good_params_are_kept_and_coerced(
    name: str, params: dict[str, object], expected: dict[str, object]
) -> None:
    spec = resolve_synthesizer(name, params)
    assert spec.params == expected
    assert {k: type(v) for k, v in spec.params.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("ctgan", {"verbose": "yes"}, "must be true or false, got 'yes'"),
        ("ctgan", {"enable_gpu": 1}, "must be true or false"),
        ("ctgan", {"generator_lr": "fast"}, "must be a number, got 'fast'"),
        ("ctgan", {"generator_lr": -0.1}, "non-negative number, got -0.1"),
        ("ctgan", {"generator_lr": float("nan")}, "finite"),
        ("ctgan", {"generator_lr": [0.1]}, "must be a number"),
        ("ctgan", {"epochs": float("inf")}, "whole number"),
        ("ctgan", {"epochs": float("nan")}, "whole number"),
        ("ctgan", {"epochs": True}, "whole number, got True"),
        ("ctgan", {"epochs": [10]}, "whole number"),
        ("ctgan", {"pac": 0}, "positive whole number, got 0"),
        ("ctgan", {"generator_dim": 256}, "list of positive layer sizes"),
        ("ctgan", {"generator_dim": [256, 0]}, "list of positive layer sizes"),
        ("ctgan", {"generator_dim": ["256"]}, "list of positive layer sizes"),
        ("gaussian_copula", {"default_distribution": "cauchy"}, "must be one of ['beta'"),
    ],
)
def test_bad_values_name_parameter_and_synthesizer(
    name: str, params: dict[str, object], fragment: str
) -> None:
    with pytest.raises(SynthesizerConfigError) as err:
        resolve_synthesizer(name, params)
    message = str(err.value)
    assert fragment in message
    assert f"parameter {next(iter(params))!r} of synthesizer {name!r}" in message


def test_reserved_metadata_parameter_is_refused() -> None:
    with pytest.raises(SynthesizerConfigError, match="has no parameter 'metadata'"):
        resolve_synthesizer("gaussian_copula", {"metadata": {}})


def test_resolve_does_not_mutate_the_callers_params() -> None:
    params = {"epochs": "5", "verbose": None}
    resolve_synthesizer("ctgan", params)
    assert params == {"epochs": "5", "verbose": None}


# --------------------------------------------------------------------------------------------
# SynthesizerSpec
# --------------------------------------------------------------------------------------------
def test_describe_is_json_safe_and_complete() -> None:
    spec = resolve_synthesizer("ctgan", {"epochs": 3, "generator_dim": [8, 4]})
    described = spec.describe()
    assert json.loads(json.dumps(described)) == {
        "name": "ctgan",
        "class": "sdv.single_table.CTGANSynthesizer",
        "params": {"epochs": 3, "generator_dim": [8, 4]},
    }
    nested = SynthesizerSpec("x", "a.B", {"n": {1: (2, 3)}}).describe()
    assert nested["params"] == {"n": {"1": [2, 3]}}


def test_create_passes_params_to_sdv(metadata: Metadata) -> None:
    spec = resolve_synthesizer("ctgan", {"epochs": "3", "generator_dim": [8, 8], "pac": 2})
    synthesizer = spec.create(metadata)
    assert type(synthesizer).__name__ == "CTGANSynthesizer"
    got = synthesizer.get_parameters()
    assert (got["epochs"], got["generator_dim"], got["pac"]) == (3, (8, 8), 2)


@pytest.mark.parametrize(
    "params",
    [
        {"numerical_distributions": {"age": "bogus"}},  # SDV raises ValueError
        {"numerical_distributions": {"no_such_column": "beta"}},  # SDV's own input error
    ],
)
def test_create_turns_sdv_rejections_into_config_errors(
    metadata: Metadata, params: dict[str, object]
) -> None:
    spec = resolve_synthesizer("gaussian_copula", params)
    with pytest.raises(SynthesizerConfigError, match="'gaussian_copula' rejected its parameters"):
        spec.create(metadata)


def test_unknown_class_path_fails_on_load() -> None:
    spec = SynthesizerSpec("nope", "sdv.single_table.NoSuchSynthesizer")
    with pytest.raises(AttributeError):
        spec.load_class()
