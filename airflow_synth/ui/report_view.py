"""A small FastAPI app, mounted in the Airflow API server by a plugin, that shows reports.

``GET /synth/report?dag_id=..&run_id=..&task_id=..`` looks up the task's XCom (written by
the ESL load step: the published ``report.html`` URI and the AWS connection id; or, written
by a synthesize step whose gate failed, the quarantined report under
``<dataset>/_failed/<run>/``), reads the object through ``S3Hook`` and returns it. Only
reports that a task recorded can be shown, only to a logged-in user allowed to read that
DAG, and with a Content-Security-Policy that forbids scripts and network access from the
page.
"""

# No ``from __future__ import annotations`` here: FastAPI must see the real Annotated types.
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

app = FastAPI(title="airflow-synth reports", docs_url=None, redoc_url=None)


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


def _authorized(user: Any, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return get_auth_manager().is_authorized_dag(
        method="GET", user=user, details=DagDetails(id=dag_id)
    )


@app.get("/report", response_class=HTMLResponse)
async def report(
    dag_id: str,
    run_id: str,
    task_id: str,
    user: Annotated[Any, Depends(get_user)],
    map_index: int = -1,
) -> HTMLResponse:
    """The report.html of one ESL task instance (published, or quarantined by a gate)."""
    if not _authorized(user, dag_id):
        raise HTTPException(403, f"Not allowed to read DAG {dag_id}.")
    location = report_location(dag_id, run_id, task_id, map_index)
    html = read_report(location["report_uri"], location.get("aws_conn_id") or "aws_default")
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})
