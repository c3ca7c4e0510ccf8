"""The S3 side of publishing, through the Amazon provider's ``S3Hook``.

:class:`S3ObjectStore` implements the core's small ``ObjectStore`` protocol over an
Airflow AWS connection, so credentials, endpoint (MinIO, SeaweedFS) and retries are
whatever the connection says, and the core never sees a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from airflow_synth.core.errors import ConnectionConfigError, PublishError

log = logging.getLogger(__name__)
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
            self._hook = S3Hook(aws_conn_id=self.aws_conn_id)
        return self._hook

    def check(self) -> None:
        """Fail early, naming the connection, if the bucket cannot be reached."""
        try:
            # Look the connection up first: for a missing one, AwsBaseHook only warns and
            # falls back to boto3's default credentials and endpoint (real AWS).
            self.hook.get_connection(self.aws_conn_id)
            self.hook.get_conn().head_bucket(Bucket=self.bucket)
        except Exception as exc:  # AirflowNotFoundException, botocore errors, ...
            raise ConnectionConfigError(
                describe_s3_failure(self.aws_conn_id, self.bucket, exc)
            ) from exc

    def put_file(self, path: Path, key: str) -> None:
        self._put(self.hook.load_file, str(path), key)

    def put_bytes(self, data: bytes, key: str) -> None:
        self._put(self.hook.load_bytes, data, key)

    def _put(self, load: Any, body: Any, key: str) -> None:
        """Upload (multipart for big files: memory stays bounded), encrypted if asked."""
        if not self.encrypt:
            load(body, key=key, bucket_name=self.bucket, replace=True)
            return
        try:
            load(body, key=key, bucket_name=self.bucket, replace=True, encrypt=True)
        except Exception as exc:
            if _error_code(exc) not in _NO_SSE:
                raise
            log.warning(
                "Bucket %s does not support server-side encryption (%s): uploading without it. "
                "Encrypt the bucket by default, or use a server that supports SSE-S3.",
                self.bucket,
                _error_code(exc),
            )
            self.encrypt = False
            load(body, key=key, bucket_name=self.bucket, replace=True)

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


def describe_s3_failure(aws_conn_id: str, bucket: str, exc: Exception) -> str:
    """An actionable message for the ways reaching a bucket fails."""
    text = str(exc)
    code = _error_code(exc)
    if type(exc).__name__ == "AirflowNotFoundException" or "isn't defined" in text:
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


def _error_code(exc: Exception) -> str | None:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code"))
    return None
