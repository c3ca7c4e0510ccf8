"""The S3 side of publishing, through the Amazon provider's ``S3Hook``.

:class:`S3ObjectStore` implements the core's small ``ObjectStore`` protocol over an
Airflow AWS connection, so credentials and endpoint (MinIO, SeaweedFS) are whatever the
connection says, and the core never sees a secret.

**Retries.** Every client we make retries what is transient, with exponential backoff and
jitter, before a call fails: botocore's ``standard`` retry mode, :data:`MAX_ATTEMPTS`
attempts in all (connection refused or reset, connect and read timeouts, HTTP 5xx,
``SlowDown``/``Throttling``), a connection attempt given :data:`CONNECT_TIMEOUT` seconds.
The connection's extra ``config_kwargs`` wins (e.g. ``{"retries": {"mode": "adaptive",
"max_attempts": 10}}``). What still fails is told apart by :func:`is_transient_s3_failure`:
an outage (:class:`~airflow_synth.core.errors.StorageUnavailableError`, "transient") or the
settings (a missing bucket, refused credentials: :class:`ConnectionConfigError`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.config import Config

from airflow_synth.core.errors import (
    ConnectionConfigError,
    PublishError,
    StorageUnavailableError,
    SynthError,
)

log = logging.getLogger(__name__)
#: botocore's retries on our S3 clients (see the module doc); the connection's
#: ``config_kwargs`` override them.
RETRY_MODE = "standard"
MAX_ATTEMPTS = 5
#: Seconds to open a connection to the endpoint (botocore's default is 60, per attempt).
CONNECT_TIMEOUT = 10
#: Error codes (or HTTP statuses) of a busy, throttling or failing server: transient.
_TRANSIENT_CODES = {
    *("500", "502", "503", "504", "429"),
    *("InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException"),
    *("RequestTimeout", "RequestTimeoutException", "RequestLimitExceeded", "TooManyRequests"),
    *("TooManyRequestsException", "BandwidthLimitExceeded", "PriorRequestNotComplete"),
}
#: Error codes of a server that refuses server-side encryption headers.
_NO_SSE = {"NotImplemented", "InvalidArgument", "InvalidRequest", "InvalidEncryptionAlgorithmError"}


class S3ObjectStore:
    """Object store over one bucket of an Airflow AWS connection.

    ``encrypt`` asks for server-side encryption (SSE-S3, AES256) on every upload (staged
    real rows); a server that does not support it is told once in the log and gets plain
    uploads.
    """

    def __init__(self, aws_conn_id: str, bucket: str, *, encrypt: bool = False) -> None:
        self.aws_conn_id = aws_conn_id
        self.bucket = bucket
        self.encrypt = encrypt
        self._hook: S3Hook | None = None

    @property
    def hook(self) -> S3Hook:
        if self._hook is None:
            self._hook = S3Hook(
                aws_conn_id=self.aws_conn_id, config=client_config(self.aws_conn_id)
            )
        return self._hook

    def check(self) -> None:
        """Fail early, naming the connection, if the bucket cannot be reached."""
        try:
            # Look the connection up first: for a missing one, AwsBaseHook only warns and
            # falls back to boto3's default credentials and endpoint (real AWS).
            self.hook.get_connection(self.aws_conn_id)
            self.hook.get_conn().head_bucket(Bucket=self.bucket)
        except Exception as exc:  # AirflowNotFoundException, botocore errors, ...
            raise s3_failure(self.aws_conn_id, self.bucket, exc) from exc

    def put_file(self, path: Path, key: str) -> None:
        self._put(str(path), key)

    def put_bytes(self, data: bytes, key: str) -> None:
        self._put(data, key)

    def _put(self, body: str | bytes, key: str, *, encrypt: bool | None = None) -> None:
        """Upload a file (by path: multipart for big files, memory stays bounded) or bytes,
        encrypted if asked.

        Through the boto3 client of ``S3Hook`` (its connection, endpoint, retries, extra
        args and transfer config), not ``S3Hook.load_file``: those report every object they
        write to OpenLineage's hook-level lineage, and most of what we write is private
        staging (real rows in flight) or a task's scratch file, never a dataset a lineage
        backend should name. The operators report the real inputs and outputs themselves.
        """
        encrypt = self.encrypt if encrypt is None else encrypt
        extra_args = dict(self.hook.extra_args)
        if encrypt:
            extra_args["ServerSideEncryption"] = "AES256"
        client = self.hook.get_conn()
        config = self.hook.transfer_config
        try:
            if isinstance(body, bytes):
                client.upload_fileobj(
                    io.BytesIO(body), self.bucket, key, ExtraArgs=extra_args, Config=config
                )
            else:
                client.upload_file(body, self.bucket, key, ExtraArgs=extra_args, Config=config)
        except Exception as exc:
            if not encrypt or _error_code(exc) not in _NO_SSE:
                raise
            log.warning(
                "Bucket %s does not support server-side encryption (%s): uploading without it. "
                "Encrypt the bucket by default, or use a server that supports SSE-S3.",
                self.bucket,
                _error_code(exc),
            )
            self.encrypt = False
            self._put(body, key, encrypt=False)

    def get_bytes(self, key: str) -> bytes | None:
        client = self.hook.get_conn()
        try:
            return client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def size(self, key: str) -> int | None:
        head = self.hook.head_object(key=key, bucket_name=self.bucket)
        return None if head is None else int(head["ContentLength"])

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(self.hook.list_keys(bucket_name=self.bucket, prefix=prefix))

    def list_objects(self, prefix: str) -> list[tuple[str, datetime]]:
        """(key, last modified) of every object under ``prefix`` (the sweeper's listing)."""
        paginator = self.hook.get_conn().get_paginator("list_objects_v2")
        return sorted(
            (obj["Key"], obj["LastModified"])
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        )

    def delete_keys(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self.hook.delete_objects(bucket=self.bucket, keys=keys)

    def download(self, key: str, path: Path) -> Path:
        """Stream one object to a local file (in chunks: bounded memory)."""
        client = self.hook.get_conn()
        try:
            client.download_file(self.bucket, key, str(path))
        except Exception as exc:
            if _error_code(exc) in {"404", "NoSuchKey"}:
                raise PublishError(f"s3://{self.bucket}/{key} does not exist") from exc
            raise
        return Path(path)


def client_config(aws_conn_id: str | None) -> Config:
    """The botocore config of our clients: our retries and connect timeout, overridden by
    the connection's extra ``config_kwargs`` where it sets them."""
    ours = Config(  # total_max_attempts counts the first try (botocore's max_attempts does not)
        retries={"mode": RETRY_MODE, "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT,
    )
    try:  # the connection's own botocore settings (None without config_kwargs)
        own = S3Hook(aws_conn_id=aws_conn_id).conn_config.botocore_config if aws_conn_id else None
    except Exception as exc:  # noqa: BLE001 - a missing connection fails check() by name
        log.debug("no botocore settings read from connection %s: %s", aws_conn_id, exc)
        own = None
    return ours.merge(own) if own is not None else ours


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling (boto3 wraps without ``from``)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen) and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient_s3_failure(exc: BaseException) -> bool:
    """Whether a failed S3 call (or what it was raised from) is an outage rather than the
    settings: the endpoint unreachable, a connection refused, reset or timed out, HTTP 5xx,
    throttling (``SlowDown``, 429). A missing bucket or key (404), refused credentials
    (403) and a missing connection are the settings."""
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (
        HTTPClientError,
        IncompleteReadError,
    )

    for error in _chain(exc):
        if isinstance(error, SynthError) and not isinstance(error, PublishError):
            return isinstance(error, StorageUnavailableError)
        if isinstance(error, BotoConnectionError | HTTPClientError | IncompleteReadError):
            return True
        if isinstance(error, ConnectionError | TimeoutError):  # builtins: reset, refused
            return True
        if type(error).__name__ == "RetriesExceededError":  # boto3's download retries
            return True
        code = _error_code(error)
        if code is not None:
            status = _http_status(error)
            return code in _TRANSIENT_CODES or (
                status is not None and (status >= 500 or status == 429)
            )
    return False


def _retries_of(aws_conn_id: str) -> str:
    try:
        retries = client_config(aws_conn_id).retries or {}
    except Exception:  # noqa: BLE001 - wording only
        retries = {}
    mode = retries.get("mode", "legacy")  # botocore's default when the mode is not set
    if "total_max_attempts" in retries:
        attempts = str(retries["total_max_attempts"])
    elif "max_attempts" in retries:  # retries after the first try
        attempts = str(int(retries["max_attempts"]) + 1)
    else:
        attempts = "botocore's default number of"
    return f"botocore {mode} mode, {attempts} attempts in all"


def s3_failure(aws_conn_id: str, bucket: str, exc: BaseException, prefix: str = "") -> SynthError:
    """The error to raise for a failed S3 call: :class:`StorageUnavailableError` for an
    outage (transient: retried already, a task retry is safe), else
    :class:`ConnectionConfigError` naming the setting to fix."""
    text = prefix + describe_s3_failure(aws_conn_id, bucket, exc)
    if is_transient_s3_failure(exc):
        return StorageUnavailableError(text)
    return ConnectionConfigError(text)


def describe_s3_failure(aws_conn_id: str, bucket: str, exc: BaseException) -> str:
    """An actionable message for the ways reaching a bucket fails: an outage is called
    transient (the server, not the settings), anything else names the setting to fix."""
    text = str(exc)
    code = next((c for c in map(_error_code, _chain(exc)) if c), None)
    if is_transient_s3_failure(exc):
        fix = (
            "transient: the S3 server could not be reached, timed out or was throttling "
            f"(retried with backoff: {_retries_of(aws_conn_id)}); Airflow task retries are "
            "safe (every step is idempotent and a failed publication changes nothing readers "
            "see). If it persists, check that the S3 server is up and reachable from the "
            f"worker, and that the endpoint_url of connection {aws_conn_id!r} points at it."
        )
    elif type(exc).__name__ == "AirflowNotFoundException" or "isn't defined" in text:
        fix = (
            f"Create the Airflow connection {aws_conn_id!r} (type 'Amazon Web Services'; for "
            "MinIO/SeaweedFS set extra endpoint_url), e.g. with the environment variable "
            f"AIRFLOW_CONN_{aws_conn_id.upper()}. See the README, 'Connections'."
        )
    elif code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}:
        fix = f"Check the access key and secret of connection {aws_conn_id!r}."
    elif code in {"NoSuchBucket", "404"}:
        fix = f"Create bucket {bucket!r} or point the task at an existing bucket."
    else:
        fix = f"Check the endpoint_url and credentials of connection {aws_conn_id!r}."
    return f"Cannot use bucket {bucket!r} through connection {aws_conn_id!r}: {text}\n{fix}"


def _error_code(exc: BaseException) -> str | None:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code"))
    return None


def _http_status(exc: BaseException) -> int | None:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    return None
