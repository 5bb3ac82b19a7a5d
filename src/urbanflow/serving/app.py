"""The service's app factory: open the store and the model for the app's lifetime."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from urbanflow.errors import (
    AuthError,
    ConfigError,
    NotReadyError,
    PayloadTooLargeError,
    UnknownNameError,
    UnsupportedMediaError,
    UrbanflowError,
)
from urbanflow.serving.routes import (
    accuracy,
    alerts,
    dashboard,
    forecasts,
    health,
    model,
    readings,
    rebalancing,
    sensors,
)
from urbanflow.serving.service import LiveService, open_service
from urbanflow.serving.settings import ServeSettings
from urbanflow.version import __version__

# Most specific first: the first class an error is an instance of gives its status.
STATUS_OF_ERROR: tuple[tuple[type[UrbanflowError], int], ...] = (
    (AuthError, 401),
    (UnknownNameError, 404),
    (NotReadyError, 409),
    (PayloadTooLargeError, 413),
    (UnsupportedMediaError, 415),
    (ConfigError, 422),
    (UrbanflowError, 422),
)


def status_of(error: UrbanflowError) -> int:
    return next(status for kind, status in STATUS_OF_ERROR if isinstance(error, kind))


def describe_invalid(error: RequestValidationError) -> str:
    """FastAPI's list of parameter errors as the one line every other error gives, e.g.
    ``query parameter horizon: Input should be a valid integer (got 'x')``."""
    parts = []
    for problem in error.errors()[:3]:
        where, *path = (str(part) for part in problem.get("loc", ()))
        name = ".".join(path) or where
        kind = f"{where} parameter" if where in ("query", "path", "header") else where
        got = problem.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
        parts.append(f"{kind} {name}: {problem.get('msg', 'invalid')}{shown}")
    return "; ".join(parts) or "invalid request"


def create_app(settings: ServeSettings, service: LiveService | None = None) -> FastAPI:
    """The FastAPI app; the model and store open when it starts (unless ``service`` is one
    already open, as the CLI opens it to report a bad path in one line) and close when it
    stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = service or open_service(settings)
        # The model, torch and pandas leave ~250k long-lived objects; without freezing them,
        # every full collection walks them all (100-300 ms pauses seen in benchmarks/serving.py).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.service.close()

    app = FastAPI(
        title="urbanflow",
        version=__version__,
        summary="Live readings, forecasts and a map of a city's sensor network.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.forecast_answers = forecasts.ForecastAnswers()
    for module in (
        readings,
        sensors,
        forecasts,
        accuracy,
        alerts,
        rebalancing,
        model,
        health,
        dashboard,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=dashboard.ASSETS, check_dir=False), name="static")
    app.add_middleware(forecasts.QuickForecastReads)

    @app.exception_handler(UrbanflowError)
    async def user_error(request: Request, error: UrbanflowError) -> JSONResponse:
        status = status_of(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_invalid(error)}, status_code=422)

    return app
