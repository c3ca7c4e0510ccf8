"""A small FastAPI app, mounted in the Airflow API server by a plugin: reports and datasets.

``GET /synth/report?dag_id=..&run_id=..&task_id=..`` looks up the task's XCom (written by
the ESL load step: the published ``report.html`` URI and the AWS connection id; or, written
by a synthesize step whose gate failed, the quarantined report under
``<dataset>/_failed/<run>/``), reads the object through ``S3Hook`` and returns it. Access is
Airflow's own check for reading that task's XCom and task instance (the dependencies of the
public XCom and task-instance endpoints), so a user who may see the DAG but not its XComs
gets 403.

``GET /synth/datasets`` is the "Synthetic datasets" page (a menu entry of the Airflow UI):
every dataset in the synth bucket with its latest run, and ``/synth/datasets/<dataset>`` its
run history; report and manifest are served from here too (the browser cannot reach the S3
server). A user sees a dataset only when allowed to read the DAG that produced it (recorded
in the manifest). The logic and HTML are in :mod:`airflow_synth.ui.catalog`.

Every page carries :data:`PAGE_HEADERS`: a Content-Security-Policy that forbids scripts,
network access, forms and ``<base>``, and framing by other sites (the Airflow UI itself
embeds the datasets page), and ``nosniff``. Endpoints are plain ``def``: FastAPI runs them
in its threadpool, so a slow S3 read or DB query never stalls the API server's event loop.
"""

# No ``from __future__ import annotations`` here: FastAPI must see the real Annotated types.
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from airflow_synth.ui import catalog

REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
PAGE_HEADERS = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
#: Where the datasets page looks (Airflow config ``[synth]``, or ``AIRFLOW__SYNTH__*``).
CONFIG_SECTION = "synth"

app = FastAPI(title="airflow-synth reports", docs_url=None, redoc_url=None, openapi_url=None)

# The checks of Airflow's public ``GET .../xcomEntries`` and ``GET .../taskInstances``
# endpoints, reused as they are (module-level so tests can see exactly what is applied).
READ_XCOM = requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM)
READ_TASK_INSTANCE = requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE)


def _task_xcom(dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=run_id, key=key, dag_ids=dag_id, task_ids=task_id, map_indexes=map_index
        )
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


def report_location(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
    """The report's S3 URI and connection: the published one (the task's return XCom), else
    the one a failed gate quarantined (XCom ``failed_report``)."""
    from airflow_synth.runtime import FAILED_REPORT_XCOM_KEY

    for key in ("return_value", FAILED_REPORT_XCOM_KEY):
        value = _task_xcom(dag_id, run_id, task_id, map_index, key)
        if isinstance(value, dict) and value.get("report_uri"):
            return value
    raise HTTPException(404, f"No report for {dag_id} / {run_id} / {task_id}.")


def read_report(uri: str, aws_conn_id: str) -> str:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    if not uri.startswith("s3://") or not uri.endswith("/report.html"):
        raise HTTPException(400, "not a report URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return S3Hook(aws_conn_id=aws_conn_id).read_key(key=key, bucket_name=bucket)
    except Exception as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code not in ("NoSuchKey", "404"):
            raise
        # a quarantined report goes once a later attempt of the run publishes it; a
        # superseded attempt's files go once its grace has passed
        raise HTTPException(
            404,
            "This report is no longer stored: the run was published again since (open the "
            "report of its latest load task) or the attempt was pruned.",
        ) from exc


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers=PAGE_HEADERS)


@app.get(
    "/report",
    response_class=HTMLResponse,
    dependencies=[Depends(READ_XCOM), Depends(READ_TASK_INSTANCE)],
)
def report(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = -1,
) -> HTMLResponse:
    """The report.html of one ESL task instance (published, or quarantined by a gate)."""
    location = report_location(dag_id, run_id, task_id, map_index)
    html = read_report(location["report_uri"], location.get("aws_conn_id") or "aws_default")
    return _html(html)


# -- the "Synthetic datasets" page ------------------------------------------------------------
class S3Catalog:
    """:class:`~airflow_synth.ui.catalog.CatalogStore` over the synth bucket (S3Hook)."""

    def __init__(self, aws_conn_id: str, bucket: str) -> None:
        from airflow_synth.hooks.object_store import S3ObjectStore

        self.bucket = bucket
        self.aws_conn_id = aws_conn_id
        self._store = S3ObjectStore(aws_conn_id, bucket)

    def list_folders(self, prefix: str) -> list[str]:
        found = self._store.hook.list_prefixes(
            bucket_name=self.bucket, prefix=prefix, delimiter="/"
        )
        return [p.removeprefix(prefix).rstrip("/") for p in found or []]

    def get_bytes(self, key: str) -> bytes | None:
        return self._store.get_bytes(key)


def catalog_store() -> S3Catalog:
    """The synth bucket as the operators find it: ``[synth] conn_id`` (a ``synth``
    connection; default none), overridden by ``[synth] aws_conn_id`` / ``[synth] bucket``;
    else the operators' defaults (``aws_default``, ``synthetic``). Read per request: no I/O
    when the plugin is imported."""
    from airflow.configuration import conf

    from airflow_synth.hooks.synth import SynthHook

    def setting(key: str) -> str | None:
        return conf.get(CONFIG_SECTION, key, fallback=None) or None

    hook = SynthHook(
        setting("conn_id"), aws_conn_id=setting("aws_conn_id"), bucket=setting("bucket")
    )
    return S3Catalog(hook.aws_conn_id, hook.bucket)


StoreDep = Annotated[S3Catalog, Depends(catalog_store)]


def _may_read(request: Request, user: Any, dag_id: str | None, entity: Any) -> bool:
    """Airflow's own check: may ``user`` read DAG ``dag_id`` (its ``entity``: XComs, task
    instances; None = the DAG itself). ``dag_id`` None (a manifest that names no DAG) needs
    access to every DAG, asked of the auth manager directly: requires_access_dag without a
    DAG id would read one from the query string (``?dag_id=``), which the user chooses."""
    if dag_id is None:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().is_authorized_dag(
            method="GET", access_entity=entity, user=user, details=None
        )
    try:
        requires_access_dag(method="GET", access_entity=entity, param_dag_id=dag_id)(request, user)
    except HTTPException:
        return False
    return True


def _dag_access(*entities: Any) -> Any:
    """A dependency giving ``allowed(dag_id)``: all of ``entities`` of that DAG readable by
    this user (cached per request)."""

    def dependency(request: Request, user: Annotated[Any, Depends(get_user)]) -> catalog.Allowed:
        seen: dict[str | None, bool] = {}

        def allowed(dag_id: str | None) -> bool:
            if dag_id not in seen:
                seen[dag_id] = all(_may_read(request, user, dag_id, e) for e in entities)
            return seen[dag_id]

        return allowed

    return dependency


#: The datasets page, histories, manifests: readers of the DAG that produced the dataset.
dag_reader = _dag_access(None)
#: A report through the page: what /synth/report asks (the DAG's XComs and task instances),
#: so the page is no way around that check.
report_reader = _dag_access(None, DagAccessEntity.XCOM, DagAccessEntity.TASK_INSTANCE)

AllowedDep = Annotated[catalog.Allowed, Depends(dag_reader)]
ReportAllowedDep = Annotated[catalog.Allowed, Depends(report_reader)]


def _base(request: Request) -> str:
    """The app's own URL prefix as the browser sees it (``/synth`` or behind a base URL)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _now() -> datetime:
    return datetime.now(UTC)


@app.get("/datasets", response_class=HTMLResponse)
def datasets(request: Request, store: StoreDep, allowed: AllowedDep) -> HTMLResponse:
    """Every dataset in the synth bucket whose DAG the user may read, with its latest run."""
    entries = catalog.catalog(store, allowed)
    return _html(catalog.render_index(entries, _now(), _base(request), store.bucket))


def _check_names(*names: str) -> None:
    if not all(catalog.is_segment(n) for n in names):
        raise HTTPException(404, "No such dataset or run.")


@app.get("/datasets/{dataset}", response_class=HTMLResponse)
def dataset_history(
    dataset: str, request: Request, store: StoreDep, allowed: AllowedDep
) -> HTMLResponse:
    """One dataset's runs (published and refused by a gate) the user may see, newest first."""
    _check_names(dataset)
    rows = catalog.run_history(store, dataset, allowed)
    if not rows:
        raise HTTPException(404, "No such dataset, or none of its runs is yours to read.")
    return _html(catalog.render_history(dataset, rows, _now(), _base(request)))


def _readable(body: dict[str, Any] | None, dag_id: str | None, allowed: catalog.Allowed) -> None:
    # the same 404 for "missing" and "not yours": the page does not confirm what exists
    if body is None or not allowed(dag_id):
        raise HTTPException(404, "No such run, or it is not yours to read.")


def _report(store: S3Catalog, key: str | None) -> HTMLResponse:
    raw = store.get_bytes(key) if key else None
    if raw is None:
        raise HTTPException(404, "This run has no stored report.")
    return _html(raw.decode("utf-8"))


@app.get("/datasets/{dataset}/runs/{run}/report", response_class=HTMLResponse)
def run_report(dataset: str, run: str, store: StoreDep, allowed: ReportAllowedDep) -> HTMLResponse:
    """A published run's report.html, as its manifest names it."""
    _check_names(dataset, run)
    manifest = catalog.run_manifest(store, dataset, run)
    _readable(manifest, catalog.run_from_manifest(manifest or {}).dag_id, allowed)
    return _report(store, catalog.report_key(manifest or {}, store.bucket))


@app.get("/datasets/{dataset}/runs/{run}/manifest.json")
def run_manifest(dataset: str, run: str, store: StoreDep, allowed: AllowedDep) -> Response:
    """A published run's manifest (names, counts, scores; no cell values)."""
    _check_names(dataset, run)
    manifest = catalog.run_manifest(store, dataset, run)
    _readable(manifest, catalog.run_from_manifest(manifest or {}).dag_id, allowed)
    return Response(
        json.dumps(manifest, indent=2), media_type="application/json", headers=PAGE_HEADERS
    )


@app.get("/datasets/{dataset}/failed/{run}/report", response_class=HTMLResponse)
def failed_report(
    dataset: str, run: str, store: StoreDep, allowed: ReportAllowedDep
) -> HTMLResponse:
    """The report of a run a gate refused (``_failed/<run>/``)."""
    _check_names(dataset, run)
    index = catalog.failed_index(store, dataset, run)
    _readable(index, catalog.run_from_failed(index or {}).dag_id, allowed)
    uri = (index or {}).get("report_uri") or ""
    prefix = f"s3://{store.bucket}/{dataset}/_failed/{run}/"
    key = uri.removeprefix(f"s3://{store.bucket}/") if uri.startswith(prefix) else None
    return _report(store, key if key and key.endswith(".html") else None)


@app.get("/datasets/{dataset}/failed/{run}/failed.json")
def failed_json(dataset: str, run: str, store: StoreDep, allowed: AllowedDep) -> Response:
    """A refused run's index: which gates failed, when (names and counts only)."""
    _check_names(dataset, run)
    index = catalog.failed_index(store, dataset, run)
    _readable(index, catalog.run_from_failed(index or {}).dag_id, allowed)
    return Response(
        json.dumps(index, indent=2), media_type="application/json", headers=PAGE_HEADERS
    )
