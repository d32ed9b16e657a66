"""Airflow UI plugin: a "Metrics" tab on every DAG run, a "Models" page, and a task link.

The pages are served by a FastAPI app mounted on the api-server under /smpp and shown by the
UI in an iframe. Airflow does not authenticate plugin apps (a mounted app inherits none of the
core API's dependencies), so every route here resolves the caller from Airflow's JWT (the
`Authorization: Bearer` header, or the `_token` cookie the UI login sets, which the same-origin
iframe sends) and asks the auth manager for permission. What is shown comes from
`smpp.ui` (plain readers of the artifacts under SMPP_DATA_DIR).
The api-server must be restarted to pick up changes to this file.
"""

from __future__ import annotations

from urllib.parse import quote, urlparse

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from smpp.ui.web import RunRef, create_app

URL_PREFIX = "/smpp"
METRICS_ROUTE = "smpp-metrics"  # the UI serves the tab at /dags/<dag>/runs/<run>/plugin/smpp-metrics
MODELS_ROUTE = "smpp-models"
SMPP_DAG_PREFIX = "smpp"

_bearer = HTTPBearer(auto_error=False)


def _base_path() -> str:
    """Path part of [api] base_url, for deployments served under a sub-path."""
    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


async def current_user(request: Request, bearer: HTTPAuthorizationCredentials | None = Depends(_bearer)):
    """Airflow's own token check; any missing, expired or invalid token is a 401 here."""
    from airflow.api_fastapi.core_api.security import get_user

    try:
        return await get_user(request, None, bearer)
    except HTTPException as exc:
        # Airflow answers a malformed/forged JWT with 403; for this app it is simply "not authenticated"
        if exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, detail=exc.detail, headers={"WWW-Authenticate": "Bearer"}
            ) from exc
        raise


def _team_name(dag_id: str) -> str | None:
    from airflow.configuration import conf

    if not conf.getboolean("core", "multi_team", fallback=False):
        return None
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


def authorize_run(dag_id: str, user=Depends(current_user)) -> None:
    """Reading a run's metrics needs the same permission as reading the run itself."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    allowed = get_auth_manager().is_authorized_dag(
        method="GET",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=_team_name(dag_id)),
        user=user,
    )
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


def authorize_view(user=Depends(current_user)) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    if not get_auth_manager().is_authorized_view(access_view=AccessView.PLUGINS, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


def lookup_run(dag_id: str, run_id: str) -> RunRef | None:
    """The run's data interval from the metadata DB (the day its artifacts are keyed by)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.execute(
            select(DagRun.data_interval_start, DagRun.data_interval_end).where(
                DagRun.dag_id == dag_id, DagRun.run_id == run_id
            )
        ).first()
    if row is None:
        return None
    return RunRef(dag_id, run_id, row[0], row[1])


def run_metrics_path(dag_id: str, run_id: str) -> str:
    """The UI page (Metrics tab) of a run; ids are URL-encoded (run ids hold ':' and '+')."""
    return f"{_base_path()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/plugin/{METRICS_ROUTE}"


class RunMetricsLink(BaseOperatorLink):
    """'Run metrics' on every smpp task instance, pointing at its run's Metrics tab."""

    name = "Run metrics"

    def get_link(self, operator, *, ti_key) -> str:
        if not is_pipeline_dag(ti_key.dag_id):
            return ""  # other DAGs' tasks: no link (the API turns "" into null)
        return run_metrics_path(ti_key.dag_id, ti_key.run_id)


def is_pipeline_dag(dag_id: str) -> bool:
    return dag_id.startswith(SMPP_DAG_PREFIX)


app = create_app(
    run_lookup=lookup_run, authorize_run=authorize_run, authorize_view=authorize_view, is_pipeline_dag=is_pipeline_dag
)


class SmppUIPlugin(AirflowPlugin):
    name = "smpp_ui"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "smpp metrics"}]
    external_views = [
        {
            "name": "Metrics",
            "href": f"{_base_path()}{URL_PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": METRICS_ROUTE,
        },
        {
            "name": "Models",
            "href": f"{_base_path()}{URL_PREFIX}/models",
            "destination": "nav",
            "url_route": MODELS_ROUTE,
        },
    ]
    global_operator_extra_links = [RunMetricsLink()]
