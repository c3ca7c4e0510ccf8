"""``python -m airflow_synth.demo.browse [s3://bucket/prefix] [--get DIR]``: look into the
local S3 server after ``make demo`` (no AWS CLI needed).

Lists one level like ``aws s3 ls`` (folders end in ``/``), or with ``--get DIR`` downloads a
key, or every key under a prefix, into ``DIR``. It talks to the S3 server of the local stack
(``make stack-up`` starts it again after ``make stack-down``), with the stack's own
credentials, so the ``s3://`` URIs that ``make demo`` prints can be opened as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_synth.local.stack import BUCKET

STACK_UP_HINT = "start it with `make stack-up` (or .venv/bin/python -m airflow_synth.local up)"


def split_uri(uri: str, default_bucket: str = BUCKET) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, prefix); a bare prefix is in ``default_bucket``."""
    text = uri.strip()
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        return bucket or default_bucket, prefix
    return default_bucket, text.lstrip("/")


def filer_port(state_dir: Path) -> int | None:
    """The HTTP port of the S3 server's filer (SeaweedFS's web file browser), if recorded."""
    from airflow_synth.local.ports import read_section

    ports = read_section(state_dir, "s3").get("internal_ports") or {}
    port = ports.get("filer")
    return int(port) if port else None


def filer_url(port: int, bucket: str, key: str = "") -> str:
    """Where the filer shows ``s3://bucket/key`` in a browser (folders list, files open)."""
    return f"http://127.0.0.1:{port}/buckets/{bucket}/{key}"


def listing(client: Any, bucket: str, prefix: str) -> list[str]:
    """One level under ``prefix``: sub-folders (ending in ``/``) then keys with their size."""
    if prefix and not prefix.endswith("/"):
        try:  # a key: show just that object
            head = client.head_object(Bucket=bucket, Key=prefix)
            return [f"{head['ContentLength']:>12}  s3://{bucket}/{prefix}"]
        except client.exceptions.ClientError:
            prefix += "/"
    lines: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes") or []:
            lines.append(f"{'PRE':>12}  s3://{bucket}/{common['Prefix']}")
        for obj in page.get("Contents") or []:
            lines.append(f"{obj['Size']:>12}  s3://{bucket}/{obj['Key']}")
    return lines


def download(client: Any, bucket: str, prefix: str, dest: Path) -> list[Path]:
    """Download the key ``prefix`` (or every key under it) into ``dest``, keeping the part of
    each key below ``prefix``'s folder; returns the local paths."""
    keys: list[str] = []
    if prefix and not prefix.endswith("/"):
        try:
            client.head_object(Bucket=bucket, Key=prefix)
            keys = [prefix]
        except client.exceptions.ClientError:
            prefix += "/"
    if not keys:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"] for obj in page.get("Contents") or []]
    folder = prefix.rstrip("/")
    base = folder.rsplit("/", 1)[0] + "/" if "/" in folder else ""
    written = []
    for key in keys:
        target = dest / key[len(base) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_synth.demo.browse", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("uri", nargs="?", default=f"s3://{BUCKET}/", help="s3://bucket/prefix")
    parser.add_argument("--get", type=Path, metavar="DIR", help="download into DIR")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: <repo>/.local")
    args = parser.parse_args(argv)
    from airflow_synth.local import LocalStack

    stack = LocalStack(args.state_dir)
    if not stack.s3.is_running():
        print(f"The local S3 server ({stack.state_dir}) is not running: {STACK_UP_HINT}.")
        return 2
    client = stack.s3.client()
    bucket, prefix = split_uri(args.uri)
    if args.get:
        paths = download(client, bucket, prefix, args.get)
        for path in paths:
            print(path)
        if not paths:
            print(f"nothing under s3://{bucket}/{prefix}", file=sys.stderr)
        return 0 if paths else 1
    lines = listing(client, bucket, prefix)
    print("\n".join(lines) if lines else f"(empty: s3://{bucket}/{prefix})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
