"""``SynthHook``: the synthesizer side of airflow-synth, configured by one connection.

A ``synth`` connection holds the defaults a platform team sets once: which AWS connection
and bucket receive synthetic data and models, where real rows are staged between the
tasks of a run (``staging``: ``s3://bucket/prefix``, default ``s3://<bucket>-staging/runs``,
or a local folder for LocalExecutor), the default synthesizer and its parameters, and
``sweep_after_hours`` (how old leftovers of a run must be before the sweeper removes them).
Arguments given to an operator win over the connection, and the connection is optional:
without it, the hook uses the explicit arguments alone.
"""

from __future__ import annotations

import json
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from airflow_synth.core.engine.synthesizers import (
    DEFAULT_SYNTHESIZER,
    SynthesizerSpec,
    resolve_synthesizer,
)
from airflow_synth.core.errors import ConnectionConfigError
from airflow_synth.core.extract.staging import STAGING_ENV, StagingLocation
from airflow_synth.core.publish.layout import DatasetLayout
from airflow_synth.hooks.object_store import S3ObjectStore

log = logging.getLogger(__name__)

DEFAULT_AWS_CONN_ID = "aws_default"
DEFAULT_BUCKET = "synthetic"


class SynthHook(BaseHook):
    """Resolve object store, bucket and synthesizer defaults for ESL tasks.

    :param synth_conn_id: optional ``synth`` connection with defaults in its extra
        (``aws_conn_id``, ``bucket``, ``synthesizer``, ``synthesizer_params``).
    :param aws_conn_id: AWS connection of the object store (overrides the connection).
    :param bucket: bucket for synthetic data and models (overrides the connection).
    """

    conn_name_attr = "synth_conn_id"
    default_conn_name = "synth_default"
    conn_type = "synth"
    hook_name = "Synthetic data (airflow-synth)"

    def __init__(
        self,
        synth_conn_id: str | None = None,
        *,
        aws_conn_id: str | None = None,
        bucket: str | None = None,
    ) -> None:
        super().__init__()
        self.synth_conn_id = synth_conn_id
        self._aws_conn_id = aws_conn_id
        self._bucket = bucket

    @cached_property
    def settings(self) -> dict[str, Any]:
        """The ``synth`` connection's extra as a dict ({} when no connection is used)."""
        if not self.synth_conn_id:
            return {}
        try:
            conn = self.get_connection(self.synth_conn_id)
        except Exception as exc:
            raise ConnectionConfigError(
                f"Airflow connection {self.synth_conn_id!r} (type 'synth') is not defined: {exc}. "
                "Create it, or leave synth_conn_id unset and pass aws_conn_id= and bucket=."
            ) from exc
        if conn.conn_type not in ("synth", None, ""):
            raise ConnectionConfigError(
                f"Connection {self.synth_conn_id!r} has type {conn.conn_type!r}; "
                "airflow-synth needs a connection of type 'synth' here."
            )
        raw = conn.extra_dejson or {}
        # The connection form stores fields either plainly or as ``extra__synth__<field>``.
        prefix = f"extra__{self.conn_type}__"
        extra = {k.removeprefix(prefix): v for k, v in raw.items() if v not in (None, "")}
        params = extra.get("synthesizer_params")
        if isinstance(params, str):
            try:
                extra["synthesizer_params"] = json.loads(params or "{}")
            except json.JSONDecodeError as exc:
                raise ConnectionConfigError(
                    f"Connection {self.synth_conn_id!r}: synthesizer_params is not JSON: {exc}"
                ) from exc
        return extra

    @property
    def aws_conn_id(self) -> str:
        return self._aws_conn_id or self.settings.get("aws_conn_id") or DEFAULT_AWS_CONN_ID

    @property
    def bucket(self) -> str:
        return self._bucket or self.settings.get("bucket") or DEFAULT_BUCKET

    def get_conn(self) -> S3ObjectStore:
        """The object store synthetic data and models go to."""
        return S3ObjectStore(self.aws_conn_id, self.bucket)

    def staging(self, override: str | None = None) -> StagingLocation:
        """Where this run's real rows are staged between tasks.

        In order: the task's own ``staging_dir`` (``override``; a folder or
        ``s3://bucket/prefix``), ``$SYNTH_STAGING_DIR`` (a local folder: the explicit
        LocalExecutor choice), the connection's ``staging``, else the private bucket
        ``<bucket>-staging`` through the same AWS connection (any worker can run any step).
        """
        chosen = override or os.environ.get(STAGING_ENV) or self.settings.get("staging")
        return StagingLocation.parse(chosen or f"s3://{self.bucket}-staging")

    def staging_store(self, location: StagingLocation) -> S3ObjectStore:
        """The object store of an object-store staging location: the connection's
        ``staging_aws_conn_id`` (default: the same AWS connection), server-side encryption
        requested on every upload."""
        conn_id = self.settings.get("staging_aws_conn_id") or self.aws_conn_id
        return S3ObjectStore(conn_id, str(location.bucket), encrypt=True)

    @property
    def sweep_after_hours(self) -> float:
        """How old (hours since its newest file) a run's leftovers must be before the sweeper
        removes them: the connection's ``sweep_after_hours``, default 24 (see
        :mod:`airflow_synth.core.sweep`)."""
        from airflow_synth.core.sweep import DEFAULT_SWEEP_AFTER

        value = self.settings.get("sweep_after_hours")
        if value in (None, ""):
            return DEFAULT_SWEEP_AFTER.total_seconds() / 3600
        try:
            hours = float(value)
        except (TypeError, ValueError):
            hours = -1.0
        if not hours >= 0:
            raise ConnectionConfigError(
                f"Connection {self.synth_conn_id!r}: sweep_after_hours must be a number of "
                f"hours >= 0, got {value!r}."
            )
        return hours

    def layout(self, dataset: str, run: str) -> DatasetLayout:
        return DatasetLayout(bucket=self.bucket, dataset=dataset, run=run)

    def synthesizer_spec(
        self, name: str | None = None, params: dict[str, Any] | None = None
    ) -> SynthesizerSpec:
        """Validated synthesizer: explicit name/params, else the connection's defaults."""
        chosen = name or self.settings.get("synthesizer") or DEFAULT_SYNTHESIZER
        merged = dict(self.settings.get("synthesizer_params") or {}) if not name else {}
        merged.update(params or {})
        return resolve_synthesizer(chosen, merged)

    def load_model(self, dataset: str, run: str, work_dir: Path) -> Any:
        """Download and load the model published with a run (to sample more rows later).

        The run's manifest says where its model is (``synthesis.model_uri``, under the
        publish attempt the manifest names); a run that was never published, or published
        without a model (a dry run), has none.
        """
        from airflow_synth.core.engine.profile_codec import load_model

        store = self.get_conn()
        local = store.download(self._model_key(dataset, run), Path(work_dir) / "model.pkl")
        try:
            return load_model(local)
        finally:
            local.unlink(missing_ok=True)

    def _model_key(self, dataset: str, run: str) -> str:
        """The key of the model a published run's manifest names (raises when none)."""
        from airflow_synth.core.errors import PublishError
        from airflow_synth.core.publish.store import read_manifest

        layout = self.layout(dataset, run)
        manifest = read_manifest(self.get_conn(), layout)
        if manifest is None:
            raise PublishError(
                f"No manifest at {layout.uri(layout.manifest_key)}: run {run!r} of dataset "
                f"{dataset!r} was not published, so it has no model."
            )
        model_uri = (manifest.get("synthesis") or {}).get("model_uri")
        if not model_uri:
            raise PublishError(
                f"{layout.uri(layout.manifest_key)} names no model: run {run!r} of dataset "
                f"{dataset!r} was published without one."
            )
        return layout.key_of(model_uri)

    def reuse_plan(self, dataset: str, settings: Any, run: str | None, work_dir: Path) -> Any:
        """What a train step decides on: the dataset's latest published model (``latest.json``
        -> its run's manifest -> the model folder's ``fingerprint.json``) and how to load it
        (``table_model.pkl``, downloaded only if the model is reused). No earlier model, one
        published before fingerprints, or reuse switched off: a plan without one (retrain).
        A record that cannot be read is logged and treated as none: never a failed run."""
        from airflow_synth.core.engine.reuse import (
            RECORD_FILE,
            TABLE_MODEL_FILE,
            ModelRecord,
            ReusePlan,
        )
        from airflow_synth.core.publish.store import read_latest
        from airflow_synth.core.steps.staged import load_staged

        plan = ReusePlan(settings, run=run)
        if not settings.enabled:
            return plan
        store = self.get_conn()
        try:
            latest = read_latest(store, dataset)
            if not latest or not latest.get("run"):
                return plan
            folder = self._model_key(dataset, str(latest["run"])).rsplit("/", 1)[0]
            raw = store.get_bytes(f"{folder}/{RECORD_FILE}")
            if raw is None:  # a model from before fingerprints were stored
                log.info("The latest model of %r has no %s: retraining", dataset, RECORD_FILE)
                return plan
            record = ModelRecord.from_dict(json.loads(raw))
        except Exception as exc:  # noqa: BLE001 - no reusable model: train, as before
            log.warning(
                "No reusable model found for %r (%s: %s); training a new one",
                dataset,
                type(exc).__name__,
                exc,
            )
            return plan

        def load() -> Any:
            local = store.download(
                f"{folder}/{TABLE_MODEL_FILE}", Path(work_dir) / TABLE_MODEL_FILE
            )
            try:
                return load_staged(local)
            finally:
                local.unlink(missing_ok=True)

        return ReusePlan(settings, record, load_model=load, run=run)

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's *Test* button: can the bucket be reached?"""
        try:
            self.get_conn().check()
        except ConnectionConfigError as exc:
            return False, str(exc)
        return True, f"Bucket {self.bucket!r} reachable through {self.aws_conn_id!r}."


class SynthStoreSettings:
    """Mixin for tasks that reach the object store: the three settings and the hook from them.

    Every operator that trains, publishes or checks takes the same ``aws_conn_id``,
    ``bucket`` and ``synth_conn_id`` and resolves them the same way (operator arguments
    win over the ``synth`` connection), so that rule lives here once.
    """

    aws_conn_id: str | None
    bucket: str | None
    synth_conn_id: str | None

    def set_store_settings(
        self, aws_conn_id: str | None, bucket: str | None, synth_conn_id: str | None
    ) -> None:
        self.aws_conn_id, self.bucket, self.synth_conn_id = aws_conn_id, bucket, synth_conn_id

    def synth_hook(self) -> SynthHook:
        return SynthHook(self.synth_conn_id, aws_conn_id=self.aws_conn_id, bucket=self.bucket)
