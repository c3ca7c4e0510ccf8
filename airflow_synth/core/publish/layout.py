"""The one function family that decides where outputs live.

Every location is derived from (bucket, dataset, run), so a re-run of the same DAG run
overwrites its own output and nothing else, and readers can always find a run's manifest
without listing a folder::

    s3://<bucket>/<dataset>/<run>/data.parquet      synthetic rows
    s3://<bucket>/<dataset>/<run>/data.csv          (optional)
    s3://<bucket>/<dataset>/<run>/metadata.json     SDV metadata, value-revealing keys removed
    s3://<bucket>/<dataset>/<run>/manifest.json     written LAST: the run exists once it does
    s3://<bucket>/<dataset>/latest.json             pointer to the newest published manifest
    s3://<bucket>/_models/<dataset>/<run>/model.pkl fitted synthesizer (derived from real data)
    s3://<bucket>/<dataset>/_failed/<run>/          a run that failed a gate: its reports only
                                                    (report.html, quality.json, ..., failed.json)

A run name never starts with ``_`` (:func:`safe_key_part` strips it), so ``_failed`` cannot
collide with a run folder, and nothing that reads runs (manifests, ``latest.json``) ever
looks inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_synth.core.names import safe_key_part

MODELS_PREFIX = "_models"
#: Folder (under the dataset) for the reports of runs that failed a gate.
FAILED_DIR = "_failed"


@dataclass(frozen=True)
class DatasetLayout:
    """Keys of one published run of one dataset."""

    bucket: str
    dataset: str
    run: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", safe_key_part(self.dataset))
        object.__setattr__(self, "run", safe_key_part(self.run))

    @property
    def run_prefix(self) -> str:
        return f"{self.dataset}/{self.run}/"

    def key(self, name: str) -> str:
        return f"{self.run_prefix}{name}"

    def data_key(self, fmt: str = "parquet") -> str:
        return self.key(f"data.{fmt}")

    @property
    def metadata_key(self) -> str:
        return self.key("metadata.json")

    @property
    def manifest_key(self) -> str:
        return self.key("manifest.json")

    @property
    def latest_key(self) -> str:
        return f"{self.dataset}/latest.json"

    @property
    def model_prefix(self) -> str:
        return f"{MODELS_PREFIX}/{self.dataset}/{self.run}/"

    @property
    def model_key(self) -> str:
        return f"{self.model_prefix}model.pkl"

    @property
    def model_info_key(self) -> str:
        return f"{self.model_prefix}model.json"

    @property
    def failed_prefix(self) -> str:
        """Quarantine of this run's reports when it failed a gate: never data or a model."""
        return f"{self.dataset}/{FAILED_DIR}/{self.run}/"

    def failed_key(self, name: str) -> str:
        return f"{self.failed_prefix}{name}"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def dataset_uri(self) -> str:
        """The dataset as a whole: the URI of its Airflow Asset (no trailing slash, as
        Airflow normalises Asset URIs)."""
        return f"s3://{self.bucket}/{self.dataset}"
