"""`urbanflow datasets list | info | download | synth`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import TaskID
from rich.table import Table

from urbanflow.cli.common import console, progress_bar
from urbanflow.data.catalog import dataset_names, describe, describe_embedded, load_dataset
from urbanflow.data.download import CATALOGUE, download, is_downloaded
from urbanflow.data.synth import (
    SYNTH_KINDS,
    RoadParameters,
    SynthResult,
    TripCityParameters,
    WardParameters,
)
from urbanflow.data.trips import TripColumns, TripSummary, parse_bbox, trips_to_flows

app = typer.Typer(help="List, inspect and download datasets.", no_args_is_help=True)
synth_app = typer.Typer(
    help="Write seeded synthetic data (labelled synthetic): trips, hospital wards or roads.",
    no_args_is_help=True,
)
app.add_typer(synth_app, name="synth")


@app.command("list")
def datasets_list() -> None:
    """Built-in and downloadable datasets, and whether each is ready to use."""
    table = Table(header_style="bold")
    for column in ("name", "status", "description"):
        table.add_column(column)
    for name in dataset_names():
        if name in CATALOGUE:
            ready = is_downloaded(name)
            status = "downloaded" if ready else f"urbanflow datasets download {name}"
            table.add_row(name, status, CATALOGUE[name].description)
        else:
            table.add_row(name, "embedded", describe_embedded(name))
    console.print(table)


@app.command("download")
def datasets_download(
    name: Annotated[str, typer.Argument(help="metr-la, pems-bay, pems04 or pems08.")],
) -> None:
    """Fetch a standard dataset into the user cache and verify its checksums."""
    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def show(filename: str, done: int, total: int | None) -> None:
            if filename not in tasks:
                tasks[filename] = bar.add_task(filename, total=total)
            bar.update(tasks[filename], completed=done, total=total)

        folder = download(name, progress=show)
    console.print(f"{name} is ready in {folder}; use it as --dataset {name}")


@app.command("info")
def datasets_info(name: Annotated[str, typer.Argument(help="Built-in name or path.")]) -> None:
    """Sensors, steps, frequency, span, missing share and edges of a dataset."""
    dataset = load_dataset(name)
    meta = dataset.metadata
    first, last = dataset.timestamps[0], dataset.timestamps[-1]
    rows = {
        "name": meta.name,
        "about": describe(meta, dataset.kind, dataset.num_sensors, first, last),
        "quantity": f"{meta.quantity} ({meta.unit or 'no unit'})",
        "kind": f"{dataset.kind} ({dataset.kind_source})",
        "sensors": dataset.num_sensors,
        "steps": dataset.num_steps,
        "frequency": meta.frequency,
        "span": f"{first} to {last}",
        "missing": f"{100 * dataset.missing_fraction():.2f} %",
        "edges": dataset.graph.num_edges,
        "channels": ", ".join(meta.channels),
        "holidays": " ".join(filter(None, (meta.country, meta.subdivision))) or "none",
        "capacity": "none"
        if dataset.sensors.capacity is None
        else f"{int(np.isfinite(dataset.sensors.capacity).sum())} sensors",
        "null value": meta.null_value,
        "source": meta.source,
        "licence": meta.licence,
    }
    for key, value in rows.items():
        console.print(f"[bold]{key:>10}[/]  {value}")


@app.command("from-trips")
def datasets_from_trips(
    trips: Annotated[str, typer.Argument(help="Trip or tap records: CSV or Parquet, or a glob.")],
    zones: Annotated[str, typer.Option(help="h3:RES (0-15), grid:METRES or stops:FILE.")],
    out: Annotated[Path, typer.Option(help="Folder for departures/, arrivals/, od.parquet.")],
    frequency: Annotated[str, typer.Option(help="Time step: 15min, 1h, PT15M.")] = "15min",
    bbox: Annotated[str | None, typer.Option(help="S,W,N,E degrees; outside is counted.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone of naive times and steps.")] = "UTC",
    start_time_column: str = "start_time",
    start_lat_column: str = "start_lat",
    start_lon_column: str = "start_lon",
    end_time_column: str = "end_time",
    end_lat_column: str = "end_lat",
    end_lon_column: str = "end_lon",
    max_stop_distance: Annotated[
        float, typer.Option(help="stops: metres beyond which a record has no stop.")
    ] = 500.0,
    neighbours: Annotated[int, typer.Option(help="grid, stops: k of the zone graph.")] = 8,
    force: Annotated[
        bool, typer.Option(help="Write into a non-empty --out (replaces what it writes).")
    ] = False,
) -> None:
    """Count trip records per zone and step into city folders, plus origin-destination pairs."""
    columns = TripColumns(
        start_time_column,
        start_lat_column,
        start_lon_column,
        end_time_column,
        end_lat_column,
        end_lon_column,
    )
    with progress_bar() as bar:
        task = bar.add_task("counting trips", total=None, status="")

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, status=f"{done:,} records")

        summary = trips_to_flows(
            trips,
            zones,
            frequency,
            out,
            bbox=None if bbox is None else parse_bbox(bbox),
            timezone=timezone,
            columns=columns,
            max_stop_distance_m=max_stop_distance,
            neighbours=neighbours,
            force=force,
            progress=show,
        )
    print_trip_summary(summary)


def print_trip_summary(summary: TripSummary) -> None:
    """What was read, counted, left out and written."""
    console.print(
        f"Read {summary.records:,} records from {summary.source} ({summary.files} file(s)); "
        f"{summary.zones:,} zones received trips.",
        soft_wrap=True,
    )
    table = Table(header_style="bold")
    for column in ("", "counted", "missing", "outside bbox", "no zone", "steps"):
        table.add_column(column, justify="right")
    ends = {"departures": summary.departures, "arrivals": summary.arrivals}
    for name, counts in ends.items():
        if counts is not None:
            table.add_row(
                name,
                f"{counts.counted:,}",
                f"{counts.missing:,}",
                f"{counts.outside_bbox:,}",
                f"{counts.no_zone:,}",
                f"{summary.steps[name]:,}",
            )
    console.print(table)
    if summary.od_trips is not None:
        console.print(f"Origin-destination pairs: {summary.od_trips:,} trips.")
    for path in summary.written:
        console.print(f"Wrote {path}", soft_wrap=True)


def print_synth_result(result: SynthResult, unit: str) -> None:
    """What a generator wrote: how many ``unit`` (rows, hourly steps), what and where."""
    console.print(
        f"Wrote {result.rows:,} {unit} ({result.description}) to {result.path}", soft_wrap=True
    )


START_HELP = "First day, YYYY-MM-DD (default a Monday)."
TIMEZONE_HELP = "IANA time zone of the wall clock."
FORCE_HELP = "Overwrite what --out names."


@synth_app.command("trips")
def synth_trips(
    out: Annotated[Path, typer.Option(help="Table to write: .csv for CSV, else Parquet.")],
    zones: Annotated[int, typer.Option(help="Zones of the city.")] = 60,
    days: Annotated[int, typer.Option(help="Days of trips.")] = 28,
    trips_per_day: Annotated[float, typer.Option(help="Expected trips on a dry weekday.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed: the same options give the same trips.")] = 0,
    start: Annotated[str, typer.Option(help=START_HELP)] = "2026-03-02",
    timezone: Annotated[str, typer.Option(help=TIMEZONE_HELP)] = "Europe/Berlin",
    force: Annotated[bool, typer.Option(help=FORCE_HELP)] = False,
) -> None:
    """Trip records of a fictional city: commute peaks, weekends, rain days, gravity OD."""
    parameters = TripCityParameters(
        zones=zones,
        days=days,
        trips_per_day=trips_per_day,
        seed=seed,
        start=start,
        timezone=timezone,
    )
    print_synth_result(SYNTH_KINDS["trips"](out, parameters, force=force), "rows")


@synth_app.command("wards")
def synth_wards(
    out: Annotated[Path, typer.Option(help="City folder to write.")],
    wards: Annotated[int, typer.Option(help="Hospital wards.")] = 12,
    hospitals: Annotated[int, typer.Option(help="Hospital sites the wards share.")] = 3,
    days: Annotated[int, typer.Option(help="Days of hourly occupancy.")] = 28,
    seed: Annotated[int, typer.Option(help="Seed: the same options give the same data.")] = 0,
    start: Annotated[str, typer.Option(help=START_HELP)] = "2026-03-02",
    timezone: Annotated[str, typer.Option(help=TIMEZONE_HELP)] = "Europe/Berlin",
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> None:
    """Hourly occupied beds of hospital wards (kind occupancy, with capacities)."""
    parameters = WardParameters(
        wards=wards, hospitals=hospitals, days=days, seed=seed, start=start, timezone=timezone
    )
    print_synth_result(SYNTH_KINDS["wards"](out, parameters, force=force), "hourly steps")


@synth_app.command("roads")
def synth_roads(
    out: Annotated[Path, typer.Option(help="City folder to write.")],
    sensors: Annotated[int, typer.Option(help="Road sensors (along corridors).")] = 200,
    days: Annotated[int, typer.Option(help="Days of speeds.")] = 28,
    frequency: Annotated[str, typer.Option(help="Time step dividing a day: 5min, 15min.")] = "5min",
    seed: Annotated[int, typer.Option(help="Seed: the same options give the same data.")] = 0,
    start: Annotated[str, typer.Option(help=START_HELP)] = "2026-03-02",
    timezone: Annotated[str, typer.Option(help=TIMEZONE_HELP)] = "Europe/Berlin",
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> None:
    """Road speeds in km/h along corridors: travelling rush hours, incidents, outages."""
    parameters = RoadParameters(
        sensors=sensors, days=days, frequency=frequency, seed=seed, start=start, timezone=timezone
    )
    print_synth_result(SYNTH_KINDS["roads"](out, parameters, force=force), "time steps")
