"""An S3 outage is told apart from wrong settings, and our clients retry what is transient.

The real thing (a SeaweedFS server killed mid-load, a server answering 503 SlowDown) is in
``tests/faults/test_fault_injection.py``; here the decisions on each kind of failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from airflow_synth.core.errors import (
    ConnectionConfigError,
    PublishError,
    StorageUnavailableError,
)
from airflow_synth.hooks.object_store import (
    CONNECT_TIMEOUT,
    MAX_ATTEMPTS,
    S3ObjectStore,
    client_config,
    is_transient_s3_failure,
    s3_failure,
)
from airflow_synth.runtime import s3_failures_named
from airflow_synth.workspace import TaskWorkspace, _staging_failures_named

pytestmark = pytest.mark.unit

HOOK = SimpleNamespace(aws_conn_id="synth_s3", bucket="synthetic")


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def raised_while(outer: Exception, inner: Exception, *, chained: bool = True) -> Exception:
    """``outer`` raised while handling ``inner`` (``from`` it, or implicitly as boto3 does)."""
    try:
        try:
            raise inner
        except Exception as exc:
            if chained:
                raise outer from exc
            raise outer  # noqa: B904 - as boto3's S3Transfer does
    except Exception as exc:
        return exc


TRANSIENT = {
    "endpoint_down": EndpointConnectionError(endpoint_url="http://127.0.0.1:9/synthetic"),
    "connect_timeout": ConnectTimeoutError(endpoint_url="http://10.255.255.1/"),
    "read_timeout": ReadTimeoutError(endpoint_url="http://127.0.0.1:9/synthetic"),
    "slow_down": client_error("SlowDown", 503),
    "internal_error": client_error("InternalError", 500),
    "bad_gateway": client_error("BadGateway", 502),
    "too_many": client_error("TooManyRequests", 429),
    "upload_throttled": raised_while(
        S3UploadFailedError("Failed to upload x to synthetic/k: SlowDown"),
        client_error("SlowDown", 503),
        chained=False,
    ),
    "publish_reset": raised_while(
        PublishError("Publishing s3://synthetic/d/r/attempt-x/ failed"),
        ConnectionResetError("connection reset by peer"),
    ),
}
SETTINGS = {
    "access_denied": client_error("AccessDenied", 403),
    "bad_key": client_error("InvalidAccessKeyId", 403),
    "no_bucket": client_error("NoSuchBucket", 404),
    "not_found": client_error("404", 404),
    "publish_no_bucket": raised_while(
        PublishError("Publishing failed"), client_error("NoSuchBucket", 404)
    ),
    "missing_conn": type("AirflowNotFoundException", (Exception,), {})("isn't defined"),
    "bug": ValueError("a bug"),
}


@pytest.mark.parametrize("error", TRANSIENT.values(), ids=TRANSIENT.keys())
def test_an_outage_is_transient(error: Exception) -> None:
    assert is_transient_s3_failure(error)
    named = s3_failure("synth_s3", "synthetic", error)
    assert isinstance(named, StorageUnavailableError) and named.transient
    text = str(named)
    assert "Cannot use bucket 'synthetic' through connection 'synth_s3'" in text
    assert "transient: the S3 server could not be reached, timed out or was throttling" in text
    assert f"botocore standard mode, {MAX_ATTEMPTS} attempts in all" in text
    assert "Airflow task retries are safe" in text
    assert "Check the endpoint_url and credentials" not in text  # not the settings' fault


@pytest.mark.parametrize("error", SETTINGS.values(), ids=SETTINGS.keys())
def test_settings_are_not_transient(error: Exception) -> None:
    assert not is_transient_s3_failure(error)
    named = s3_failure("synth_s3", "synthetic", error)
    assert type(named) is ConnectionConfigError
    assert "transient" not in str(named)


def test_a_missing_bucket_inside_a_publish_error_names_the_bucket_to_create() -> None:
    named = s3_failure("synth_s3", "synthetic", SETTINGS["publish_no_bucket"])
    assert "Create bucket 'synthetic'" in str(named)


def test_publishing_through_an_outage_fails_transient_and_keeps_the_publishers_words() -> None:
    with pytest.raises(StorageUnavailableError) as raised, s3_failures_named(HOOK):  # type: ignore[arg-type]
        raise raised_while(
            PublishError(
                "Publishing s3://synthetic/d/r/attempt-x/ failed: Could not connect. Nothing "
                "readers see changed; re-run the load task."
            ),
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9/"),
        )
    text = str(raised.value)
    assert "Nothing readers see changed" in text and "transient" in text
    assert "through connection 'synth_s3'" in text


def test_staging_through_an_outage_is_transient_and_does_not_say_create_the_bucket() -> None:
    store = SimpleNamespace(aws_conn_id="synth_s3")
    workspace = TaskWorkspace(
        Path("/nonexistent"),
        SimpleNamespace(bucket="synthetic-staging"),  # type: ignore[arg-type]
        SimpleNamespace(store=store),  # type: ignore[arg-type]
    )
    with pytest.raises(StorageUnavailableError) as raised, _staging_failures_named(workspace):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
    text = str(raised.value)
    assert text.startswith("Staging real rows between tasks failed.")
    assert "'synthetic-staging'" in text and "transient" in text
    assert "create it" not in text
    with pytest.raises(ConnectionConfigError) as raised, _staging_failures_named(workspace):
        raise client_error("NoSuchBucket", 404)
    assert "create it" in str(raised.value) and not isinstance(
        raised.value, StorageUnavailableError
    )


def test_our_clients_retry_in_standard_mode_with_a_short_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S3_PLAIN", "aws://k:s@/?region_name=us-east-1")
    config = client_config("s3_plain")
    assert config.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    assert config.connect_timeout == CONNECT_TIMEOUT
    hook = S3ObjectStore("s3_plain", "synthetic").hook
    assert hook.get_conn().meta.config.retries == {
        "mode": "standard",
        "total_max_attempts": MAX_ATTEMPTS,
    }


def test_the_connections_own_botocore_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    extra: dict[str, Any] = {
        "region_name": "us-east-1",
        "config_kwargs": {"retries": {"mode": "adaptive", "max_attempts": 9}, "read_timeout": 7},
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_S3_TUNED", f"aws://k:s@/?__extra__={quote(json.dumps(extra), safe='')}"
    )
    config = client_config("s3_tuned")
    assert config.retries == {"mode": "adaptive", "max_attempts": 9}
    assert config.read_timeout == 7
    assert config.connect_timeout == CONNECT_TIMEOUT  # ours, where the connection is silent
    assert "botocore adaptive mode, 10 attempts in all" in str(
        s3_failure("s3_tuned", "b", TRANSIENT["slow_down"])
    )
