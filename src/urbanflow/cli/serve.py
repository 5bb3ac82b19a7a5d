"""`urbanflow serve`: the HTTP API and map dashboard over a model bundle and a store."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from urbanflow.cli.common import console
from urbanflow.errors import ConfigError
from urbanflow.serving.settings import TOKEN_VARIABLE, ServeSettings

if TYPE_CHECKING:  # the service imports torch: only when a command serves
    from urbanflow.serving.service import LiveService


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_command(
        model_dir: Annotated[Path, typer.Option(help="A bundle from `urbanflow train`.")],
        store: Annotated[
            Path, typer.Option(help="DuckDB file of readings (created when missing).")
        ] = Path("readings.duckdb"),
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        issue_share: Annotated[
            float,
            typer.Option(
                help="Share of the model's sensors whose readings complete a step and issue "
                "its forecast (a reading for a later step also does)."
            ),
        ] = 0.8,
        levels: Annotated[
            str,
            typer.Option(
                help="Interval levels in percent of issued forecasts (when the bundle has a "
                "calibration); 'none' for no intervals."
            ),
        ] = "80,95",
        keep_forecasts: Annotated[
            str,
            typer.Option(
                help="How long stored forecasts are kept, behind the newest issue: '7d', '12h'; "
                "'forever' keeps them all."
            ),
        ] = "7d",
        alerts: Annotated[
            Path | None,
            typer.Option(
                help="A TOML file of alert rules, checked against the model before serving; "
                "webhooks are signed with URBANFLOW_WEBHOOK_SECRET."
            ),
        ] = None,
    ) -> None:
        """Serve readings, forecasts and the dashboard. Set URBANFLOW_TOKEN to guard writes."""
        import uvicorn

        from urbanflow.models.conformal import parse_levels
        from urbanflow.serving.app import create_app
        from urbanflow.serving.service import open_service

        settings = ServeSettings(
            model_dir,
            store,
            os.environ.get(TOKEN_VARIABLE) or None,
            issue_share=issue_share,
            levels=parse_levels(levels),
            keep_forecasts=parse_keep(keep_forecasts),
            alerts=alerts,
        )
        service = open_service(settings)  # here, so that a bad path or rule fails in one line
        report_service(service, settings)
        if settings.token is None and host not in ("127.0.0.1", "localhost", "::1"):
            console.print(
                f"[yellow]warning:[/] listening on {host} with open writes: anyone who reaches "
                f"port {port} can post readings; set {TOKEN_VARIABLE}"
            )
        uvicorn.run(create_app(settings, service), host=host, port=port, log_level="info")


_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "min": "minutes", "s": "seconds"}


def parse_keep(text: str) -> timedelta | None:
    """``--keep-forecasts``: a positive duration such as ``7d``, ``36h``, ``90min``, ``2w``;
    ``forever``: None (keep all)."""
    cleaned = text.strip().lower()
    if cleaned == "forever":
        return None
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]+)", cleaned)
    unit = _UNITS.get(found.group(2)) if found else None
    keep = timedelta(**{unit: float(found.group(1))}) if found and unit else None
    if keep is None or keep <= timedelta(0):
        raise ConfigError(
            f"--keep-forecasts {text!r} is not a positive duration; give e.g. 7d, 36h, 90min "
            "or forever"
        )
    return keep


def report_service(service: LiveService, settings: ServeSettings) -> None:
    """Say what the open service's model and store hold, and whether writes need a token."""
    model, stored = service.model, service.store.count()
    console.print(
        f"Model [bold]{model.name}[/] (version {model.version}) for {len(model.sensors)} "
        f"sensors of {model.metadata.name}; store {settings.store_path} holds {stored:,} readings."
    )
    issued = service.store.issued_span()
    if issued is not None:
        zone = model.metadata.timezone
        console.print(
            f"It holds {issued[2]:,} issued forecasts, the newest issued at "
            f"{issued[1].tz_convert(zone).isoformat()}; issuing goes on from there."
        )
    if service.alerts is not None:
        from urbanflow.serving.alerts.webhooks import SECRET_VARIABLE

        rules, hooks = service.alerts.rules, {u for r in service.alerts.rules for u in r.webhooks}
        signed = "signed" if os.environ.get(SECRET_VARIABLE) else f"unsigned: set {SECRET_VARIABLE}"
        console.print(
            f"Alerts: {len(rules)} rules from {settings.alerts}, "
            f"{len(hooks)} webhook URLs ({signed}); GET /v1/alerts lists them."
        )
    guard = "need a bearer token" if settings.token else f"are open (set {TOKEN_VARIABLE})"
    console.print(f"Writes {guard}. Dashboard at /, API docs at /docs.")
