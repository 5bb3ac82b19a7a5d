"""The dashboard at ``/`` in real headless Chromium (Debian's ``chromium``, driven by Playwright).

One page load follows the service from an empty store to live forecasts: the map draws every
sensor at once, says why there is no forecast yet, colours the sensors when enough readings
arrive, and a click on a sensor charts its readings and forecast path, redrawn as readings come.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright
from scipy.spatial import cKDTree
from tests.serving.conftest import post_los_loop_readings, running_server

from urbanflow.data.dataset import CityDataset
from urbanflow.data.synth.base import plane_to_degrees
from urbanflow.data.synth.roads import RoadParameters, plan_roads
from urbanflow.serving.app import create_app
from urbanflow.serving.routes import dashboard
from urbanflow.serving.settings import ServeSettings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MISSING_CHROMIUM = (
    "Chromium not found at /usr/bin/chromium; "
    "run `make test` (it installs it) or `sudo .ci/install-browser`"
)
SENSORS = 207
# The map is one canvas: what it drew is on its data attributes, and window.urbanflowMap says
# where each sensor is and how it is drawn (dashboard.js).
DRAWN = "Number(document.querySelector('#map').dataset.drawn ?? -1)"
COLOURED = "Number(document.querySelector('#map').dataset.coloured ?? 0)"
WAIT_MS = 10_000  # the page asks /health every 2.5 s

# A rule that fires at every sensor with a forecast, at the first issue.
RULES = """
[[rule]]
name = "slow"
sensors = "all"
condition = "below"
threshold = 1000.0
within_minutes = 30
probability = 0.5
"""

# Los-loop's last steps: too few for any forecast (the model wants half of 12 per sensor),
# then enough, then one more that the open chart must pick up.
TOO_FEW = slice(1990, 1993)
ENOUGH = slice(1993, 2015)
ONE_MORE = slice(2015, 2016)


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Problems:
    """Console errors, uncaught exceptions, failed requests and error statuses of one page."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.seen.append(f"uncaught: {error}"))
        page.on("requestfailed", self.failed)
        page.on("response", self.response)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console: {message.text} ({message.location.get('url')})")

    def failed(self, request: Request) -> None:
        self.seen.append(f"request failed: {request.method} {request.url} {request.failure}")

    def response(self, response: Response) -> None:
        if response.status >= 400:
            self.seen.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def unexpected(self) -> list[str]:
        """All but the 409s of /v1/forecasts while readings are too few (and Chromium's log
        line for each)."""
        return [p for p in self.seen if not ("409" in p and "/v1/forecasts" in p)]


def map_looks(page: Page) -> dict[str, dict[str, object]]:
    """How the map draws each sensor: ``{id: {fill, forecast, alerting, selected, tooltip}}``."""
    looks = "Object.fromEntries(urbanflowMap.ids().map(id => [id, urbanflowMap.look(id)]))"
    return json.loads(page.evaluate(f"() => JSON.stringify({looks})"))  # a string: much faster


def wait_for_drawn(page: Page, sensors: int, timeout: int = WAIT_MS) -> None:
    """Until the map canvas has drawn ``sensors`` sensors."""
    page.wait_for_function(f"{DRAWN} === {sensors}", timeout=timeout)


def pickable_sensor(page: Page, with_forecast: bool = True) -> str | None:
    """A sensor that the map's own hit-test finds at its centre (no neighbour nearer)."""
    return page.evaluate(
        """(withForecast) => urbanflowMap.ids().find((id) => {
            const at = urbanflowMap.screenPoint(id);
            const look = urbanflowMap.look(id);
            return (look.forecast || !withForecast) && urbanflowMap.sensorAt(at.x, at.y) === id;
        }) ?? null""",
        with_forecast,
    )


def click_sensor(page: Page, sensor_id: str) -> None:
    """A real mouse click at the sensor's centre on the canvas."""
    at = page.evaluate("(id) => urbanflowMap.screenPoint(id)", sensor_id)
    page.mouse.click(at["x"], at["y"])


def hover_sensor(page: Page, sensor_id: str) -> str:
    """The map's tooltip after the mouse moves onto the sensor."""
    at = page.evaluate("(id) => urbanflowMap.screenPoint(id)", sensor_id)
    page.mouse.move(at["x"], at["y"])
    page.wait_for_selector("#map-tooltip", state="visible", timeout=WAIT_MS)
    return page.text_content("#map-tooltip") or ""


def points(page: Page, path: str) -> int:
    """How many points an SVG path of the chart has (its M and L commands)."""
    d = page.get_attribute(f"#sensor-chart path.{path}", "d") or ""
    return sum(d.count(command) for command in "ML")


@pytest.mark.slow  # headless Chromium
def test_dashboard_maps_sensors_colours_forecasts_and_charts_a_sensor(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Checked before the fixtures are built, so a missing browser fails at once, as a failure.
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    bundle: Path = request.getfixturevalue("los_loop_bundle")
    los_loop: CityDataset = request.getfixturevalue("los_loop")
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    app = create_app(ServeSettings(bundle, tmp_path / "store.duckdb", alerts=rules))
    with running_server(app) as base_url, headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 850})
        problems = Problems(page)
        page.goto(f"{base_url}/")

        # Every sensor is drawn from the start, grey while the store is empty.
        wait_for_drawn(page, SENSORS)
        assert int(page.get_attribute("#map", "data-edges") or 0) > 0
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('No readings')",
            timeout=WAIT_MS,
        )
        looks = map_looks(page)
        assert len(looks) == SENSORS
        assert all(not look["forecast"] and look["fill"] == "#a7adb5" for look in looks.values())
        assert page.text_content("#dataset-name") == "los-loop"

        # Too few readings: the service's 409 message shows in the status line.
        post_los_loop_readings(base_url, TOO_FEW, los_loop)
        page.wait_for_selector("#status.waiting >> text=half of its 12 readings", timeout=WAIT_MS)

        # Enough readings: the next poll brings forecasts, in congestion colours for speed.
        post_los_loop_readings(base_url, ENOUGH, los_loop)
        page.wait_for_function(f"{COLOURED} > 0", timeout=WAIT_MS)
        coloured = {i: look for i, look in map_looks(page).items() if look["forecast"]}
        assert len(coloured) > SENSORS // 2
        assert int(page.get_attribute("#map", "data-coloured") or 0) == len(coloured)
        fills = {look["fill"] for look in coloured.values()}
        assert 1 <= len(fills) <= 4  # the congestion bins, not a continuous scale
        assert fills <= {"#d7301f", "#f98e2b", "#f2cf1d", "#2ca25f"}
        legend = page.text_content("#legend") or ""
        assert "mph" in legend and "< 20" in legend and "no forecast" in legend
        assert page.text_content("#issued-at") not in ("", "—")

        # Once that step's forecast is issued, its alerts fire: listed in the alerts panel,
        # and every alerting sensor gets a ring on the map.
        page.wait_for_selector("#alert-list li.alert", timeout=WAIT_MS)
        page.wait_for_function(
            f"document.querySelectorAll('#alert-list li.alert').length > {SENSORS // 2}",
            timeout=WAIT_MS,
        )
        listed = page.locator("#alert-list li.alert").count()
        assert page.text_content("#alert-count") == f"({listed})"
        assert page.text_content("#alert-list li.alert strong") == "slow"
        alerting = {i for i, look in map_looks(page).items() if look["alerting"]}
        listed_ids = set(
            page.eval_on_selector_all(
                "#alert-list li.alert", "items => items.map(li => li.dataset.sensorId)"
            )
        )
        assert len(alerting) == listed and alerting == listed_ids
        page.wait_for_function(
            f"document.querySelector('#map').dataset.rings === '{listed}'", timeout=WAIT_MS
        )
        ringed = next(iter(alerting))
        assert "firing: slow" in hover_sensor(page, ringed)

        # The slider runs over the model's 12 steps, labelled in minutes.
        assert page.text_content("#horizon-label") == "+5 min"
        assert page.get_attribute("#horizon", "max") == "12"
        page.fill("#horizon", "12")
        assert page.text_content("#horizon-label") == "+60 min"
        assert "+60 min" in (page.text_content("#legend") or "")

        # A click on a sensor opens its panel: recent readings and the dashed forecast path.
        sensor_id = pickable_sensor(page)
        assert sensor_id is not None
        click_sensor(page, sensor_id)
        page.wait_for_selector("#sensor-panel", state="visible", timeout=WAIT_MS)
        assert page.text_content("#panel-sensor") == sensor_id
        assert map_looks(page)[sensor_id]["selected"]
        page.wait_for_function(
            "document.querySelector('#sensor-chart path.readings')?.getAttribute('d')",
            timeout=WAIT_MS,
        )
        readings_before = points(page, "readings")
        assert readings_before >= 12
        assert points(page, "forecast") >= 12
        # Around the path, the bands of the widest interval (95 %) and the narrowest (80 %):
        # closed, from the last reading out to each of the 12 steps and back.
        for band, level in (("band.wide", "95"), ("band.narrow", "80")):
            assert page.get_attribute(f"#sensor-chart path.{band}", "data-level") == level
            assert points(page, band) >= 2 * 12
            assert (page.get_attribute(f"#sensor-chart path.{band}", "d") or "").endswith("Z")
        assert page.text_content(".chart-key .key-band") == "80 / 95 % interval"
        assert "(95 %: " in (page.text_content("#panel-summary") or "")

        # A new reading: the open chart gains it without a reload.
        post_los_loop_readings(base_url, ONE_MORE, los_loop)
        page.wait_for_function(
            f"""(document.querySelector('#sensor-chart path.readings').getAttribute('d')
                .match(/[ML]/g) || []).length > {readings_before}""",
            timeout=WAIT_MS,
        )
        # The forecast the page asked for before that reading is scored: live accuracy shows
        # (at 5 minutes; nothing issued 60 minutes ago has been scored yet).
        page.fill("#horizon", "1")
        page.wait_for_function(
            "document.querySelector('#accuracy').textContent.startsWith('MAE')",
            timeout=WAIT_MS,
        )
        assert "mph (last value" in page.text_content("#accuracy")
        # Beside it, the live coverage of the widest interval at that horizon.
        coverage = page.text_content("#coverage") or ""
        assert re.fullmatch(r"95 % interval covered \d{1,3} %", coverage), coverage
        page.screenshot(path=str(tmp_path / "dashboard.png"))
        page.close()
        assert problems.unexpected() == []


CITY = 10_000
ISSUED = "2026-01-05T08:00:00+00:00"
CONGESTION = {"#d7301f", "#f98e2b", "#f2cf1d", "#2ca25f"}  # the km/h bins' colours


def city_app(sensors: int) -> FastAPI:
    """The dashboard's page and files with canned answers for a synthetic road city of
    ``sensors`` sensors (positions and road graph from ``urbanflow.data.synth.roads``), in the
    shapes of the service's routes: a trained 10,000-sensor bundle takes minutes to make, and
    the map is what this test is about (benchmarks/dashboard.py runs the real service)."""
    network = plan_roads(RoadParameters(sensors=sensors, days=1, seed=0)).network
    latitude, longitude = plane_to_degrees(network.x_km, network.y_km, RoadParameters().centre)
    ids = network.sensor_ids
    answers = {
        "/v1/model": {
            "model": "stid",
            "version": "0" * 12,
            "horizon": 1,
            "dataset": {
                "name": "synthetic-roads",
                "quantity": "speed",
                "unit": "km/h",
                "frequency": "5min",
                "timezone": "UTC",
            },
        },
        "/v1/sensors": {
            "data": [
                {"sensor_id": i, "name": "", "latitude": float(lat), "longitude": float(lon)}
                for i, lat, lon in zip(ids, latitude, longitude, strict=True)
            ]
        },
        "/v1/graph": {
            "data": [
                {"source": ids[a], "target": ids[b]}
                for a, b in zip(network.edges["source"], network.edges["target"], strict=True)
            ]
        },
        "/health": {
            "latest_reading_at": ISSUED,
            "readings": sensors,
            "revision": 1,
            "last_issued_at": ISSUED,
        },
        # Speeds spread over the congestion bins (below 32, 56, 80 km/h and above).
        "/v1/forecasts": {
            "issued_at": ISSUED,
            "model": {"name": "stid", "version": "0" * 12},
            "levels": [],
            "missing": [],
            "data": [
                {
                    "sensor_id": sensor_id,
                    "target_time": "2026-01-05T08:05:00+00:00",
                    "horizon_steps": 1,
                    "value": 10.0 + (n * 37) % 90,
                }
                for n, sensor_id in enumerate(ids)
            ],
        },
        "/v1/accuracy": {"data": []},
    }
    app = FastAPI()
    for path, answer in answers.items():
        app.add_api_route(path, lambda answer=answer: answer)
    app.add_api_route("/v1/sensors/{sensor_id}/readings", lambda sensor_id: {"data": []})
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.ASSETS), name="static")
    return app


def screen_points(page: Page) -> dict[str, tuple[float, float]]:
    """Every sensor's centre in the viewport, as the map places it now."""
    points = "urbanflowMap.ids().map(id => [id, urbanflowMap.screenPoint(id)])"
    pairs = json.loads(page.evaluate(f"() => JSON.stringify({points})"))
    return {sensor_id: (at["x"], at["y"]) for sensor_id, at in pairs}


def nearest(points: dict[str, tuple[float, float]], x: float, y: float) -> tuple[str, float]:
    """The sensor nearest ``(x, y)`` by looking at all of them, and its distance in px."""
    return min(
        ((i, math.hypot(px - x, py - y)) for i, (px, py) in points.items()),
        key=lambda found: found[1],
    )


def centre_pixels(page: Page) -> dict[str, list[int]]:
    """The colour (r, g, b) of the canvas pixel at each sensor's centre."""
    return json.loads(
        page.evaluate(
            """() => {
            const canvas = document.querySelector("#map");
            const ratio = canvas.width / canvas.clientWidth;
            const pixels = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
            const box = canvas.getBoundingClientRect();
            const colours = {};
            for (const id of urbanflowMap.ids()) {
                const at = urbanflowMap.screenPoint(id);
                const x = Math.floor((at.x - box.left) * ratio);
                const y = Math.floor((at.y - box.top) * ratio);
                const k = 4 * (y * canvas.width + x);
                colours[id] = [pixels[k], pixels[k + 1], pixels[k + 2]];
            }
            return JSON.stringify(colours);
        }"""
        )
    )


def rgb(colour: str) -> list[int]:
    return [int(colour[k : k + 2], 16) for k in (1, 3, 5)]


def empty_spot(page: Page) -> tuple[float, float]:
    """A point of the map more than 20 px from every sensor (down its right-hand edge)."""
    points = screen_points(page)
    box = page.locator("#map").bounding_box()
    assert box is not None
    for k in range(1, 20):
        spot = (box["x"] + box["width"] - 3, box["y"] + box["height"] * k / 20)
        if nearest(points, *spot)[1] > 20:
            return spot
    raise AssertionError("no empty place on the map's right-hand edge")


@pytest.mark.slow  # headless Chromium
def test_dashboard_draws_a_city_of_10000_sensors_and_a_click_opens_the_nearest() -> None:
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    with running_server(city_app(CITY)) as base_url, headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 850})
        problems = Problems(page)
        page.goto(f"{base_url}/")

        # All 10,000 are drawn on the canvas, each in its congestion colour: the map says so,
        # and the pixels at the sensors' centres are in those colours (a neighbour's circle
        # may cover a few of them).
        wait_for_drawn(page, CITY, timeout=20_000)
        page.wait_for_function(f"{COLOURED} === {CITY}", timeout=WAIT_MS)
        looks = map_looks(page)
        assert len(looks) == CITY
        assert {look["fill"] for look in looks.values()} == CONGESTION
        assert page.locator("#map-wrap circle").count() == 0  # no element per sensor
        # Where no neighbour's circle reaches a sensor's centre pixel, that pixel is in its
        # colour (elsewhere, at this scale, a neighbour's circle overlaps it).
        points = screen_points(page)
        ids = list(points)
        xy = np.array([points[i] for i in ids])
        gaps, _ = cKDTree(xy).query(xy, k=[2])
        radius = float(page.get_attribute("#map", "data-radius-px") or "nan")
        alone = [i for i, gap in zip(ids, gaps[:, 0], strict=True) if gap > radius + 1.5]
        assert len(alone) >= 100
        pixels = centre_pixels(page)
        wrong = [i for i in alone if not np.allclose(pixels[i], rgb(looks[i]["fill"]), atol=2)]
        assert wrong == []

        # The wheel zooms in (fewer sensors in view, larger circles); a double click shows the
        # whole city again.
        box = page.locator("#map").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -800)
        page.wait_for_function(f"{DRAWN} < {CITY // 2}", timeout=WAIT_MS)
        assert float(page.get_attribute("#map", "data-radius-px") or 0) > 2 * radius
        page.mouse.dblclick(*empty_spot(page))
        wait_for_drawn(page, CITY)
        assert page.locator("#sensor-panel").is_hidden()

        # A click far from every sensor opens nothing.
        page.mouse.click(*empty_spot(page))
        assert page.locator("#sensor-panel").is_hidden()

        # A click just beside a sensor opens the sensor nearest the click (found here by
        # looking at all of them), at five places across the city.
        for sensor_id in list(looks)[:: CITY // 5]:
            points = screen_points(page)  # the panel narrows the map: positions move
            x, y = points[sensor_id][0] + 1.0, points[sensor_id][1] - 0.5
            expected, distance = nearest(points, x, y)
            assert distance < 2
            page.mouse.click(x, y)
            page.wait_for_function(
                f"document.querySelector('#panel-sensor').textContent === '{expected}'",
                timeout=WAIT_MS,
            )
            assert map_looks(page)[expected]["selected"]
            assert "forecast" in (page.text_content("#panel-summary") or "")

        # The keyboard's way: the sensor's id typed in the search field.
        last = list(looks)[-1]
        page.fill("#find-sensor-id", last)
        page.press("#find-sensor-id", "Enter")
        page.wait_for_function(
            f"document.querySelector('#panel-sensor').textContent === '{last}'", timeout=WAIT_MS
        )
        assert problems.unexpected() == []
