"""The FastAPI application: predict, feedback, health, model info and metrics.

Heavy things (the model, the database engine, the registry client) are created in the lifespan, never at import.
"""

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import make_asgi_app
from starlette.routing import Route

from service import auth, problems, schemas
from service.guard import RequestGuard
from service.metrics import OTHER_TAG, ServiceMetrics
from service.model_holder import LoadedModel, ModelHolder, ModelSource
from tagwatch.observability import accepted_request_id, request_id
from tagwatch.registry.resolver import ChampionResolver
from tagwatch.settings import Settings, get_settings
from tagwatch.text import TextInput, detect_format

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from service.requestlog import RequestLogWriter

log = logging.getLogger(__name__)
# One line per request when TAGWATCH_ACCESS_LOG is on (uvicorn's own access log stays off: it knows no request id).
access_log = logging.getLogger("tagwatch.access")
MAX_LOGGED_PATH = 512

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (never by raw path: bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template.startswith("/reports"):
                template = "/reports"
            method = scope.get("method", "GET")
            self.metrics.http_requests.labels(template, method, f"{status // 100}xx").inc()
            self.metrics.http_duration.labels(template, method).observe(time.perf_counter() - start)


class RequestContextMiddleware:
    """Gives every HTTP request an id: the client's ``X-Request-ID`` when it is a bounded printable token, else a new
    one. The id is in the response's ``X-Request-ID`` header and in every log line written while the request runs
    (``tagwatch.observability.RequestIdFilter``); with ``access_log``, one line per request (method, path, status,
    duration; never the body or the query string)."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        incoming = next((v.decode("latin-1") for k, v in headers if k.lower() == b"x-request-id"), None)
        rid = accepted_request_id(incoming)
        header = (b"x-request-id", rid.encode("ascii"))
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*kept, header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._log(scope, status, time.perf_counter() - start)
            request_id.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int, duration: float) -> None:
        # The path as the client sent it (percent-encoded: no control characters reach a text log), bounded.
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
        path = path.split("?", 1)[0][:MAX_LOGGED_PATH]
        method = str(scope.get("method", ""))
        access_log.info(
            "%s %s %d %.1f ms",
            method,
            path,
            status,
            duration * 1000,
            extra={"method": method, "path": path, "status": status, "duration_seconds": round(duration, 6)},
        )


class PrometheusEndpoint:
    """``/metrics``: prometheus_client's ASGI app (gzip when the scraper accepts it, OpenMetrics when it asks for
    it). Counted by the metrics middleware under its ``path``: a Starlette route of an ASGI app does not put itself
    in ``scope["route"]`` as FastAPI's routes do, so the endpoint names itself."""

    def __init__(self, registry: Any, path: str = "/metrics") -> None:
        self.app = make_asgi_app(registry)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        await self.app(scope, receive, send)


class AppState:
    """What the lifespan builds and the routes use."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics, holder: ModelHolder, engine: "Engine") -> None:
        self.settings = settings
        self.metrics = metrics
        self.holder = holder
        self.engine = engine
        self.writer: RequestLogWriter | None = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tagwatch
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def _serving(state: AppState) -> LoadedModel:
    loaded = state.holder.current
    if loaded is None:
        raise HTTPException(503, "No model is being served yet: train one with `tagwatch train`.")
    return loaded


def _record(state: AppState, loaded: LoadedModel, tags: list[tuple[str, float]]) -> None:
    m = state.metrics
    m.predictions.inc()
    if tags:
        m.top_score.observe(tags[0][1])
    for tag, score in tags:
        m.predicted_tags.labels(tag if tag in loaded.label_tags else OTHER_TAG).inc()
        m.prediction_score.observe(score)


def _log_prediction(
    state: AppState,
    *,
    request_id: str,
    question: schemas.QuestionFields,
    loaded: LoadedModel,
    tags: list[tuple[str, float]],
    latency: float,
) -> None:
    if state.writer is None:
        return
    from service.requestlog import PredictionRow

    state.writer.submit_prediction(
        PredictionRow(
            id=request_id,
            created_at=datetime.now(UTC),
            title=question.title,
            body=question.body,
            body_format=detect_format(question.body),
            predicted=[{"tag": t, "score": round(s, 6)} for t, s in tags],
            model_version=loaded.version,
            latency_seconds=latency,
        )
    )


def create_app(settings: Settings | None = None, *, source: ModelSource | None = None) -> FastAPI:
    """Build the app. ``source`` defaults to the MLflow registry named by the settings.

    Raises ``service.auth.ProductionConfigError`` for settings production must not serve with (no feedback keys).
    """
    settings = settings or get_settings()
    auth.check_settings(settings)
    metrics = ServiceMetrics()
    auth.init_metrics(metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        auth.log_configuration(settings)
        settings.home.mkdir(parents=True, exist_ok=True)
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
        # The champion is read from the registry's tables without the MLflow client (see tagwatch.registry.resolver).
        model_source: ModelSource = source if source is not None else ChampionResolver.from_settings(settings)
        holder = ModelHolder(
            model_source,
            metrics=metrics,
            model_name=settings.model_name,
            label_tags=settings.metrics_top_tags,
        )
        from tagwatch.db import make_engine, upgrade_database

        # The champion loads (~1 s) in a thread while the database is migrated and the request log starts.
        loading = asyncio.create_task(anyio.to_thread.run_sync(holder.check_and_reload))
        try:
            if settings.auto_migrate:
                await anyio.to_thread.run_sync(upgrade_database, settings.db_url)
            state = AppState(
                settings,
                metrics,
                holder,
                make_engine(settings.db_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow),
            )
            app.state.tagwatch = state
            if settings.log_enabled:
                from service.requestlog import RequestLogWriter

                state.writer = RequestLogWriter(
                    state.engine,
                    queue_size=settings.log_queue_size,
                    queue_bytes=settings.log_queue_bytes,
                    batch_size=settings.log_batch_size,
                    flush_interval=settings.log_flush_interval_seconds,
                    spill_dir=settings.spill_dir,
                    spill_max_bytes=settings.spill_max_bytes,
                    metrics=metrics,
                )
                state.writer.start()
        finally:
            await loading
        reloader = asyncio.create_task(_reload_loop(holder, settings.reload_interval_seconds))
        try:
            yield
        finally:
            reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloader
            if state.writer is not None:
                await anyio.to_thread.run_sync(state.writer.stop, settings.log_drain_seconds)
            state.engine.dispose()
            if source is None and isinstance(model_source, ChampionResolver):  # ours to close
                model_source.dispose()

    app = FastAPI(
        title="tagwatch",
        summary="Tag suggestions for Stack Overflow questions, with drift monitoring.",
        description="Every error is an RFC 9457 problem (`application/problem+json`): `type`, `title`, `status`, "
        "`detail`; a 422 lists its field `errors`. Request bodies larger than the configured limit get a 413 before "
        "they are parsed.",
        version="0.1.0",
        lifespan=lifespan,
    )
    # The guard runs first (outermost but for the metrics, which count what it refuses too).
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_request_bytes,
        body_timeout=settings.request_body_timeout_seconds,
        max_in_flight=settings.max_concurrent_requests,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Outermost: the guard's refusals and the metrics middleware's work carry the request id too.
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)
    problems.install(app)
    api = schemas.request_models(schemas.Limits.from_settings(settings))
    # Every route can answer these: 413/408/503 from the guard, 500 from a bug.
    common = problems.responses(400, 408, 413, 500, 503)
    # The name of the key a request presents (401/403 without a valid one), or None on a route left open. The
    # document declares the bearer scheme and the 401/403 answers on exactly the routes that require a key.
    feedback_key = auth.require_key(settings.feedback_keys, route="/feedback", metrics=metrics)
    predict_key = auth.require_key(settings.predict_keys, route="/predict", metrics=metrics)
    batch_key = auth.require_key(settings.predict_keys, route="/predict/batch", metrics=metrics)
    predict_responses = problems.responses(422) | auth.responses(settings.predict_keys) | common

    @app.get("/health", response_model=schemas.Health, responses=problems.responses(500), summary="Liveness")
    async def health() -> schemas.Health:
        """Liveness: the process answers. Never depends on the model or the database."""
        return schemas.Health(status="ok")

    @app.get("/ready", response_model=schemas.Readiness, responses=problems.responses(500, 503), summary="Readiness")
    async def ready(state: StateDep) -> Response:
        """Readiness: a model is loaded. The database is reported, not required: while it is away predictions are
        still answered and their log spills to disk, so an outage of the shared database must not take every replica
        out of rotation at once."""
        from tagwatch.db import ping

        loaded = state.holder.current
        try:
            await anyio.to_thread.run_sync(ping, state.engine)
            database = "ok"
        except Exception:
            database = "unreachable"
        version = loaded.version if loaded else None
        if loaded is None:
            return problems.problem_response(
                503, "no model loaded yet: not ready for traffic", model_version=version, database=database
            )
        return JSONResponse(schemas.Readiness(status="ready", model_version=version, database=database).model_dump())

    @app.post(
        "/predict",
        response_model=schemas.Prediction,
        responses=predict_responses,
        summary="Suggest tags for a question",
    )
    async def predict(
        question: api.Question,  # type: ignore[name-defined]
        state: StateDep,
        _key: Annotated[str | None, Depends(predict_key)],
    ) -> schemas.Prediction:
        """The tags the served model suggests for one question, best first. The answer's `request_id` names the
        prediction in the request log: send it to `/feedback` with the true tags."""
        start = time.perf_counter()
        loaded = _serving(state)
        # ~2 ms of CPU: cheaper inline than a hop to the thread pool.
        tags = loaded.model.predict([TextInput(question.title, question.body)])[0]
        request_id = uuid.uuid4().hex
        latency = time.perf_counter() - start
        _record(state, loaded, tags)
        _log_prediction(state, request_id=request_id, question=question, loaded=loaded, tags=tags, latency=latency)
        return schemas.Prediction(
            request_id=request_id,
            tags=[schemas.TagScore(tag=t, score=s) for t, s in tags],
            model_version=loaded.version,
        )

    @app.post(
        "/predict/batch",
        response_model=schemas.BatchResponse,
        responses=predict_responses,
        summary="Suggest tags for several questions",
    )
    async def predict_batch(
        batch: api.BatchRequest,  # type: ignore[name-defined]
        state: StateDep,
        _key: Annotated[str | None, Depends(batch_key)],
    ) -> schemas.BatchResponse:
        """The tags for each question of the batch, in request order, all from one model version; each prediction
        has its own `request_id` for `/feedback`."""
        start = time.perf_counter()
        loaded = _serving(state)
        items = [TextInput(q.title, q.body) for q in batch.questions]
        results = await anyio.to_thread.run_sync(loaded.model.predict, items)
        latency = (time.perf_counter() - start) / len(items)
        out = []
        for question, tags in zip(batch.questions, results, strict=True):
            request_id = uuid.uuid4().hex
            _record(state, loaded, tags)
            _log_prediction(state, request_id=request_id, question=question, loaded=loaded, tags=tags, latency=latency)
            out.append(
                schemas.BatchPrediction(request_id=request_id, tags=[schemas.TagScore(tag=t, score=s) for t, s in tags])
            )
        return schemas.BatchResponse(model_version=loaded.version, predictions=out)

    @app.post(
        "/feedback",
        response_model=schemas.FeedbackResponse,
        responses=problems.responses(404, 422) | auth.responses(settings.feedback_keys) | common,
        summary="Send the true tags of a prediction",
    )
    async def feedback(
        body: api.FeedbackRequest,  # type: ignore[name-defined]
        state: StateDep,
        key_name: Annotated[str | None, Depends(feedback_key)],
    ) -> schemas.FeedbackResponse:
        """Record the true tags of a logged request. Every submission is a new record (with the name of the key that
        sent it); the latest of a request counts."""
        if state.writer is None:
            raise HTTPException(503, "The request log is disabled on this service, so feedback cannot be stored.")
        from service.requestlog import FeedbackRow
        from tagwatch.db import request_exists

        tags = list(dict.fromkeys(body.tags))
        if not state.writer.is_pending(body.request_id):
            try:
                known = await anyio.to_thread.run_sync(lambda: request_exists(state.engine, request_id=body.request_id))
            except Exception as exc:
                raise HTTPException(503, "The request log database is unreachable; retry later.") from exc
            if not known:
                raise HTTPException(404, f"Unknown request_id {body.request_id}: no prediction with that id.")
        state.writer.submit_feedback(
            FeedbackRow(
                id=uuid.uuid4().hex,
                request_id=body.request_id,
                tags=tags,
                received_at=datetime.now(UTC),
                key_name=key_name,
            )
        )
        state.metrics.feedback.inc()
        return schemas.FeedbackResponse(request_id=body.request_id, tags=tags, status="recorded")

    @app.get(
        "/model",
        response_model=schemas.ModelResponse,
        responses=problems.responses(500, 503),
        summary="The model being served",
    )
    async def model_info(state: StateDep) -> schemas.ModelResponse:
        """Name, version, training window, hold-out metrics and parameters of the model this replica serves (a 503
        problem while none is loaded)."""
        loaded = _serving(state)
        return schemas.ModelResponse(
            name=state.settings.model_name,
            version=loaded.version,
            loaded_at=loaded.loaded_at.isoformat(),
            n_tags=len(loaded.model.tags),
            data_window=loaded.data_window,
            metrics=loaded.metrics,
            params=loaded.params,
        )

    endpoint = PrometheusEndpoint(metrics.registry)
    app.router.routes.append(Route(endpoint.path, endpoint, methods=["GET"], include_in_schema=False))

    reports = Path(settings.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)

    @app.get("/reports/latest", include_in_schema=False)
    async def latest_report() -> Response:
        """The newest drift report (a stable link for alerts and dashboards)."""
        from tagwatch.reports import latest_report_name

        name = latest_report_name(reports)
        if name is None:
            return problems.problem_response(404, "no drift report yet: the monitor has not run")
        return RedirectResponse(f"/reports/{name}", status_code=307)

    reports_app = StaticFiles(directory=reports, html=True, check_dir=False)
    app.mount("/reports", WithHeaders(reports_app, REPORT_HEADERS), name="reports")
    return app


# Drift reports embed text that users sent (characteristic examples of a drifted window). They are written
# neutralised (monitor.report), and served so that even a script that got in could do nothing: `sandbox` gives the
# page an opaque origin (no cookies, no storage, no same-origin requests to this API), and the report's own inline
# scripts and styles are all it may load — no eval, no network at all (connect-src, img-src limited to inline data).
# Checked in headless Chromium: the Evidently report (plotly charts included) renders the same under this policy.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; "
    "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class WithHeaders:
    """An ASGI app that adds fixed headers to every response of the app it wraps."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.names = {k for k, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message["headers"] = kept + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def jittered(interval: float, rng: random.Random) -> float:
    """A wait of ``interval`` +- 50 %: replicas started together (a rollout, an autoscaler step) spread their
    registry checks over the interval instead of polling in lockstep (docs/scaling.md)."""
    return interval * rng.uniform(0.5, 1.5)


async def _reload_loop(holder: ModelHolder, interval: float) -> None:
    rng = random.Random()
    while True:
        await asyncio.sleep(jittered(interval, rng))
        try:
            await anyio.to_thread.run_sync(holder.check_and_reload)
        except Exception:  # the registry being briefly unreachable must not stop the loop
            log.exception("checking the champion alias failed")
