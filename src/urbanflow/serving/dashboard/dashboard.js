"use strict";

// Live operations dashboard: a map of the sensors coloured by their forecast at a
// chosen horizon, and a chart of one sensor's recent readings with its forecast
// path and interval band; firing alerts are listed and ringed on the map.
// Plain DOM and inline SVG; every request goes to the page's own server.

const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_MS = 2500; // how often /health is asked whether new readings arrived
const RETRY_MS = 5000; // after a failed start
const CHART_HOURS = 3; // readings shown before the latest one
const NO_DATA = "#a7adb5"; // sensors without a forecast
const MAP_SIZE = 1000; // the longer side of the map's viewBox
const MAP_PAD = 24;

// Congestion bins for speed in mph (converted for km/h): values below `upTo`.
const SPEED_BINS_MPH = [
  { upTo: 20, colour: "#d7301f" },
  { upTo: 35, colour: "#f98e2b" },
  { upTo: 50, colour: "#f2cf1d" },
  { upTo: Infinity, colour: "#2ca25f" },
];
const SPEED_UNITS = { mph: 1, "km/h": 1.609344, kmh: 1.609344, kph: 1.609344 };
// A sequential scale (viridis stops) for quantities without a congestion reading.
const SEQUENTIAL = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
// Utilisation (forecast / capacity) of occupancy data: green when empty to red when full,
// dark red from full on.
const UTILISATION = ["#2ca25f", "#f2cf1d", "#f98e2b", "#d7301f"];
const FULL = "#7f0000";

const state = {
  card: null,
  minutesPerStep: null, // null when the frequency string is not understood
  timezone: "UTC",
  sensors: new Map(), // sensor_id -> sensor record
  circles: new Map(), // sensor_id -> <circle>
  positions: new Map(), // sensor_id -> [x, y] in the map's viewBox
  radius: 0, // of the sensors' circles
  latestReadingAt: null, // as /health last said
  seen: null, // what /health last said about the readings, to notice new ones
  forecast: null, // see indexForecasts
  accuracy: null, // GET /v1/accuracy over the last hour
  alertsServed: false, // whether this server has GET /v1/alerts (from its OpenAPI paths)
  alerts: [], // firing alerts, as GET /v1/alerts?state=firing lists them
  horizon: 1,
  selected: null,
  panelRequest: 0, // drops chart answers that a later click overtook
  panelReadings: [], // the open sensor's recent readings
  panelProblem: "",
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- requests

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = typeof body?.detail === "string" ? body.detail : response.statusText;
    throw new ApiError(response.status, detail || `HTTP ${response.status}`);
  }
  return body;
}

function setStatus(text, kind = "ok") {
  const status = $("status");
  status.textContent = text;
  status.className = kind;
}

// ------------------------------------------------------------- time, units

function stepMinutes(frequency) {
  // A pandas offset string: "5min", "15min", "1h", "D", "30s" (and old aliases "T", "H").
  const match = /^\s*(\d*)\s*([A-Za-z]+)\s*$/.exec(frequency ?? "");
  const perUnit = { min: 1, t: 1, h: 60, d: 1440, s: 1 / 60, w: 10080 };
  const unit = match && perUnit[match[2].toLowerCase()];
  return unit ? Number(match[1] || 1) * unit : null;
}

function horizonText(steps) {
  if (state.minutesPerStep === null) return `${steps} step${steps === 1 ? "" : "s"}`;
  const minutes = steps * state.minutesPerStep;
  if (minutes >= 120 && minutes % 60 === 0) return `${minutes / 60} h`;
  return `${Number(minutes.toFixed(1))} min`;
}

function formatTime(ms, withDay = false) {
  const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: state.timezone };
  if (withDay) Object.assign(options, { weekday: "short", day: "numeric", month: "short" });
  return new Intl.DateTimeFormat("en-GB", options).format(ms);
}

function isoUTC(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "+00:00");
}

function validTimezone(name) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return name;
  } catch {
    return "UTC";
  }
}

function formatValue(value) {
  return `${value.toFixed(1)} ${state.card.dataset.unit ?? ""}`.trim();
}

// ------------------------------------------------------------------ colour

function speedBins() {
  const { quantity, unit } = state.card.dataset;
  const factor = SPEED_UNITS[String(unit).toLowerCase().replace(/\s+/g, "")];
  if (quantity !== "speed" || !factor) return null;
  return SPEED_BINS_MPH.map((bin) => ({ ...bin, upTo: Math.round(bin.upTo * factor) }));
}

function interpolate(stops, t) {
  const at = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(at), stops.length - 2);
  const [a, b] = [stops[i], stops[i + 1]].map((hex) => hex.match(/\w\w/g).map((c) => parseInt(c, 16)));
  const mix = a.map((channel, k) => Math.round(channel + (b[k] - channel) * (at - i)));
  return `rgb(${mix.join(",")})`;
}

// Occupancy data with capacities: colour by utilisation, the same legend at every horizon.
function utilisationScale() {
  const colour = (u) => (u >= 1 ? FULL : interpolate(UTILISATION, u));
  return { colour, utilisation: true };
}

// A colour function and its legend for the values shown now.
function colourScale(values) {
  const bins = speedBins();
  if (bins) return { colour: (v) => bins.find((bin) => v < bin.upTo).colour, bins };
  const finite = [...values].filter(Number.isFinite);
  const lo = finite.length ? Math.min(...finite) : 0;
  const hi = finite.length ? Math.max(...finite) : 1;
  const colour = (v) => interpolate(SEQUENTIAL, hi > lo ? (v - lo) / (hi - lo) : 0.5);
  return { colour, range: [lo, hi] };
}

function swatch(background) {
  const mark = document.createElement("i");
  mark.style.background = background;
  return mark;
}

function legendItem(background, text) {
  const item = document.createElement("li");
  item.append(swatch(background), text);
  return item;
}

function renderLegend(scale) {
  const { quantity, unit } = state.card.dataset;
  const title = document.createElement("strong");
  title.textContent = `${quantity} (${unit}) at +${horizonText(state.horizon)}`;
  const list = document.createElement("ul");
  if (scale.utilisation) {
    title.textContent = `utilisation 0–100 %+ (${quantity} / capacity) at +${horizonText(state.horizon)}`;
    const gradient = `linear-gradient(to right, ${UTILISATION.join(", ")})`;
    list.append(legendItem(gradient, "0 … 100 %"));
    list.lastChild.classList.add("gradient");
    list.append(legendItem(FULL, "≥ 100 % (full)"));
  } else if (scale.bins) {
    scale.bins.forEach((bin, i) => {
      const from = i ? scale.bins[i - 1].upTo : null;
      let text = `${from}–${bin.upTo}`;
      if (from === null) text = `< ${bin.upTo}`;
      else if (bin.upTo === Infinity) text = `≥ ${from}`;
      list.append(legendItem(bin.colour, text));
    });
  } else {
    const [lo, hi] = scale.range;
    const gradient = `linear-gradient(to right, ${SEQUENTIAL.join(", ")})`;
    list.append(legendItem(gradient, `${lo.toFixed(1)} … ${hi.toFixed(1)}`));
    list.lastChild.classList.add("gradient");
  }
  list.append(legendItem(NO_DATA, scale.utilisation ? "no forecast or capacity" : "no forecast"));
  if (state.alertsServed) {
    list.append(legendItem("transparent", "firing alert"));
    list.lastChild.classList.add("ring");
  }
  $("legend").replaceChildren(title, list);
}

// --------------------------------------------------------------------- map

function svg(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.append(node);
  return node;
}

function hasCoordinates(sensor) {
  return Number.isFinite(sensor.latitude) && Number.isFinite(sensor.longitude);
}

// Equirectangular projection, x shrunk by cos(mean latitude), fitted into the viewBox.
function projectCoordinates(sensors) {
  const meanLat = sensors.reduce((sum, s) => sum + s.latitude, 0) / sensors.length;
  const shrink = Math.cos((meanLat * Math.PI) / 180);
  const raw = sensors.map((s) => [s.longitude * shrink, -s.latitude]);
  const [minX, minY] = [0, 1].map((k) => Math.min(...raw.map((p) => p[k])));
  const [spanX, spanY] = [0, 1].map((k) => Math.max(...raw.map((p) => p[k])) - [minX, minY][k]);
  const scale = (MAP_SIZE - 2 * MAP_PAD) / (Math.max(spanX, spanY) || 1);
  const positions = raw.map(([x, y]) => [MAP_PAD + (x - minX) * scale, MAP_PAD + (y - minY) * scale]);
  const [width, height] = [spanX * scale + 2 * MAP_PAD, spanY * scale + 2 * MAP_PAD];
  return { positions, width, height, radius: 5.5 };
}

function gridLayout(sensors) {
  const columns = Math.ceil(Math.sqrt(sensors.length));
  const cell = 40;
  const positions = sensors.map((_, i) => [
    MAP_PAD + ((i % columns) + 0.5) * cell,
    MAP_PAD + (Math.floor(i / columns) + 0.5) * cell,
  ]);
  const rows = Math.ceil(sensors.length / columns);
  const [width, height] = [columns * cell + 2 * MAP_PAD, rows * cell + 2 * MAP_PAD];
  return { positions, width, height, radius: 12 };
}

function drawEdges(edges, where) {
  const group = $("edges");
  const seen = new Set();
  for (const { source, target } of edges) {
    const key = [source, target].sort().join("\u0000");
    if (source === target || seen.has(key) || !where.has(source) || !where.has(target)) continue;
    seen.add(key);
    const [[x1, y1], [x2, y2]] = [where.get(source), where.get(target)];
    svg("line", { x1, y1, x2, y2, class: "edge" }, group);
  }
}

function drawMap(sensors, edges) {
  const located = sensors.length > 0 && sensors.every(hasCoordinates);
  const layout = located ? projectCoordinates(sensors) : gridLayout(sensors);
  const where = new Map(sensors.map((s, i) => [s.sensor_id, layout.positions[i]]));
  state.positions = where;
  state.radius = layout.radius;
  const map = $("map");
  map.setAttribute("viewBox", `0 0 ${layout.width.toFixed(1)} ${layout.height.toFixed(1)}`);
  drawEdges(edges, where);
  const group = $("sensors");
  for (const sensor of sensors) {
    const [cx, cy] = where.get(sensor.sensor_id);
    const attributes = { cx, cy, r: layout.radius, class: "sensor", fill: NO_DATA, tabindex: 0 };
    const circle = svg("circle", attributes, group);
    circle.setAttribute("data-sensor-id", sensor.sensor_id);
    circle.setAttribute("role", "button");
    svg("title", {}, circle);
    state.sensors.set(sensor.sensor_id, sensor);
    state.circles.set(sensor.sensor_id, circle);
  }
  map.classList.toggle("grid-layout", !located);
  if (!located && sensors.length) {
    $("map-note").textContent = "These sensors have no coordinates: they are laid out on a grid.";
    $("map-note").hidden = false;
  }
}

function tooltip(id, value) {
  const name = state.sensors.get(id)?.name;
  const label = name ? `${id} · ${name}` : id;
  let shown = Number.isFinite(value) ? formatValue(value) : "no forecast";
  const full = state.forecast?.capacity?.get(state.horizon)?.get(id);
  if (full && Number.isFinite(value) && Number.isFinite(full.utilisation)) {
    const chance = Number.isFinite(full.pAbove) ? `, P(full) ${Math.round(full.pAbove * 100)} %` : "";
    shown += ` of ${full.capacity} (${Math.round(full.utilisation * 100)} %${chance})`;
  }
  const rules = state.alerts.filter((a) => a.sensor_id === id).map((a) => a.rule);
  const firing = rules.length ? `\nfiring: ${rules.join(", ")}` : "";
  return `${label}\n${shown} at +${horizonText(state.horizon)}${firing}`;
}

function paintSensors() {
  const values = state.forecast?.byHorizon.get(state.horizon) ?? new Map();
  const capacity = state.forecast?.capacity; // null unless occupancy data with capacities
  const full = capacity?.get(state.horizon) ?? new Map();
  const scale = capacity ? utilisationScale() : colourScale(values.values());
  for (const [id, circle] of state.circles) {
    const value = values.get(id);
    const known = Number.isFinite(value);
    const used = full.get(id)?.utilisation;
    const shown = capacity ? known && Number.isFinite(used) : known;
    circle.setAttribute("fill", shown ? scale.colour(capacity ? used : value) : NO_DATA);
    circle.classList.toggle("no-forecast", !known);
    circle.firstChild.textContent = tooltip(id, value);
  }
  renderLegend(scale);
}

// --------------------------------------------------------------- forecasts

// A level as it appears in the field names and coverage keys: 80 -> "80", 97.5 -> "97_5".
function levelLabel(level) {
  return String(level).replace(".", "_");
}

function indexForecasts(body) {
  const byHorizon = new Map(); // horizon step -> Map(sensor_id -> value)
  const paths = new Map(); // sensor_id -> [{t, value, bounds: {label: [lower, upper]}}] in time order
  const labels = (body.levels ?? []).map(levelLabel);
  // occupancy data with capacities: horizon step -> Map(sensor_id -> {capacity, utilisation, pAbove})
  const capacity = body.data.some((row) => "utilisation" in row) ? new Map() : null;
  for (const row of body.data) {
    if (!byHorizon.has(row.horizon_steps)) byHorizon.set(row.horizon_steps, new Map());
    byHorizon.get(row.horizon_steps).set(row.sensor_id, row.value);
    if (capacity) {
      if (!capacity.has(row.horizon_steps)) capacity.set(row.horizon_steps, new Map());
      capacity.get(row.horizon_steps).set(row.sensor_id, {
        capacity: row.capacity,
        utilisation: row.utilisation ?? NaN,
        pAbove: row.p_above_capacity ?? NaN,
      });
    }
    if (!Number.isFinite(row.value)) continue;
    const bounds = {};
    for (const label of labels) {
      const [lower, upper] = [row[`lower_${label}`], row[`upper_${label}`]];
      if (Number.isFinite(lower) && Number.isFinite(upper)) bounds[label] = [lower, upper];
    }
    if (!paths.has(row.sensor_id)) paths.set(row.sensor_id, []);
    paths.get(row.sensor_id).push({ t: Date.parse(row.target_time), value: row.value, bounds });
  }
  for (const path of paths.values()) path.sort((a, b) => a.t - b.t);
  const missing = body.missing ?? [];
  const levels = [...(body.levels ?? [])].sort((a, b) => b - a); // widest first
  return { issuedAt: Date.parse(body.issued_at), model: body.model, byHorizon, capacity, paths, missing, levels };
}

// The bands the chart draws: the widest level and, when there are more, the narrowest.
function bandLevels() {
  const levels = state.forecast?.levels ?? [];
  return levels.length > 1 ? [levels[0], levels.at(-1)] : levels;
}

function forecastSummary() {
  const { issuedAt, paths, missing } = state.forecast;
  const without = missing.length ? ` · ${missing.length} without forecast (grey)` : "";
  const covered = `${paths.size} of ${state.circles.size} sensors`;
  return `Forecast issued ${formatTime(issuedAt, true)} for ${covered}${without}`;
}

// All horizons in one request: the slider then recolours without asking the server.
async function refreshForecasts() {
  try {
    state.forecast = indexForecasts(await getJSON("/v1/forecasts"));
    const { model, issuedAt } = state.forecast;
    if (model) $("model-name").textContent = `${model.name} · ${String(model.version).slice(0, 8)}`;
    $("issued-at").textContent = formatTime(issuedAt, true);
    setStatus(forecastSummary());
  } catch (error) {
    state.forecast = null;
    $("issued-at").textContent = "—";
    if (error.status === 409) setStatus(`${error.message} — waiting for readings`, "waiting");
    else setStatus(`Forecasts unavailable: ${error.message}`, "error");
  }
  paintSensors();
}

// MAE of the service's own forecasts whose targets arrived in the last hour, at the slider's
// horizon, beside repeating the last reading: what the model adds, measured live.
async function refreshAccuracy() {
  try {
    state.accuracy = await getJSON("/v1/accuracy?minutes=60");
  } catch (error) {
    state.accuracy = null;
  }
  showAccuracy();
}

function showAccuracy() {
  const row = state.accuracy?.data?.[state.horizon - 1];
  $("accuracy").textContent =
    row && row.mae !== null
      ? `MAE ${formatValue(row.mae)} (last value ${formatValue(row.last_value_mae)})`
      : "no forecast scored yet";
  $("accuracy").title = row ? `${row.count} readings scored at this horizon` : "";
  showCoverage(row);
}

// The share of last hour's scored readings inside the widest interval, at the slider's horizon.
function showCoverage(row) {
  const coverage = row?.coverage ?? {};
  const levels = Object.keys(coverage).map((key) => [Number(key.replace("_", ".")), key]);
  const widest = levels.sort((a, b) => b[0] - a[0])[0];
  const dd = $("coverage");
  dd.title = "";
  if (!widest) {
    dd.textContent = row ? "no intervals" : "—";
    return;
  }
  const [level, key] = widest;
  const share = coverage[key];
  dd.textContent = Number.isFinite(share)
    ? `${level} % interval covered ${(share * 100).toFixed(0)} %`
    : `${level} % interval: none scored yet`;
  dd.title = levels
    .filter(([, k]) => Number.isFinite(coverage[k]))
    .map(([l, k]) => `${l} % interval: ${(coverage[k] * 100).toFixed(1)} % covered`)
    .join("\n");
}

// ------------------------------------------------------------------ alerts

// Whether this server has alert rules: asked once (the rules are loaded at start-up), and only
// when its OpenAPI paths list the route, so that an older server is never asked (its 404 would
// be a console error). Without rules there is no alerts panel.
async function findAlertRules() {
  try {
    const spec = await getJSON("/openapi.json");
    const rules = spec?.paths?.["/v1/alerts/rules"] ? await getJSON("/v1/alerts/rules") : null;
    state.alertsServed = (rules?.count ?? 0) > 0;
  } catch {
    state.alertsServed = false;
  }
  $("alerts").hidden = !state.alertsServed;
}

async function refreshAlerts() {
  if (!state.alertsServed) return;
  try {
    const body = await getJSON("/v1/alerts?state=firing");
    state.alerts = (body?.data ?? []).filter((a) => a.state === undefined || a.state === "firing");
  } catch (error) {
    if (error.status === 404) {
      state.alertsServed = false; // not served after all: stop asking
      $("alerts").hidden = true;
    }
    state.alerts = [];
  }
  showAlerts();
}

// What moved the alert into firing: the window's largest probability (below/above), or live
// MAE / validation MAE (drift).
function alertValue(alert) {
  if (!Number.isFinite(alert.value)) return "";
  if (alert.condition === "drift") return `MAE × ${alert.value.toFixed(2)}`;
  return `p ${(alert.value * 100).toFixed(0)} %`;
}

function showAlerts() {
  const alerts = [...state.alerts].sort(
    (a, b) => String(a.rule).localeCompare(b.rule) || String(a.sensor_id).localeCompare(b.sensor_id),
  );
  $("alert-count").textContent = `(${alerts.length})`;
  const items = alerts.map((alert) => {
    const item = document.createElement("li");
    item.className = "alert";
    item.setAttribute("data-sensor-id", alert.sensor_id);
    item.tabIndex = 0;
    const rule = document.createElement("strong");
    rule.textContent = alert.rule;
    rule.title = alert.condition === "drift"
      ? `live error above ${alert.factor} × validation error`
      : `${alert.condition} ${alert.threshold} within ${alert.within_minutes} min, p ≥ ${alert.probability}`;
    const sensor = document.createElement("span");
    sensor.className = "alert-sensor";
    sensor.textContent = alert.sensor_id;
    const detail = document.createElement("span");
    detail.className = "alert-detail";
    const since = Date.parse(alert.since);
    const when = Number.isFinite(since) ? `since ${formatTime(since)}` : "";
    detail.textContent = [alertValue(alert), when].filter(Boolean).join(" · ");
    item.append(rule, sensor, detail);
    const name = state.sensors.get(alert.sensor_id)?.name;
    item.title = name ? `${alert.sensor_id} · ${name}` : alert.sensor_id;
    return item;
  });
  if (!items.length) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = "None firing";
    items.push(none);
  }
  $("alert-list").replaceChildren(...items);
  markAlertingSensors();
}

// A ring around every sensor with a firing alert (above the circles, not catching clicks).
function markAlertingSensors() {
  const alerting = new Set(state.alerts.map((a) => a.sensor_id));
  const rings = $("alert-rings");
  rings.replaceChildren();
  for (const [id, circle] of state.circles) {
    circle.classList.toggle("alerting", alerting.has(id));
    const at = state.positions.get(id);
    if (!alerting.has(id) || !at) continue;
    const ring = svg("circle", { cx: at[0], cy: at[1], r: state.radius + 3.5, class: "alert-ring" }, rings);
    ring.setAttribute("data-sensor-id", id);
  }
  paintSensors(); // the tooltips name the firing rules
}

async function onNewReadings() {
  if (state.latestReadingAt === null) {
    state.forecast = null;
    paintSensors();
    setStatus("No readings yet — waiting for the first ones", "waiting");
  } else {
    await refreshForecasts();
  }
  await refreshAccuracy();
  await refreshAlerts();
  if (state.selected) await showSensor(state.selected);
}

async function poll() {
  try {
    const health = await getJSON("/health");
    // The revision moves whenever a batch adds or corrects a stored reading; a new issued
    // forecast (which is what alerts are evaluated on) comes after its readings.
    const seen = `${health.latest_reading_at} ${health.readings} ${health.revision} ${health.last_issued_at}`;
    if (seen !== state.seen) {
      state.seen = seen;
      state.latestReadingAt = health.latest_reading_at;
      await onNewReadings();
    }
  } catch (error) {
    setStatus(`Cannot reach the server (${error.message}) — retrying`, "error");
    state.seen = null; // refresh everything once it answers again
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// ------------------------------------------------------------ sensor panel

async function recentReadings(id) {
  if (!state.latestReadingAt) return [];
  const latest = Date.parse(state.latestReadingAt);
  const stepMs = (state.minutesPerStep ?? 1) * 60000;
  const params = new URLSearchParams({
    start: isoUTC(latest - CHART_HOURS * 3600000),
    end: isoUTC(latest + stepMs),
    limit: String(Math.ceil((CHART_HOURS * 3600000) / stepMs) + 2),
  });
  const body = await getJSON(`/v1/sensors/${encodeURIComponent(id)}/readings?${params}`);
  return body.data
    .filter((row) => Number.isFinite(row.value))
    .map((row) => ({ t: Date.parse(row.timestamp), value: row.value }));
}

function unselect() {
  for (const circle of document.querySelectorAll("circle.sensor.selected")) {
    circle.classList.remove("selected");
  }
}

function selectCircle(id) {
  unselect();
  const circle = state.circles.get(id);
  if (!circle) return;
  circle.classList.add("selected");
  circle.parentNode.append(circle); // drawn last, so on top of its neighbours
}

async function showSensor(id) {
  const request = ++state.panelRequest;
  if (id !== state.selected) {
    $("sensor-chart").replaceChildren(); // not another sensor's chart while this one loads
    $("panel-summary").textContent = "Loading…";
  }
  state.selected = id;
  selectCircle(id);
  $("sensor-panel").hidden = false;
  const name = state.sensors.get(id)?.name;
  $("panel-sensor").textContent = name ? `${id} · ${name}` : id;
  let readings = [];
  let problem = "";
  try {
    readings = await recentReadings(id);
  } catch (error) {
    problem = `Readings unavailable: ${error.message}`;
  }
  if (request !== state.panelRequest) return;
  state.panelReadings = readings;
  state.panelProblem = problem;
  drawPanel();
}

function drawPanel() {
  const readings = state.panelReadings;
  const path = state.forecast?.paths.get(state.selected) ?? [];
  const levels = bandLevels();
  const key = document.querySelector(".chart-key .key-band");
  key.hidden = !levels.length;
  key.textContent = `${[...levels].reverse().join(" / ")} % interval`;
  $("panel-summary").textContent = state.panelProblem || panelSummary(readings, path);
  drawChart(readings, path);
}

function panelSummary(readings, path) {
  const last = readings.at(-1);
  const ahead = path[state.horizon - 1];
  const seen = last
    ? `Last reading ${formatValue(last.value)} at ${formatTime(last.t)}`
    : `No readings in the last ${CHART_HOURS} h`;
  const widest = bandLevels()[0];
  const bound = widest === undefined ? null : ahead?.bounds[levelLabel(widest)];
  const interval = bound
    ? ` (${widest} %: ${bound[0].toFixed(1)}–${bound[1].toFixed(1)})`
    : "";
  const expected = ahead
    ? `forecast ${formatValue(ahead.value)}${interval} at ${formatTime(ahead.t)}`
    : "no forecast";
  return `${seen} · ${expected}`;
}

function hidePanel() {
  state.selected = null;
  state.panelRequest += 1;
  $("sensor-panel").hidden = true;
  unselect();
}

// ------------------------------------------------------------------- chart

const CHART = { width: 440, height: 260, left: 46, right: 14, top: 22, bottom: 28 };

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

function valueTicks(values) {
  let [lo, hi] = [Math.min(...values), Math.max(...values)];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 1, hi + 1];
  const step = niceStep((hi - lo) / 4);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step - 1e-9; v += step) {
    ticks.push(Number(v.toFixed(6)));
  }
  return ticks;
}

function timeTicks(t0, t1) {
  const minutes = [5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080];
  const every = (minutes.find((m) => (t1 - t0) / (m * 60000) <= 5) ?? minutes.at(-1)) * 60000;
  const ticks = [];
  for (let t = Math.ceil(t0 / every) * every; t <= t1; t += every) ticks.push(t);
  return ticks;
}

function linePath(points, x, y, maxGapMs) {
  let d = "";
  points.forEach((p, i) => {
    const joined = i > 0 && p.t - points[i - 1].t <= maxGapMs;
    d += `${joined ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.value).toFixed(1)}`;
  });
  return d;
}

// A closed band: along the upper bounds, back along the lower ones.
function bandPath(points, label, x, y) {
  const shown = points.filter((p) => p.bounds?.[label]);
  if (shown.length < 2) return "";
  const upper = shown.map((p) => `${x(p.t).toFixed(1)},${y(p.bounds[label][1]).toFixed(1)}`);
  const lower = shown.map((p) => `${x(p.t).toFixed(1)},${y(p.bounds[label][0]).toFixed(1)}`);
  return `M${upper.join("L")}L${lower.reverse().join("L")}Z`;
}

function chartText(parent, x, y, text, className) {
  svg("text", { x, y, class: className }, parent).textContent = text;
}

function drawAxes(chart, ticks, x, y) {
  const { width, height, left, right, bottom } = CHART;
  const base = height - bottom;
  const axes = svg("g", { class: "axes" }, chart);
  for (const v of ticks.values) {
    svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }, axes);
    chartText(axes, left - 6, y(v) + 4, String(v), "tick y");
  }
  for (const t of ticks.times) {
    svg("line", { x1: x(t), x2: x(t), y1: base, y2: base + 4, class: "tick-mark" }, axes);
    chartText(axes, x(t), base + 16, formatTime(t), "tick x");
  }
  svg("line", { x1: left, x2: width - right, y1: base, y2: base, class: "axis" }, axes);
  chartText(axes, 4, 12, state.card.dataset.unit ?? "", "unit");
}

function drawChart(readings, path) {
  const chart = $("sensor-chart");
  chart.replaceChildren();
  const issuedAt = state.forecast?.issuedAt;
  const found = readings.find((p) => p.t === issuedAt); // the forecast leaves from the last reading
  const labels = bandLevels().map(levelLabel);
  // The bands leave from the same reading, with no width there.
  const anchor = found && { ...found, bounds: Object.fromEntries(labels.map((l) => [l, [found.value, found.value]])) };
  const forecast = anchor && path.length ? [anchor, ...path] : path;
  const points = [...readings, ...forecast];
  const bounds = path.flatMap((p) => labels.flatMap((l) => p.bounds[l] ?? []));
  const readingsPath = svg("path", { class: "readings", d: "" }, chart);
  const forecastPath = svg("path", { class: "forecast", d: "" }, chart);
  if (!points.length) {
    chartText(chart, CHART.width / 2, CHART.height / 2, "No readings or forecast yet", "empty");
    return;
  }
  const { width, height, left, right, top, bottom } = CHART;
  const stepMs = (state.minutesPerStep ?? 1) * 60000;
  const times = points.map((p) => p.t);
  const [t0, t1] = [Math.min(...times), Math.max(...times) + (times.length === 1 ? stepMs : 0)];
  const values = valueTicks([...points.map((p) => p.value), ...bounds]);
  const [v0, v1] = [values[0], values.at(-1)];
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => height - bottom - ((v - v0) / (v1 - v0)) * (height - top - bottom);
  drawAxes(chart, { values, times: timeTicks(t0, t1) }, x, y);
  if (Number.isFinite(issuedAt) && issuedAt >= t0 && issuedAt <= t1) {
    svg("line", { x1: x(issuedAt), x2: x(issuedAt), y1: top, y2: height - bottom, class: "now" }, chart);
  }
  labels.forEach((label, i) => {
    const d = bandPath(forecast, label, x, y);
    const level = i === 0 ? "wide" : "narrow";
    if (d) svg("path", { d, class: `band ${level}`, "data-level": label }, chart);
  });
  readingsPath.setAttribute("d", linePath(readings, x, y, 1.5 * stepMs));
  forecastPath.setAttribute("d", linePath(forecast, x, y, Infinity));
  chart.append(readingsPath, forecastPath); // above the grid and the bands
  for (const p of readings) {
    svg("circle", { cx: x(p.t), cy: y(p.value), r: 1.8, class: "reading-dot" }, chart);
  }
  const chosen = path[state.horizon - 1];
  if (chosen) svg("circle", { cx: x(chosen.t), cy: y(chosen.value), r: 4, class: "horizon-dot" }, chart);
}

// ------------------------------------------------------------------- setup

function applyCard(card) {
  const dataset = card.dataset ?? {};
  state.card = { ...card, dataset };
  state.minutesPerStep = stepMinutes(dataset.frequency);
  state.timezone = validTimezone(dataset.timezone);
  $("dataset-name").textContent = dataset.name ?? "";
  $("model-name").textContent = `${card.model} · ${String(card.version ?? "").slice(0, 8)}`;
  $("quantity").textContent = `${dataset.quantity} (${dataset.unit}), every ${dataset.frequency}`;
  const slider = $("horizon");
  slider.max = String(card.horizon);
  slider.value = String(Math.min(state.horizon, card.horizon));
  slider.disabled = false;
  onHorizon();
}

function onHorizon() {
  state.horizon = Number($("horizon").value);
  $("horizon-label").textContent = `+${horizonText(state.horizon)}`;
  if (!state.card) return;
  paintSensors();
  showAccuracy();
  if (state.selected) drawPanel(); // the readings are those already fetched
}

async function start() {
  try {
    const [card, sensors, graph] = await Promise.all([
      getJSON("/v1/model"),
      getJSON("/v1/sensors"),
      getJSON("/v1/graph").catch(() => ({ data: [] })),
    ]);
    applyCard(card);
    drawMap(sensors.data, graph.data);
    paintSensors();
    await findAlertRules();
  } catch (error) {
    setStatus(`Cannot load the dashboard (${error.message}) — retrying`, "error");
    setTimeout(start, RETRY_MS);
    return;
  }
  setStatus("Waiting for the server's readings…", "waiting");
  poll();
}

function wireControls() {
  $("horizon").addEventListener("input", onHorizon);
  $("panel-close").addEventListener("click", hidePanel);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") hidePanel();
  });
  const sensors = $("sensors");
  const pick = (event) => {
    const circle = event.target.closest("circle.sensor");
    if (circle) showSensor(circle.getAttribute("data-sensor-id"));
  };
  sensors.addEventListener("click", pick);
  const list = $("alert-list");
  const pickAlert = (event) => {
    const item = event.target.closest("li.alert");
    if (item) showSensor(item.getAttribute("data-sensor-id"));
  };
  list.addEventListener("click", pickAlert);
  list.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") pickAlert(event);
  });
  sensors.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") pick(event);
  });
}

wireControls();
start();
