"""``POST /v1/readings``: a batch of readings, JSON or CSV, stored whole or not at all."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from urbanflow.errors import UnsupportedMediaError
from urbanflow.serving.deps import ServiceDep, WriterDep
from urbanflow.serving.ingest import parse_csv, parse_json
from urbanflow.serving.schemas import MAX_ROWS, ErrorOut, IngestOut, ReadingIn

router = APIRouter(prefix="/v1/readings", tags=["readings"])

_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            f"Up to {MAX_ROWS:,} readings: a JSON list of objects, or CSV with the header "
            "sensor_id,timestamp,value (an empty value means no reading)."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": ReadingIn.model_json_schema(),
                    "maxItems": MAX_ROWS,
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "",
    response_model=IngestOut,
    dependencies=[WriterDep],
    openapi_extra=_BODY,
    responses={
        401: {"model": ErrorOut, "description": "bearer token missing or wrong"},
        413: {"model": ErrorOut, "description": f"more than {MAX_ROWS:,} readings"},
        415: {"model": ErrorOut, "description": "neither JSON nor CSV"},
        422: {"model": ErrorOut, "description": "a row is invalid; nothing was stored"},
    },
)
async def post_readings(request: Request, service: ServiceDep) -> IngestOut:
    """Store a batch. A 2xx answer means it is committed to disk; on 4xx nothing was stored."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/json", "text/csv"):
        raise UnsupportedMediaError(
            f"content type {media!r} is not accepted; send application/json or text/csv"
        )
    body = await request.body()
    parse = parse_csv if media == "text/csv" else parse_json
    counts = await run_in_threadpool(lambda: service.ingest(parse(body)))
    return IngestOut(
        received=counts.received,
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        empty=counts.empty,
    )
