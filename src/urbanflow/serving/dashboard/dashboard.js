"use strict";

// Live operations dashboard: a map of the sensors coloured by their forecast at a
// chosen horizon, and a chart of one sensor's recent readings with its forecast
// path and interval band; firing alerts are listed and ringed on the map.
// Plain DOM, a canvas for the map and inline SVG for the chart; every request goes to the
// page's own server.

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

// The sensors are drawn on one canvas, not as one SVG element each, so that a city of
// 10,000 sensors draws in milliseconds: the edges as one path, the sensors as one path per
// colour, then the alert rings and the open sensor on top. The whole canvas is redrawn, at
// most once a frame, whenever colours, alerts, the selection, the pointer or the view change.
// Which sensor lies under the pointer is found through a grid of cells over the map (hitTest).

const EDGE = "#b9bec6";
const INK = "#1f2328";
const ALERT = "#7b2cbf"; // --alert in dashboard.css
const MIN_RADIUS_PX = 2; // a smaller dot has no pixel wholly in its colour
const OUTLINE_FROM_PX = 3; // sensors this large get a white outline against their neighbours
const PICK_SLACK_PX = 3; // a click this close to a sensor's circle still picks it
const DRAG_PX = 4; // a press that moves further pans the map instead of clicking
const ZOOM_LIMITS = [1, 64];

const map = {
  ids: [], // index -> sensor_id, in the order GET /v1/sensors lists them
  index: new Map(), // sensor_id -> index
  xy: new Float64Array(0), // x, y of each sensor in map units (the layout's)
  edges: new Uint32Array(0), // pairs of sensor indexes, each edge once
  width: 1, // of the layout, in map units
  height: 1,
  radius: 5.5, // of the sensors' circles, in map units
  located: true, // false: laid out on a grid, without coordinates
  fills: [], // index -> colour
  known: new Uint8Array(0), // 1 where the sensor has a forecast at the chosen horizon
  values: new Map(), // sensor_id -> forecast at the chosen horizon
  alerting: new Set(), // sensor ids with a firing alert
  grid: null, // see buildGrid
  view: { zoom: 1, x: 0, y: 0 }, // zoom and pan (CSS px) on top of fitting the layout
  hover: -1, // index under the pointer
  frame: 0, // pending requestAnimationFrame, 0 when none
};

function hasCoordinates(sensor) {
  return Number.isFinite(sensor.latitude) && Number.isFinite(sensor.longitude);
}

// Smaller circles for more sensors, so that a city's corridors stay apart.
function circleRadius(count, largest) {
  return Math.min(largest, Math.max(1.5, 250 / Math.sqrt(Math.max(count, 1))));
}

// Equirectangular projection, x shrunk by cos(mean latitude), fitted into MAP_SIZE.
function projectCoordinates(sensors) {
  const meanLat = sensors.reduce((sum, s) => sum + s.latitude, 0) / sensors.length;
  const shrink = Math.cos((meanLat * Math.PI) / 180);
  const raw = sensors.map((s) => [s.longitude * shrink, -s.latitude]);
  const low = [Infinity, Infinity];
  const high = [-Infinity, -Infinity];
  for (const point of raw) {
    for (const k of [0, 1]) {
      low[k] = Math.min(low[k], point[k]);
      high[k] = Math.max(high[k], point[k]);
    }
  }
  const [spanX, spanY] = [high[0] - low[0], high[1] - low[1]];
  const scale = (MAP_SIZE - 2 * MAP_PAD) / (Math.max(spanX, spanY) || 1);
  const positions = raw.map(([x, y]) => [MAP_PAD + (x - low[0]) * scale, MAP_PAD + (y - low[1]) * scale]);
  const [width, height] = [spanX * scale + 2 * MAP_PAD, spanY * scale + 2 * MAP_PAD];
  return { positions, width, height, radius: circleRadius(sensors.length, 5.5) };
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

function edgePairs(edges) {
  const seen = new Set();
  const pairs = [];
  for (const { source, target } of edges) {
    const [a, b] = [map.index.get(source), map.index.get(target)];
    if (a === undefined || b === undefined || a === b) continue;
    const key = a < b ? a * map.ids.length + b : b * map.ids.length + a;
    if (seen.has(key)) continue;
    seen.add(key);
    pairs.push(a, b);
  }
  return Uint32Array.from(pairs);
}

// Buckets of sensor indexes on square cells over the layout, for finding what is under a point
// without looking at every sensor: `starts[c]` .. `starts[c + 1]` index `members` for cell c.
function buildGrid() {
  const count = map.ids.length;
  const cell = Math.max(4 * map.radius, Math.sqrt((map.width * map.height) / Math.max(count, 1)));
  const columns = Math.max(1, Math.ceil(map.width / cell));
  const rows = Math.max(1, Math.ceil(map.height / cell));
  const cellOf = (i) => {
    const column = Math.min(columns - 1, Math.max(0, Math.floor(map.xy[2 * i] / cell)));
    const row = Math.min(rows - 1, Math.max(0, Math.floor(map.xy[2 * i + 1] / cell)));
    return row * columns + column;
  };
  const starts = new Uint32Array(columns * rows + 1);
  for (let i = 0; i < count; i++) starts[cellOf(i) + 1] += 1;
  for (let c = 0; c < columns * rows; c++) starts[c + 1] += starts[c];
  const members = new Uint32Array(count);
  const filled = starts.slice(0, -1);
  for (let i = 0; i < count; i++) members[filled[cellOf(i)]++] = i;
  map.grid = { cell, columns, rows, starts, members };
}

function drawMap(sensors, edges) {
  const located = sensors.length > 0 && sensors.every(hasCoordinates);
  const layout = located ? projectCoordinates(sensors) : gridLayout(sensors);
  map.ids = sensors.map((s) => s.sensor_id);
  map.index = new Map(map.ids.map((id, i) => [id, i]));
  map.xy = Float64Array.from(layout.positions.flat());
  Object.assign(map, { width: layout.width, height: layout.height, radius: layout.radius, located });
  map.fills = map.ids.map(() => NO_DATA);
  map.known = new Uint8Array(map.ids.length);
  for (const sensor of sensors) state.sensors.set(sensor.sensor_id, sensor);
  map.edges = edgePairs(edges);
  buildGrid();
  if (!located && sensors.length) {
    $("map-note").textContent = "These sensors have no coordinates: they are laid out on a grid.";
    $("map-note").hidden = false;
  }
  requestDraw();
}

// Map units -> CSS px of the canvas: the layout fitted into the canvas, centred, then zoomed
// and panned.
function viewTransform() {
  const canvas = $("map");
  const [width, height] = [canvas.clientWidth, canvas.clientHeight];
  const fit = Math.min(width / map.width, height / map.height);
  const scale = fit * map.view.zoom;
  const x = (width - map.width * fit) / 2 + map.view.x;
  const y = (height - map.height * fit) / 2 + map.view.y;
  return { scale, x, y, width, height };
}

function requestDraw() {
  if (!map.frame) map.frame = requestAnimationFrame(drawNow);
}

function drawNow() {
  map.frame = 0;
  const started = performance.now();
  const canvas = $("map");
  const ratio = window.devicePixelRatio || 1;
  const view = viewTransform();
  const [pixelsX, pixelsY] = [Math.round(view.width * ratio), Math.round(view.height * ratio)];
  if (canvas.width !== pixelsX || canvas.height !== pixelsY) {
    [canvas.width, canvas.height] = [pixelsX, pixelsY];
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, view.width, view.height);
  const at = (i) => [view.x + map.xy[2 * i] * view.scale, view.y + map.xy[2 * i + 1] * view.scale];
  const radius = Math.max(map.radius * view.scale, MIN_RADIUS_PX);
  const margin = radius + 8;
  const inside = ([x, y]) =>
    x > -margin && y > -margin && x < view.width + margin && y < view.height + margin;

  context.beginPath();
  for (let k = 0; k < map.edges.length; k += 2) {
    const [a, b] = [at(map.edges[k]), at(map.edges[k + 1])];
    context.moveTo(a[0], a[1]);
    context.lineTo(b[0], b[1]);
  }
  context.globalAlpha = map.located ? 1 : 0.35; // on a grid the edges join arbitrary places
  context.strokeStyle = EDGE;
  context.lineWidth = 1;
  context.stroke();
  context.globalAlpha = 1;

  const byColour = new Map(); // fill -> indexes of the sensors in view
  let drawn = 0;
  for (let i = 0; i < map.ids.length; i++) {
    if (!inside(at(i))) continue;
    drawn += 1;
    const fill = map.fills[i];
    if (!byColour.has(fill)) byColour.set(fill, []);
    byColour.get(fill).push(i);
  }
  const circles = (indexes, r) => {
    context.beginPath();
    for (const i of indexes) {
      const [x, y] = at(i);
      context.moveTo(x + r, y);
      context.arc(x, y, r, 0, 2 * Math.PI);
    }
  };
  context.strokeStyle = "#ffffff";
  context.lineWidth = 1.2;
  for (const [fill, indexes] of byColour) {
    circles(indexes, radius);
    context.fillStyle = fill;
    context.fill();
    if (radius >= OUTLINE_FROM_PX) context.stroke(); // a white outline would eat a small dot
  }
  const rings = [...map.alerting].map((id) => map.index.get(id)).filter((i) => i !== undefined);
  circles(rings, radius + 3.5);
  context.strokeStyle = ALERT;
  context.lineWidth = 2.2;
  context.stroke();
  // The pointed-at and the open sensor on top of their neighbours, outlined in ink.
  const selected = map.index.get(state.selected) ?? -1;
  for (const [i, width] of [[map.hover, 1.5], [selected, 3]]) {
    if (i < 0) continue;
    circles([i], radius);
    context.fillStyle = map.fills[i];
    context.fill();
    context.strokeStyle = INK;
    context.lineWidth = width;
    context.stroke();
  }
  // What was drawn, for tests and benchmarks/dashboard.py.
  canvas.dataset.drawn = String(drawn);
  canvas.dataset.edges = String(map.edges.length / 2);
  canvas.dataset.radiusPx = radius.toFixed(2);
  canvas.dataset.coloured = String(map.known.reduce((sum, k) => sum + k, 0));
  canvas.dataset.rings = String(rings.length);
  canvas.dataset.drawMs = (performance.now() - started).toFixed(2);
  canvas.dataset.draws = String(Number(canvas.dataset.draws ?? 0) + 1);
}

// The sensor whose centre is nearest a point of the canvas (CSS px), if its circle (with a
// little slack) covers the point; -1 when none does.
function hitTest(px, py) {
  const view = viewTransform();
  const [x, y] = [(px - view.x) / view.scale, (py - view.y) / view.scale];
  const reach = (Math.max(map.radius * view.scale, MIN_RADIUS_PX) + PICK_SLACK_PX) / view.scale;
  const { cell, columns, rows, starts, members } = map.grid ?? {};
  if (!cell) return -1;
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, Math.floor(v / cell)));
  let [best, bestDistance] = [-1, reach * reach];
  for (let row = clamp(y - reach, rows); row <= clamp(y + reach, rows); row++) {
    for (let column = clamp(x - reach, columns); column <= clamp(x + reach, columns); column++) {
      const c = row * columns + column;
      for (let k = starts[c]; k < starts[c + 1]; k++) {
        const i = members[k];
        const distance = (map.xy[2 * i] - x) ** 2 + (map.xy[2 * i + 1] - y) ** 2;
        if (distance <= bestDistance) [best, bestDistance] = [i, distance];
      }
    }
  }
  return best;
}

function canvasPoint(event) {
  const box = $("map").getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top];
}

function showTooltip(i, px, py) {
  const tip = $("map-tooltip");
  if (i < 0) {
    tip.hidden = true;
    return;
  }
  const id = map.ids[i];
  tip.textContent = tooltip(id, map.values.get(id));
  tip.hidden = false;
  const wrap = $("map-wrap");
  const left = Math.min(px + 14, wrap.clientWidth - tip.offsetWidth - 4);
  const top = py + 16 + tip.offsetHeight > wrap.clientHeight ? py - tip.offsetHeight - 10 : py + 16;
  tip.style.left = `${Math.max(left, 4)}px`;
  tip.style.top = `${Math.max(top, 4)}px`;
}

// The open tooltip follows new forecasts and alerts without the pointer moving.
function refreshTooltip() {
  const tip = $("map-tooltip");
  const id = map.ids[map.hover];
  if (id !== undefined && !tip.hidden) tip.textContent = tooltip(id, map.values.get(id));
}

function setHover(i, px, py) {
  $("map").style.cursor = i < 0 ? "" : "pointer";
  showTooltip(i, px, py);
  if (i === map.hover) return;
  map.hover = i;
  requestDraw();
}

// Wheel zooms about the pointer; a drag pans; a click (a press that barely moved) opens the
// sensor under it; a double click shows the whole city again.
function wireMap() {
  const canvas = $("map");
  let press = null; // {x, y, viewX, viewY, moved}
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    canvas.setPointerCapture(event.pointerId); // its pointerup comes here even off the map
    const [x, y] = canvasPoint(event);
    press = { x, y, viewX: map.view.x, viewY: map.view.y, moved: false };
  });
  canvas.addEventListener("pointermove", (event) => {
    const [x, y] = canvasPoint(event);
    if (press && (press.moved || Math.hypot(x - press.x, y - press.y) > DRAG_PX)) {
      press.moved = true;
      map.view.x = press.viewX + x - press.x;
      map.view.y = press.viewY + y - press.y;
      setHover(-1);
      requestDraw();
      return;
    }
    setHover(hitTest(x, y), x, y);
  });
  canvas.addEventListener("pointerleave", () => setHover(-1));
  canvas.addEventListener("pointercancel", () => {
    press = null;
  });
  canvas.addEventListener("pointerup", (event) => {
    const clicked = press && !press.moved;
    press = null;
    if (!clicked) return;
    const i = hitTest(...canvasPoint(event));
    if (i >= 0) showSensor(map.ids[i]);
  });
  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const [x, y] = canvasPoint(event);
      const before = viewTransform();
      const zoom = map.view.zoom * Math.exp(-event.deltaY / 500);
      map.view.zoom = Math.min(ZOOM_LIMITS[1], Math.max(ZOOM_LIMITS[0], zoom));
      const after = viewTransform();
      // Keep the map point under the pointer where it was.
      const [mx, my] = [(x - before.x) / before.scale, (y - before.y) / before.scale];
      map.view.x += x - (after.x + mx * after.scale);
      map.view.y += y - (after.y + my * after.scale);
      requestDraw();
    },
    { passive: false },
  );
  canvas.addEventListener("dblclick", () => {
    map.view = { zoom: 1, x: 0, y: 0 };
    requestDraw();
  });
  new ResizeObserver(requestDraw).observe(canvas);
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
  map.values = values;
  map.ids.forEach((id, i) => {
    const value = values.get(id);
    const known = Number.isFinite(value);
    const used = full.get(id)?.utilisation;
    const shown = capacity ? known && Number.isFinite(used) : known;
    map.fills[i] = shown ? scale.colour(capacity ? used : value) : NO_DATA;
    map.known[i] = known ? 1 : 0;
  });
  renderLegend(scale);
  refreshTooltip();
  requestDraw();
}

// Where each sensor is and how it is drawn, read-only: what tests and benchmarks/dashboard.py
// look at instead of one DOM element per sensor.
window.urbanflowMap = {
  ids: () => [...map.ids],
  // The sensor's centre in the page's viewport (what a click at it would pass), or null.
  screenPoint(id) {
    const i = map.index.get(id);
    if (i === undefined) return null;
    const view = viewTransform();
    const box = $("map").getBoundingClientRect();
    const [x, y] = [map.xy[2 * i], map.xy[2 * i + 1]];
    return { x: box.left + view.x + x * view.scale, y: box.top + view.y + y * view.scale };
  },
  sensorAt(clientX, clientY) {
    const box = $("map").getBoundingClientRect();
    const i = hitTest(clientX - box.left, clientY - box.top);
    return i < 0 ? null : map.ids[i];
  },
  look(id) {
    const i = map.index.get(id);
    if (i === undefined) return null;
    return {
      fill: map.fills[i],
      forecast: map.known[i] === 1,
      alerting: map.alerting.has(id),
      selected: state.selected === id,
      tooltip: tooltip(id, map.values.get(id)),
    };
  },
};

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
  const covered = `${paths.size} of ${map.ids.length} sensors`;
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

// A ring around every sensor with a firing alert, drawn above the sensors.
function markAlertingSensors() {
  map.alerting = new Set(state.alerts.map((a) => a.sensor_id));
  refreshTooltip(); // it names the firing rules
  requestDraw();
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

async function showSensor(id) {
  const request = ++state.panelRequest;
  if (id !== state.selected) {
    $("sensor-chart").replaceChildren(); // not another sensor's chart while this one loads
    $("panel-summary").textContent = "Loading…";
  }
  state.selected = id;
  requestDraw(); // outlined, on top of its neighbours
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
  requestDraw();
}

// ------------------------------------------------------------------- chart

function svg(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.append(node);
  return node;
}

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
  wireMap();
  wireFinder();
  const list = $("alert-list");
  const pickAlert = (event) => {
    const item = event.target.closest("li.alert");
    if (item) showSensor(item.getAttribute("data-sensor-id"));
  };
  list.addEventListener("click", pickAlert);
  list.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") pickAlert(event);
  });
}

// The keyboard's way to a sensor (the map has no element per sensor to tab to): type its id,
// Enter opens it. The ids are offered as suggestions once the field is first used.
function wireFinder() {
  const field = $("find-sensor-id");
  field.addEventListener(
    "focus",
    () => {
      const options = map.ids.map((id) => {
        const option = document.createElement("option");
        option.value = id;
        const name = state.sensors.get(id)?.name;
        if (name) option.label = name;
        return option;
      });
      $("sensor-ids").replaceChildren(...options);
    },
    { once: true },
  );
  $("find-sensor").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = field.value.trim();
    const known = map.index.has(id);
    field.setCustomValidity(known || !id ? "" : `No sensor ${id}`);
    field.reportValidity();
    if (known) showSensor(id);
  });
  field.addEventListener("input", () => field.setCustomValidity(""));
}

wireControls();
start();
