"""An auth manager for the UI tests: Airflow's SimpleAuthManager plus two restricted users.

The simple auth manager's roles (viewer, user, op, admin) cannot say "may read this DAG but
not its XComs" or "may not read this DAG at all", which is what the UI tests must refuse.
This subclass keeps every real check of its parent and denies, in addition:

- ``noxcom``: the XCom sub-entity of every DAG (the DAG itself stays readable);
- ``stranger``: every DAG (and "all DAGs") named in :data:`HIDDEN_DAGS`.

Configured like any auth manager (``AIRFLOW__CORE__AUTH_MANAGER=ui_auth_manager.
RestrictedAuthManager`` with this folder on ``PYTHONPATH``) in the API server the browser
test starts, and set directly as Airflow's auth manager in in-process tests.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

NO_XCOM_USER = "noxcom"
STRANGER_USER = "stranger"
HIDDEN_DAGS = {"esl_airbnb_bookings", "bad_quality_gate"}


class RestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self,
        *,
        method: Any,
        user: Any,
        access_entity: DagAccessEntity | None = None,
        details: Any = None,
    ) -> bool:
        name = getattr(user, "username", None)
        if name == NO_XCOM_USER and access_entity == DagAccessEntity.XCOM:
            return False
        dag_id = getattr(details, "id", None)
        if name == STRANGER_USER and (dag_id is None or dag_id in HIDDEN_DAGS):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
