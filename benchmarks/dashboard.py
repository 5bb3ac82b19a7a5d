"""The dashboard at city scale: how fast headless Chromium shows 10,000 sensors.

    .venv/bin/python benchmarks/dashboard.py [--city DIR --model-dir DIR] [--loads 7]
        [--compare REV] [--output benchmarks/results]

Starts a real `urbanflow serve` (benchmarks/serving.py's ``serve``: a subprocess on 127.0.0.1,
a fresh store, OMP_NUM_THREADS=1) over a bundle of a synthetic road city (``--city`` and
``--model-dir``, or made here: `urbanflow datasets synth roads --sensors 10000 --days 2` and
`urbanflow train --model stid --max-epochs 1 --time-budget 0.05`, about 2 minutes), posts the
city's last 12 steps (one POST a step) and waits for their forecast. Then, ``--loads`` times,
a new page in a new browser context (nothing cached) of Debian's Chromium (headless, 1400 x 850):

- ``first_draw_ms``: from the start of navigation until the map has drawn every sensor (grey:
  the page has the sensors and the graph but not yet the forecasts; polled each animation
  frame);
- ``load_ms``: the same until every sensor with a forecast is in its forecast colour (this
  includes fetching and reading every horizon's forecast, 27 MB of JSON at 10,000 sensors);
- ``draw_ms``: one whole redraw of the canvas (edges, every sensor, rings), as the page times
  it, over the 12 redraws that moving the horizon slider from 1 to 12 causes;
- ``slider_ms``: from moving the slider to the end of the next frame's work on the main thread
  (recolouring every sensor, the legend, the redraw, style, layout and paint);
- ``hit_test_us``: one look-up of the sensor under a point (a click), over 10,000 random points.

Medians over the loads (each load's own median for the per-redraw figures). ``--compare REV``
measures ``first_draw_ms``, ``load_ms`` and ``slider_ms`` of the page at git revision REV as
well (its dashboard.js, .css and index.html served in place of the installed ones), e.g. the
SVG map before the canvas. Prints a table and writes ``dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from playwright.sync_api import Browser, Page, Route, sync_playwright
from provenance import cpu_name, git_commit

from serving import serve
from urbanflow.data.catalog import load_dataset

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
VIEWPORT = {"width": 1400, "height": 850}
ASSETS = ("dashboard.js", "dashboard.css")
STEPS = 12  # readings posted per sensor: the model's input window
TIMEOUT_MS = 120_000

# Page-side measurements, the same for the canvas map and an SVG one.
DRAWN = {
    "canvas": "(n) => Number(document.querySelector('#map')?.dataset.drawn ?? 0) === n",
    "svg": "(n) => document.querySelectorAll('circle.sensor').length === n",
}
COLOURED = {
    "canvas": "(n) => Number(document.querySelector('#map')?.dataset.coloured ?? 0) === n",
    "svg": "(n) => document.querySelectorAll('circle.sensor:not(.no-forecast)').length === n",
}
# The slider from 1 to its end, one step a frame: ms from each input event to the end of the
# main thread's work for the frame after it (a task queued from the next animation frame runs
# after that frame's style, layout and paint).
SLIDER = """async () => {
    const slider = document.querySelector("#horizon");
    const times = [];
    for (let h = 1; h <= Number(slider.max); h++) {
        const began = performance.now();
        slider.value = String(h);
        slider.dispatchEvent(new Event("input"));
        await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
        times.push(performance.now() - began);
        draws.push(Number(document.querySelector("#map").dataset.drawMs ?? NaN));
    }
    return times;
}"""
HIT_TEST = """() => {
    const box = document.querySelector("#map").getBoundingClientRect();
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const points = Array.from({ length: 10000 }, () => [
        box.left + random() * box.width, box.top + random() * box.height]);
    const began = performance.now();
    let found = 0;
    for (const [x, y] of points) if (urbanflowMap.sensorAt(x, y) !== null) found += 1;
    return { us: ((performance.now() - began) * 1000) / points.length, found };
}"""


def make_bundle(folder: Path, sensors: int) -> tuple[Path, Path]:
    """A synthetic road city of ``sensors`` sensors over 2 days and an STID bundle on it."""
    urbanflow = str(Path(sys.executable).with_name("urbanflow"))
    city, bundle = folder / "city", folder / "bundle"
    synth = [urbanflow, "datasets", "synth", "roads", "--sensors", str(sensors), "--days", "2"]
    train = ["--max-epochs", "1", "--time-budget", "0.05", "--seed", "0", "--out", str(bundle)]
    for command in (
        [*synth, "--seed", "0", "--out", str(city)],
        [urbanflow, "train", "--dataset", str(city), "--model", "stid", *train],
    ):
        print("running:", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return city, bundle


def post_last_steps(url: str, city: Path) -> tuple[int, int]:
    """POST the city's last ``STEPS`` steps, one step a request; wait for their forecast.
    Returns the number of sensors and of those with a forecast (an outage can leave a sensor
    too few readings)."""
    dataset = load_dataset(str(city))
    ids = list(dataset.sensors.ids)
    with httpx.Client(base_url=url, timeout=300) as client:
        for t in range(len(dataset.timestamps) - STEPS, len(dataset.timestamps)):
            stamp = dataset.timestamps[t].isoformat()
            values = dataset.readings[t, :, 0]
            rows = [
                {"sensor_id": s, "timestamp": stamp, "value": None if np.isnan(v) else float(v)}
                for s, v in zip(ids, values, strict=True)
            ]
            client.post("/v1/readings", json=rows).raise_for_status()
        deadline = time.monotonic() + 300
        while True:
            issued = client.get("/health").json().get("last_issued_at")
            if issued is not None and pd.Timestamp(issued) == dataset.timestamps[-1]:
                # Every horizon, as the page asks: the service computes this answer once, so
                # that no page load below pays for it.
                rows = client.get("/v1/forecasts").json()["data"]
                return len(ids), len({r["sensor_id"] for r in rows if r["value"] is not None})
            if time.monotonic() > deadline:
                raise RuntimeError("no forecast for the posted steps within 300 s")
            time.sleep(0.5)


def serve_revision(page: Page, url: str, revision: str) -> None:
    """Serve the dashboard files of git ``revision`` in place of the installed ones."""
    files = {"/": "index.html", **{f"/static/{name}": name for name in ASSETS}}
    media = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    for path, name in files.items():
        source = f"{revision}:src/urbanflow/serving/dashboard/{name}"
        body = subprocess.run(["git", "show", source], capture_output=True, check=True).stdout
        page.route(f"{url}{path}", fulfil(body, media[Path(name).suffix]))


def fulfil(body: bytes, content_type: str) -> Callable[[Route], None]:
    """A route handler that answers with ``body`` (Playwright passes the route alone to a
    handler of one parameter)."""

    def answer(route: Route) -> None:
        route.fulfill(body=body, content_type=content_type)

    return answer


def one_load(
    browser: Browser, url: str, counts: tuple[int, int], kind: str, revision: str | None
) -> dict:
    """One page load's figures; ``counts``: sensors served, and those with a forecast."""
    sensors, coloured = counts
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    if revision is not None:
        serve_revision(page, url, revision)
    page.goto(f"{url}/", wait_until="commit")
    page.wait_for_function(DRAWN[kind], arg=sensors, polling="raf", timeout=TIMEOUT_MS)
    first_draw_ms = page.evaluate("() => performance.now()")
    page.wait_for_function(COLOURED[kind], arg=coloured, polling="raf", timeout=TIMEOUT_MS)
    load_ms = page.evaluate("() => performance.now()")
    page.evaluate("() => { window.draws = []; }")
    slider = page.evaluate(SLIDER)
    draws = page.evaluate("() => window.draws")
    figures = {
        "first_draw_ms": first_draw_ms,
        "load_ms": load_ms,
        "slider_ms": statistics.median(slider),
    }
    if kind == "canvas":
        figures["draw_ms"] = statistics.median(draws)
        figures["drawn"] = int(page.get_attribute("#map", "data-drawn") or 0)
        hit = page.evaluate(HIT_TEST)
        figures["hit_test_us"] = hit["us"]
    context.close()
    return figures


def summarise(loads: list[dict]) -> dict[str, object]:
    keys = [k for k in loads[0] if k != "drawn"]
    summary: dict[str, object] = {k: round(statistics.median(x[k] for x in loads), 2) for k in keys}
    summary["loads"] = [{k: round(v, 2) for k, v in x.items()} for x in loads]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", type=Path, help="a city folder (with --model-dir)")
    parser.add_argument("--model-dir", type=Path, help="a bundle trained on --city")
    parser.add_argument("--sensors", type=int, default=10_000, help="when the city is made here")
    parser.add_argument("--loads", type=int, default=7, help="page loads measured")
    parser.add_argument("--compare", metavar="REV", help="also measure the page at git REV")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()
    if (options.city is None) != (options.model_dir is None):
        parser.error("give --city and --model-dir together, or neither")
    if not CHROMIUM.exists():
        parser.error(f"{CHROMIUM} is missing: run .ci/install-browser")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="urbanflow-dashboard-") as temporary:
        folder = Path(temporary)
        city, bundle = (options.city, options.model_dir)
        if city is None:
            city, bundle = make_bundle(folder, options.sensors)
        with serve(bundle, folder) as server:
            sensors, forecast = post_last_steps(server.url, city)
            print(f"{sensors} sensors served, {forecast} with a forecast", flush=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                pages = {"canvas": None}
                if options.compare:
                    pages[f"at {options.compare}"] = options.compare
                result = {}
                for name, revision in pages.items():
                    kind = "canvas" if revision is None else "svg"
                    loads = []
                    for k in range(options.loads):
                        counts = (sensors, forecast)
                        loads.append(one_load(browser, server.url, counts, kind, revision))
                        print(f"{name} load {k + 1}: {loads[-1]}", flush=True)
                    result[name] = summarise(loads)
                browser.close()

    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "commit": git_commit(),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "chromium": chromium_version(),
        "playwright": version("playwright"),
        "load_average_1min": {
            "start": round(load_before[0], 2),
            "end": round(os.getloadavg()[0], 2),
        },
        "sensors": sensors,
        "sensors_with_forecast": forecast,
        "viewport": VIEWPORT,
        "loads": options.loads,
    }
    print(render(meta, result))
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "dashboard.json").write_text(
        json.dumps({"meta": meta, **result}, indent=2) + "\n"
    )


def chromium_version() -> str:
    run = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True)
    return run.stdout.strip()


def render(meta: dict[str, object], result: dict[str, dict]) -> str:
    lines = [
        f"dashboard, {meta['sensors']:,} sensors, {meta['chromium']}, "
        f"median of {meta['loads']} loads (load average {meta['load_average_1min']})",
        "| page | load → all drawn (ms) | load → all coloured (ms) | one redraw (ms) "
        "| slider → painted (ms) | hit test (µs) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result.items():
        keys = ("first_draw_ms", "load_ms", "draw_ms", "slider_ms", "hit_test_us")
        cells = [row.get(k, "–") for k in keys]
        lines.append(f"| {name} | " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
