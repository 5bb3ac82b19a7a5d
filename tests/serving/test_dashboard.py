"""The dashboard at ``/`` in real headless Chromium (Debian's ``chromium``, driven by Playwright).

One page load follows the service from an empty store to live forecasts: the map draws every
sensor at once, says why there is no forecast yet, colours the sensors when enough readings
arrive, and a click on a sensor charts its readings and forecast path, redrawn as readings come.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright
from tests.serving.conftest import post_los_loop_readings, running_server

from urbanflow.data.dataset import CityDataset
from urbanflow.serving.app import create_app
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
    return page.evaluate(
        "() => Object.fromEntries(urbanflowMap.ids().map(id => [id, urbanflowMap.look(id)]))"
    )


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
