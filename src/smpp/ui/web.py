"""The plugin's FastAPI app. Authentication and the DAG-run lookup are injected by the caller.

`plugins/smpp_ui.py` passes Airflow's JWT authentication and a metadata-DB lookup; keeping
them out of here keeps this module importable (and testable) without an Airflow install.
A run maps to its day by `data_interval_start`, never by its logical date (a manual run's
logical date is its interval end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from smpp.settings import Settings, get_settings
from smpp.ui import artifacts, render

# Plots are immutable per version; the pages are not (a run fills in while it executes).
FILE_CACHE = "private, max-age=3600"
PAGE_CACHE = "no-store"
# Pages are plain HTML + inline CSS/SVG: no script may run, only same-origin images load, and
# only the Airflow UI (same origin) may frame them.
PAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'"


@dataclass(frozen=True)
class RunRef:
    """What the metadata DB knows about a DAG run."""

    dag_id: str
    run_id: str
    data_interval_start: datetime | None
    data_interval_end: datetime | None

    @property
    def day(self) -> date | None:
        return self.data_interval_start.date() if self.data_interval_start else None


RunLookup = Callable[[str, str], RunRef | None]


def _html(text: str) -> HTMLResponse:
    return HTMLResponse(
        text,
        headers={"Cache-Control": PAGE_CACHE, "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"},
    )


def create_app(
    *,
    run_lookup: RunLookup,
    authorize_run: Callable[..., Any],
    authorize_view: Callable[..., Any],
    settings_provider: Callable[[], Settings] = get_settings,
    is_pipeline_dag: Callable[[str], bool] = lambda dag_id: True,
) -> FastAPI:
    """`authorize_*` are FastAPI dependencies that raise 401/403; every route uses one of them.

    The Metrics tab appears on every DAG's runs; `is_pipeline_dag` tells which DAGs write smpp
    artifacts, so another DAG's run is not shown smpp's numbers for the same day.
    """
    app = FastAPI(title="smpp metrics", docs_url=None, redoc_url=None, openapi_url=None)

    def _settings() -> Settings:
        return settings_provider()

    def _lookup() -> RunLookup:
        return run_lookup

    def urls(request: Request) -> tuple[render.FileUrl, Callable[[str], str], str]:
        # paths only (no scheme/host), so links survive a reverse proxy; root_path carries the mount prefix
        root = request.scope.get("root_path", "").rstrip("/")

        def file_url(version: str, name: str) -> str:
            return f"{root}/models/{quote(version, safe='')}/files/{quote(name, safe='')}"

        def model_url(version: str) -> str:
            return f"{root}/models/{quote(version, safe='')}"

        return file_url, model_url, f"{root}/models"

    @app.get("/dags/{dag_id}/runs/{run_id:path}", response_class=HTMLResponse, dependencies=[Depends(authorize_run)])
    def run_metrics(
        dag_id: str,
        run_id: str,
        request: Request,
        settings: Settings = Depends(_settings),
        lookup: RunLookup = Depends(_lookup),
    ) -> HTMLResponse:
        ref = lookup(dag_id, run_id)
        if ref is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {dag_id!r}")
        file_url, model_url, models_url = urls(request)
        end = ref.data_interval_end.isoformat() if ref.data_interval_end else "?"
        interval = f"{ref.data_interval_start.isoformat()} → {end}" if ref.data_interval_start else None
        pipeline = is_pipeline_dag(dag_id)
        run = artifacts.run_view(settings, ref.day) if ref.day and pipeline else None
        no_day = (
            f"{dag_id} is not an smpp pipeline DAG: it writes no smpp artifacts."
            if not pipeline
            else "This run has no data interval (triggered without a logical date?), so it maps to no day."
        )
        return _html(
            render.run_page(
                run,
                dag_id=dag_id,
                run_id=run_id,
                interval=interval,
                data_dir=str(settings.data_dir),
                file_url=file_url,
                model_url=model_url,
                models_url=models_url,
                no_day_reason=no_day,
            )
        )

    @app.get("/models", response_class=HTMLResponse, dependencies=[Depends(authorize_view)])
    def models(request: Request, settings: Settings = Depends(_settings)) -> HTMLResponse:
        _, model_url, _ = urls(request)
        return _html(
            render.models_page(artifacts.model_rows(settings), artifacts.champion_pointer(settings), model_url)
        )

    @app.get("/models.json", dependencies=[Depends(authorize_view)])
    def models_json(settings: Settings = Depends(_settings)) -> dict[str, Any]:
        rows = artifacts.model_rows(settings)
        return {"champion": artifacts.champion_pointer(settings), "versions": [vars(r) for r in rows]}

    @app.get("/models/{version}", response_class=HTMLResponse, dependencies=[Depends(authorize_view)])
    def model_version(version: str, request: Request, settings: Settings = Depends(_settings)) -> HTMLResponse:
        try:
            model = artifacts.model_view(settings, version)
        except artifacts.ArtifactNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        file_url, model_url, models_url = urls(request)
        return _html(render.version_page(model, file_url, model_url, models_url))

    # `name:path` so that "a/../b" reaches the confinement check (and gets a 404) instead of the router
    @app.get("/models/{version}/files/{name:path}", dependencies=[Depends(authorize_view)])
    def model_file(version: str, name: str, settings: Settings = Depends(_settings)) -> FileResponse:
        try:
            path, media_type = artifacts.model_file(settings, version, name)
        except artifacts.ArtifactNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return FileResponse(
            path, media_type=media_type, headers={"Cache-Control": FILE_CACHE, "X-Content-Type-Options": "nosniff"}
        )

    return app
