"""Dependencies shared by the routes: the running service and the write guard.

They are ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that cost
more than these lookups and, under many clients, waited for the interpreter lock.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from urbanflow.errors import AuthError
from urbanflow.serving.live import LiveModel
from urbanflow.serving.service import LiveService
from urbanflow.serving.store import ReadingStore

_bearer = HTTPBearer(auto_error=False, description="Required when URBANFLOW_TOKEN is set")


async def get_service(request: Request) -> LiveService:
    return request.app.state.service


async def get_store(request: Request) -> ReadingStore:
    return request.app.state.service.store


async def get_model(request: Request) -> LiveModel:
    return request.app.state.service.model


async def require_writer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let a write through when no token is configured or the bearer token matches."""
    expected: str | None = request.app.state.settings.token
    if expected is None:
        return
    if credentials is None:
        raise AuthError(
            "this server requires a bearer token for writes; send the header "
            "'Authorization: Bearer <token>' with the server's URBANFLOW_TOKEN"
        )
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise AuthError("the bearer token is wrong; use the server's URBANFLOW_TOKEN")


ServiceDep = Annotated[LiveService, Depends(get_service)]
StoreDep = Annotated[ReadingStore, Depends(get_store)]
ModelDep = Annotated[LiveModel, Depends(get_model)]
WriterDep = Depends(require_writer)
