"""The one function family that decides where outputs live.

Every location is derived from (bucket, dataset, run) and, for the files of a publication,
the **attempt**: each publish attempt writes under keys no other attempt uses, so a rerun
never overwrites (or deletes) what an earlier attempt published, and a reader holding an
older manifest can still read every file it names::

    s3://<bucket>/<dataset>/<run>/manifest.json        the run's manifest: readers find the
                                                       run here; switched (one PUT) only
                                                       after every file of the attempt is up
    s3://<bucket>/<dataset>/<run>/<attempt>/data.parquet          synthetic rows
    s3://<bucket>/<dataset>/<run>/<attempt>/data/part-00000.parquet ...   (sampled in shards)
    s3://<bucket>/<dataset>/<run>/<attempt>/metadata.json, quality.json, report.html, ...
    s3://<bucket>/<dataset>/<run>/<attempt>/manifest.json      the attempt's own manifest
                                                       (the same body; never rewritten)
    s3://<bucket>/<dataset>/latest.json                pointer to the newest publication
    s3://<bucket>/_models/<dataset>/<run>/<attempt>/model.pkl, model.json   the fitted
                                                       synthesizer (derived from real data)
    s3://<bucket>/<dataset>/_failed/<run>/             a run that failed a gate: its reports
                                                       only (report.html, ..., failed.json)

Readers never build these keys: they read the run's manifest (or ``latest.json``) and use
the URIs it lists. An attempt is named ``attempt-<UTC start, microseconds>-<random>``
(sortable, unique).

The dataset name is used as it is (:func:`~airflow_synth.core.names.check_dataset_name`
refuses any other), so the name -> prefix mapping is the identity. A run name never
starts with ``_`` (:func:`safe_key_part` strips it), so ``_failed`` cannot collide with a
run folder, and nothing that reads runs (manifests, ``latest.json``) ever looks inside it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from airflow_synth.core.errors import PublishError
from airflow_synth.core.names import check_dataset_name, safe_key_part

MODELS_PREFIX = "_models"
#: Folder (under the dataset) for the reports of runs that failed a gate.
FAILED_DIR = "_failed"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest.json"
MODEL_FILE = "model.pkl"
MODEL_INFO_FILE = "model.json"
ATTEMPT_PREFIX = "attempt-"
_ATTEMPT = re.compile(r"attempt-(\d{8}T\d{12}Z)-[0-9a-f]{8}\Z")


def new_attempt_id(now: datetime | None = None) -> str:
    """A fresh attempt id: ``attempt-<UTC start, to the microsecond>-<8 random hex>``
    (unique, and sorts by start)."""
    started = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{ATTEMPT_PREFIX}{started:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def attempt_started(attempt: str) -> datetime | None:
    """When an attempt started (from its id); None for anything that is not an attempt id."""
    match = _ATTEMPT.match(attempt)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def latest_key(dataset: str) -> str:
    """Key of a dataset's ``latest.json`` (the one rule every reader uses)."""
    return f"{check_dataset_name(dataset)}/{LATEST_FILE}"


def key_of_uri(uri: str, bucket: str) -> str:
    """The key of ``s3://<bucket>/<key>``: a manifest's URIs are read back through it, and a
    URI into another bucket is refused (the store reads one bucket)."""
    head = f"s3://{bucket}/"
    if not isinstance(uri, str) or not uri.startswith(head) or len(uri) == len(head):
        raise PublishError(f"{uri!r} is not an object of bucket {bucket!r}")
    return uri[len(head) :]


@dataclass(frozen=True)
class DatasetLayout:
    """Keys of one published run of one dataset; with ``attempt``, of one publish attempt."""

    bucket: str
    dataset: str
    run: str
    attempt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", check_dataset_name(self.dataset))
        object.__setattr__(self, "run", safe_key_part(self.run))
        if self.attempt is not None and attempt_started(self.attempt) is None:
            raise ValueError(f"{self.attempt!r} is not an attempt id (see new_attempt_id)")

    def for_attempt(self, attempt: str | None = None) -> DatasetLayout:
        """This run's layout for one publish attempt (a fresh one by default)."""
        return replace(self, attempt=attempt or new_attempt_id())

    @property
    def run_prefix(self) -> str:
        return f"{self.dataset}/{self.run}/"

    @property
    def attempt_prefix(self) -> str:
        """Where this attempt's files go: no other attempt writes there."""
        if self.attempt is None:
            raise ValueError("this layout names no attempt: use layout.for_attempt()")
        return f"{self.run_prefix}{self.attempt}/"

    def key(self, name: str) -> str:
        """Key of a file of this attempt (``data.parquet``, ``reports/t/report.html``)."""
        return f"{self.attempt_prefix}{name}"

    @property
    def manifest_key(self) -> str:
        """The run's manifest: where readers find the run (switched last, in one PUT)."""
        return f"{self.run_prefix}{MANIFEST_FILE}"

    @property
    def attempt_manifest_key(self) -> str:
        """The attempt's own copy of its manifest (written once, never replaced)."""
        return self.key(MANIFEST_FILE)

    @property
    def latest_key(self) -> str:
        return latest_key(self.dataset)

    @property
    def models_run_prefix(self) -> str:
        """Every attempt's model of this run lives below this prefix."""
        return f"{MODELS_PREFIX}/{self.dataset}/{self.run}/"

    @property
    def model_prefix(self) -> str:
        """This attempt's model folder, kept apart from the public data."""
        if self.attempt is None:
            raise ValueError("this layout names no attempt: use layout.for_attempt()")
        return f"{self.models_run_prefix}{self.attempt}/"

    @property
    def model_key(self) -> str:
        return f"{self.model_prefix}{MODEL_FILE}"

    @property
    def model_info_key(self) -> str:
        return f"{self.model_prefix}{MODEL_INFO_FILE}"

    @property
    def failed_prefix(self) -> str:
        """Quarantine of this run's reports when it failed a gate: never data or a model."""
        return f"{self.dataset}/{FAILED_DIR}/{self.run}/"

    def failed_key(self, name: str) -> str:
        return f"{self.failed_prefix}{name}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, uri: str) -> str:
        """The key of one of this bucket's URIs (see :func:`key_of_uri`)."""
        return key_of_uri(uri, self.bucket)

    @property
    def dataset_uri(self) -> str:
        """The dataset as a whole: the URI of its Airflow Asset (no trailing slash, as
        Airflow normalises Asset URIs)."""
        return f"s3://{self.bucket}/{self.dataset}"
