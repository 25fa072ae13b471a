// The operator dashboard: stream picker, live annotated video, counts by lane/class/direction,
// flow chart, stream health and congestion alerts, all from one WebSocket plus a few API calls.

import { api, LiveSocket } from "./api.js";
import { FlowChart } from "./chart.js";
import { LaneEditor } from "./editor.js";
import { DROP_WARN, LATENCY_WARN_MS, healthWarnings } from "./health.js";

const $ = (id) => document.getElementById(id);
const state = {
  stream: null, framesSeen: 0, videoUrl: null, lastStats: null, fps: null, latency: null,
};
const chart = new FlowChart($("flow"), $("flow-legend"));
const editor = new LaneEditor({
  canvas: $("editor"), lanes: $("ed-lanes"), message: $("ed-message"), yaml: $("ed-yaml"),
  download: $("ed-download"), name: $("ed-name"), direction: $("ed-direction"),
});

// -- WebSocket messages ------------------------------------------------------------------------
const socket = new LiveSocket({
  onState(status, reason) {
    const badge = $("connection");
    badge.textContent = status === "open" ? "live" : `disconnected (${reason}), retrying…`;
    badge.className = `badge ${status === "open" ? "ok" : "bad"}`;
  },
  onFrame(header, jpeg) {
    if (header.stream !== state.stream) return;
    const url = URL.createObjectURL(jpeg);
    const img = $("video");
    img.onload = () => URL.revokeObjectURL(url);
    img.src = url;
    state.framesSeen += 1;
    state.latency = Date.now() / 1000 - header.ts;
    img.dataset.frames = String(state.framesSeen);
    $("video-status").textContent =
      `frame ${header.frame} · ${header.width}×${header.height} · ` +
      `${(state.latency * 1000).toFixed(0)} ms behind the camera`;
  },
  onJson(message) {
    if (message.stream && message.stream !== state.stream) return;
    if (message.type === "counts") renderCounts(message.lanes);
    else if (message.type === "stats") renderHealth(message);
    else if (message.type === "event" && message.event.type === "crossing") {
      chart.add(message.event.lane, message.event.time_s);
    }
    else if (message.type === "alert") addAlert(message.alert);
    else if (message.type === "error") console.warn("lanewatch:", message.code, message.message);
  },
});

// -- rendering -----------------------------------------------------------------------------------
function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderCounts(lanes) {
  const body = $("counts").querySelector("tbody");
  let total = 0;
  body.replaceChildren(...lanes.map((lane) => {
    const row = document.createElement("tr");
    const sum = Object.values(lane.counts).reduce((a, b) => a + b, 0);
    total += sum;
    const name = cell(lane.name);
    name.style.borderLeft = `4px solid ${chart.color(lane.name, lanes.indexOf(lane))}`;
    row.append(name, cell(String(sum), "total"));
    const detail = document.createElement("td");
    for (const [cls, byDirection] of Object.entries(lane.by_class)) {
      for (const [direction, n] of Object.entries(byDirection)) {
        const pill = document.createElement("span");
        pill.className = "pill";
        pill.textContent = `${cls} ${direction}: ${n}`;
        detail.append(pill);
      }
    }
    const queue = lane.queue ? ` (${lane.queue} stopped)` : "";
    row.append(detail, cell(String(lane.occupancy) + queue),
               cell(lane.congested ? "CONGESTED" : "free", lane.congested ? "jam" : "free"));
    return row;
  }));
  $("counts").dataset.total = String(total);
}

function renderHealth(stats) {
  const previous = state.lastStats;
  renderWarnings(healthWarnings(stats, previous && previous.id === stats.id ? previous : null));
  if (previous && stats.ts > previous.ts) {
    state.fps = (stats.frames_processed - previous.frames_processed) / (stats.ts - previous.ts);
  }
  state.lastStats = stats;
  $("h-state").textContent = stats.state;
  $("h-state").className = stats.state === "running" ? "free" : "jam";
  $("h-fps").textContent = state.fps === null ? "–"
    : `${state.fps.toFixed(1)} frames/s of ${stats.fps ? stats.fps.toFixed(1) : "?"}`;
  const server = stats.latency_ms
    ? `p50 ${stats.latency_ms.p50.toFixed(0)} / p99 ${stats.latency_ms.p99.toFixed(0)} ms ` +
      "capture to publish" : "–";
  $("h-latency").textContent = server + (state.latency === null ? ""
    : `; ${(state.latency * 1000).toFixed(0)} ms to this screen`);
  const seen = stats.frames_received || 0;
  $("h-drops").textContent = `${stats.frames_dropped} of ${seen} frames` +
    (seen ? ` (${((100 * stats.frames_dropped) / seen).toFixed(0)} %)` : "");
  $("h-reconnects").textContent = String(stats.reconnects);
  $("h-error").hidden = !stats.error;
  $("h-error").textContent = stats.error || "";
  renderCounting(stats);
}

// High drop rate, high latency, inexact counts: the health card turns amber and says which.
function renderWarnings(warnings) {
  const list = $("h-warnings");
  list.replaceChildren(...warnings.map((w) => {
    const item = document.createElement("li");
    item.textContent = w.text;
    item.dataset.kind = w.kind;
    return item;
  }));
  list.hidden = warnings.length === 0;
  list.title = `warns above ${(100 * DROP_WARN).toFixed(0)} % of frames dropped (over the ` +
    `last update), above ${LATENCY_WARN_MS} ms p99 latency, and when counts are inexact`;
  $("health").closest(".card").classList.toggle("warn", warnings.length > 0);
  const kinds = new Set(warnings.map((w) => w.kind));
  $("h-drops").classList.toggle("warn", kinds.has("drops"));
  $("h-latency").classList.toggle("warn", kinds.has("latency"));
  $("health").dataset.warnings = [...kinds].join(",");
}

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

/** "every frame", "every 2nd frame", "every 3rd frame", "every 11th frame", "every 21st frame" */
function everyNth(n) {
  if (n <= 1) return "every frame";
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th"
    : ({ 1: "st", 2: "nd", 3: "rd" })[n % 10] || "th";
  return `every ${n}${suffix} frame`;
}

// Whether the stream's counts are exact: they are while the gap between two detections (the
// model runs on every Nth frame when the box cannot keep up) stays under the stream's limit.
// A server that does not say (an older version, a cluster gateway) gets neither the badge nor
// the detection row, rather than a guess.
function renderCounting(stats) {
  const box = $("h-counting");
  const known = typeof stats.counting_reliable === "boolean";
  box.hidden = !known;
  const withCadence = known && isNumber(stats.cadence);
  for (const element of document.querySelectorAll(".counting-row")) element.hidden = !withCadence;
  if (!known) {
    delete box.dataset.reliable;
    return;
  }
  const reliable = stats.counting_reliable;
  const gapShort = isNumber(stats.largest_gap_s) && isNumber(stats.gap_limit_s)
    ? `largest gap ${stats.largest_gap_s.toFixed(2)} s` +
      (isNumber(stats.largest_gap_frames) ? ` (${stats.largest_gap_frames} frames)` : "") +
      `, limit ${stats.gap_limit_s.toFixed(2)} s` : "";
  const gap = gapShort && gapShort.replace("largest gap", "largest gap between detections");
  // Unreliable always says why, visibly; an exact count shows a reason only if the server has
  // one, and its gap in the tooltip.
  const reason = stats.counting_reason || (reliable ? ""
    : gap || "detections are further apart than this stream's exactness limit");
  box.className = reliable ? "counting" : "counting unreliable";
  box.dataset.reliable = String(reliable);
  box.title = reason || gap;
  $("h-counting-badge").textContent = reliable ? "counting exact" : "counting UNRELIABLE";
  $("h-counting-reason").textContent = reason;
  const cadence = $("h-cadence");
  cadence.classList.toggle("unreliable", !reliable);
  if (!withCadence) return;
  const parts = [`model on ${everyNth(stats.cadence)}`];
  if (isNumber(stats.processed_fraction)) {
    parts.push(`${(100 * stats.processed_fraction).toFixed(0)} % of frames seen (last minute)`);
  }
  if (gapShort) parts.push(gapShort);
  cadence.textContent = parts.join(" · ");
  cadence.title = gap;
}

function addAlert(alert) {
  const list = $("alerts");
  if (list.firstElementChild && list.firstElementChild.classList.contains("muted")) {
    list.replaceChildren();
  }
  const item = document.createElement("li");
  const when = new Date(alert.time_s * 1000).toLocaleTimeString();
  let text = "";
  let bad = true;
  if (alert.type === "wrong_way") {
    text = `${alert.lane}: ${alert.class} #${alert.track_id} driving the wrong way`;
  } else if (alert.type === "dwell") {
    text = `${alert.area}: ${alert.class} #${alert.track_id} stopped ${alert.dwell_s.toFixed(0)} s`;
  } else {
    text = `${alert.lane}: ` +
      (alert.congested ? `congested (${alert.occupancy} in the lane)` : "cleared");
    bad = alert.congested;
  }
  item.textContent = `${when} ${text}`;
  item.className = bad ? "jam" : "free";
  list.prepend(item);
  while (list.children.length > 50) list.lastElementChild.remove();
}

// -- stream selection ----------------------------------------------------------------------------
async function follow(stream) {
  state.stream = stream;
  state.lastStats = null;
  state.fps = null;
  history.replaceState(null, "", `#${encodeURIComponent(stream)}`);
  const img = $("video");
  const width = Math.min(Math.round((img.clientWidth || 960) * (window.devicePixelRatio || 1)),
                         1920);
  socket.follow(stream, { max_fps: 10, max_width: Math.max(width, 320) });
  try {
    const [detail, flow] = await Promise.all([
      api(`/api/streams/${encodeURIComponent(stream)}`),
      api(`/api/streams/${encodeURIComponent(stream)}/flow?minutes=15&bin_s=30`),
    ]);
    if (state.stream !== stream) return;
    renderCounts(detail.lanes);
    renderHealth({ ...detail, ts: Date.now() / 1000 });
    chart.reset(flow);
  } catch (err) {
    $("h-error").hidden = false;
    $("h-error").textContent = err.message;
  }
  if (!$("editor-view").hidden) editor.load(stream);
}

async function start() {
  const picker = $("stream-picker");
  let streams = [];
  try {
    streams = await api("/api/streams");
  } catch (err) {
    $("connection").textContent = `cannot list streams: ${err.message}`;
    $("connection").className = "badge bad";
    return;
  }
  picker.replaceChildren(...streams.map((s) => new Option(`${s.id} (${s.state})`, s.id)));
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (streams.some((s) => s.id === wanted)) picker.value = wanted;
  picker.onchange = () => follow(picker.value);
  if (picker.value) follow(picker.value);
}

function showTab(name) {
  $("live-view").hidden = name !== "live";
  $("editor-view").hidden = name !== "editor";
  $("tab-live").classList.toggle("active", name === "live");
  $("tab-editor").classList.toggle("active", name === "editor");
  if (name === "editor" && state.stream && editor.stream !== state.stream) {
    editor.load(state.stream);
  }
}

$("tab-live").onclick = () => showTab("live");
$("tab-editor").onclick = () => showTab("editor");
$("ed-reload").onclick = () => editor.load(state.stream);
$("ed-new").onclick = () => editor.newLane();
$("ed-polygon").onclick = () => editor.startPolygon();
$("ed-line").onclick = () => editor.startLine();
$("ed-finish").onclick = () => editor.finish();
$("ed-delete").onclick = () => editor.deleteLane();
$("ed-export").onclick = () => editor.exportYaml();
setInterval(() => chart.draw(), 1000);
chart.draw();
start();
