// `lanewatch count`: count vehicles by hand, frame-exactly, with the keyboard.
//
// The server decodes the video and serves frame n as a JPEG (any codec `process` reads, and
// exact: a <video> element seeks to keyframes and times, not frames). A count records the
// frame on screen (the one last stepped to) and its time as the server formatted it, so the
// CSV's time_s and frame agree with the review's events.jsonl. The entries are kept in this
// browser's storage as they are made: a reload or a crash loses nothing.

import { download, postCounts } from "./count_csv.js";
import { drawFrame, laneColor } from "./count_view.js";

const SPEEDS = [0.25, 0.5, 1, 2, 4];
const AHEAD = 6;  // frames requested ahead while playing
const KEEP = 40;  // decoded frames kept in the page
const $ = (id) => document.getElementById(id);

const state = {
  meta: null, target: 0, shown: -1, shownReduced: false, bitmap: null, playing: false, run: 0,
  speed: 1,
  classIndex: 0, entries: [], saved: true, flash: null, loading: false,
  paceReset: true, rate: { frames: 0, since: 0, value: 0 },
};
const frames = new Map();  // "n" or "n/reduced" -> {promise, bitmap once loaded}

function last() { return state.meta.frame_count - 1; }
function frameUrl(n, reduced) {
  return state.meta.frame_url.replace("{n}", String(n)) + (reduced ? "&size=reduced" : "");
}
/** Half-size frames while playing fast or a video larger than 720p (the status says the
 *  speed reached); every frame stepped to or paused on is full size. */
function playReduced() { return state.speed > 1 || state.meta.width > 1280; }
function storageKey() {
  const m = state.meta;
  return `lanewatch-count:${m.video}:${m.frame_count}:${m.stream}:${m.config}`;
}

function say(text, bad = false) {
  $("message").textContent = text;
  $("message").className = bad ? "error" : "muted";
}

function fetchFrame(n, reduced = false) {
  const key = reduced ? `${n}/reduced` : String(n);
  if (!frames.has(key)) {
    const entry = { bitmap: null };
    entry.promise = fetch(frameUrl(n, reduced)).then(async (r) => {
      if (!r.ok) throw new Error((await r.json()).message);
      entry.bitmap = await createImageBitmap(await r.blob());
      return entry.bitmap;
    });
    frames.set(key, entry);
    // Forget the frames farthest from where we are. Only a loaded one that is not on the
    // canvas is released at once (a redraw uses it); one still loading may be awaited.
    while (frames.size > KEEP) {
      let worst = null;
      const distance = (k) => Math.abs(Number.parseInt(k, 10) - state.target);
      for (const k of frames.keys()) {
        if (worst === null || distance(k) > distance(worst)) worst = k;
      }
      const old = frames.get(worst);
      if (old.bitmap && old.bitmap !== state.bitmap) old.bitmap.close();
      frames.delete(worst);
    }
  }
  return frames.get(key).promise;
}

function draw(bitmap, n, reduced = false) {
  state.bitmap = bitmap;
  state.shown = n;
  state.shownReduced = reduced;
  drawFrame($("frame"), state.meta, bitmap, state.flash);
  showStatus();
}

function showStatus() {
  const s = $("status"), m = state.meta;
  const n = state.target;
  const rate = state.playing && state.rate.value
    ? ` (playing at ${(state.rate.value / m.fps).toFixed(2)}×)` : "";
  s.textContent = `frame ${n} / ${last()} · ${m.times[n]} s · ${state.speed}×${rate}`;
  s.dataset.frame = String(state.shown);
  s.dataset.target = String(n);
  s.dataset.playing = String(state.playing);
  s.dataset.reduced = String(state.shownReduced);
  $("play").textContent = state.playing ? "pause" : "play";
}

/** Show the frame stepped to; keys pressed faster than frames load skip the ones between. */
async function showTarget() {
  if (state.loading) return;
  state.loading = true;
  try {
    while (!state.playing && (state.shown !== state.target || state.shownReduced)) {
      const n = state.target;
      const bitmap = await fetchFrame(n);
      if (!state.playing) draw(bitmap, n);
    }
  } catch (err) {
    say(`cannot show frame ${state.target}: ${err.message}`, true);
  } finally {
    state.loading = false;
  }
}

function seek(n) {
  pause(false);
  state.target = Math.min(Math.max(n, 0), last());
  showStatus();
  showTarget();
}

function pause(refresh = true) {
  if (!state.playing) return;
  state.playing = false;
  state.run += 1;  // the play loop stops at its next step
  state.target = state.shown;
  showStatus();
  if (refresh) showTarget();  // full size
}

/** Play every frame in order, paced at fps x speed; never skips one (a slow box plays slower,
 *  and the status says how fast). */
async function play() {
  if (state.playing || state.target >= last()) return;
  state.playing = true;
  const run = ++state.run;
  const alive = () => state.playing && state.run === run;
  state.paceReset = true;
  state.rate = { frames: 0, since: performance.now(), value: 0 };
  let origin = 0, start = 0;
  showStatus();
  try {
    let n = state.target;  // from the frame stepped to, shown or still loading
    while (alive() && n < last()) {
      n += 1;
      const reduced = playReduced();
      for (let k = n; k <= Math.min(n + AHEAD, last()); k++) fetchFrame(k, reduced);
      const bitmap = await fetchFrame(n, reduced);
      const now = performance.now();
      if (state.paceReset) { origin = n; start = now; state.paceReset = false; }
      const wait = start + ((n - origin) * 1000) / (state.meta.fps * state.speed) - now;
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else if (wait < -250) state.paceReset = true;  // behind: go on from here, no rush
      if (!alive()) return;  // paused (and maybe stepped) meanwhile
      state.target = n;
      draw(bitmap, n, reduced);
      measureRate();
    }
  } catch (err) {
    say(`playback stopped: ${err.message}`, true);
  }
  if (alive()) pause();  // the end of the video, or an error
}

function measureRate() {
  const r = state.rate, now = performance.now();
  r.frames += 1;
  if (now - r.since >= 1000) {
    r.value = (r.frames * 1000) / (now - r.since);
    r.frames = 0;
    r.since = now;
  }
}

function setSpeed(speed) {
  state.speed = speed;
  state.paceReset = true;
  $("speed").value = String(speed);
  showStatus();
}

function changeSpeed(step) {
  const i = SPEEDS.indexOf(state.speed) + step;
  setSpeed(SPEEDS[Math.min(Math.max(i, 0), SPEEDS.length - 1)]);
}

// -- counting ----------------------------------------------------------------------------

function count(key) {
  const cls = state.meta.classes[state.classIndex].name;
  state.entries.push({ frame: state.target, lane: key.lane, direction: key.direction,
                       class: cls });
  state.flash = key.lane;
  const row = $("keymap").tBodies[0].rows[state.meta.keys.indexOf(key)];
  row.classList.add("flash");
  setTimeout(() => {
    state.flash = null;
    row.classList.remove("flash");
    if (state.bitmap) redraw();
  }, 250);
  if (state.bitmap) redraw();
  changed(`${key.lane} ${key.direction} ${cls} at frame ${state.target}`);
}

function redraw() { drawFrame($("frame"), state.meta, state.bitmap, state.flash); }

function undo() {
  const e = state.entries.pop();
  if (e) changed(`undone: ${e.lane} ${e.direction} ${e.class} at frame ${e.frame}`);
}

function remove(index) {
  const [e] = state.entries.splice(index, 1);
  changed(`removed: ${e.lane} ${e.direction} ${e.class} at frame ${e.frame}`);
}

function selectClass(i) {
  state.classIndex = i;
  [...$("classes").children].forEach((b, k) => b.classList.toggle("active", k === i));
  $("classes").dataset.current = state.meta.classes[i].name;
}

function changed(message) {
  state.saved = false;
  $("save-status").textContent = "not saved";
  $("save-status").className = "badge";
  localStorage.setItem(storageKey(), JSON.stringify(state.entries));
  renderTally();
  renderEntries();
  say(message);
}

function renderTally() {
  const m = state.meta, n = new Map();
  for (const e of state.entries) {
    const k = `${e.lane}|${e.direction}|${e.class}`;
    n.set(k, (n.get(k) || 0) + 1);
  }
  const classes = m.classes.map((c) => c.name);
  $("tally").tHead.innerHTML = "";
  const head = $("tally").tHead.insertRow();
  for (const text of ["lane", "direction", ...classes, "total"]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.append(th);
  }
  const body = $("tally").tBodies[0];
  body.innerHTML = "";
  for (const key of m.keys) {
    const row = body.insertRow();
    row.insertCell().textContent = key.lane;
    row.insertCell().textContent = key.direction;
    let total = 0;
    for (const cls of classes) {
      const v = n.get(`${key.lane}|${key.direction}|${cls}`) || 0;
      total += v;
      const cell = row.insertCell();
      cell.className = "n";
      cell.textContent = v ? String(v) : "·";
      cell.dataset.key = `${key.lane}|${key.direction}|${cls}`;
      cell.dataset.n = String(v);
    }
    const cell = row.insertCell();
    cell.className = "n total";
    cell.textContent = String(total);
  }
  $("tally").dataset.total = String(state.entries.length);
}

function renderEntries() {
  $("entry-count").textContent = String(state.entries.length);
  const items = state.entries.map((e, i) => {
    const li = document.createElement("li");
    li.dataset.frame = String(e.frame);
    li.title = "show this frame";
    li.textContent = `${e.frame} · ${state.meta.times[e.frame]} s · ${e.lane} ${e.direction} · ${e.class}`;
    const del = document.createElement("button");
    del.className = "del";
    del.type = "button";
    del.textContent = "×";
    del.title = "delete this count";
    del.onclick = (event) => { event.stopPropagation(); remove(i); };
    li.append(del);
    li.onclick = () => seek(e.frame);
    return li;
  });
  $("entries").replaceChildren(...items.reverse());  // the newest first
}

// -- saving ------------------------------------------------------------------------------

async function save() {
  const m = state.meta, n = state.entries.length;
  const name = download(m, state.entries);
  try {
    const saved = await postCounts(m, state.entries);
    say(`downloaded ${name}${saved ? ` and saved ${saved}` : ""} (${n} rows)`);
  } catch (err) {
    say(`downloaded ${name}, but not saved on the server: ${err.message}`, true);
    $("save-status").textContent = "download only";
    $("save-status").className = "badge bad";
    return;
  }
  state.saved = true;
  $("save-status").textContent = `saved ${n}`;
  $("save-status").className = "badge ok";
  $("save-status").dataset.saved = String(n);
}

// -- keys and controls -------------------------------------------------------------------

function onKey(e) {
  if (!state.meta || e.target === $("goto")) return;
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key;
  // A key held down repeats: that scrubs with the arrows, but never counts, undoes or saves
  // twice.
  if (e.repeat && key !== "ArrowRight" && key !== "ArrowLeft") {
    if (key.length === 1 || key === "Backspace") e.preventDefault();
    return;
  }
  let handled = true;
  if (key === " ") state.playing ? pause() : play();
  else if (key === "ArrowRight" || key === "ArrowLeft") {
    const step = (e.shiftKey ? 10 : 1) * (key === "ArrowRight" ? 1 : -1);
    seek((state.playing ? state.shown : state.target) + step);
  } else if (key === "Home") seek(0);
  else if (key === "End") seek(last());
  else if (key === "-" || key === "_") changeSpeed(-1);
  else if (key === "+" || key === "=") changeSpeed(1);
  else if (key === "Backspace" || (ctrl && key.toLowerCase() === "z")) undo();
  else if (ctrl && key.toLowerCase() === "s") save();
  else if (!ctrl && !e.altKey && state.meta.keys.some((k) => k.key === key)) {
    count(state.meta.keys.find((k) => k.key === key));
  } else if (!ctrl && !e.altKey && state.meta.classes.some((c) => c.key === key.toLowerCase())) {
    selectClass(state.meta.classes.findIndex((c) => c.key === key.toLowerCase()));
  } else handled = false;
  if (handled) e.preventDefault();
}

function renderBoard() {
  const m = state.meta;
  $("keymap").tBodies[0].replaceChildren(...m.keys.map((k) => {
    const row = document.createElement("tr");
    const color = laneColor(m.lanes.findIndex((l) => l.name === k.lane));
    row.innerHTML = `<td></td><td><span class="swatch" style="--c:${color}"></span></td><td></td>`;
    row.cells[0].textContent = k.key || "–";
    row.cells[1].append(k.lane);
    row.cells[2].textContent = `${k.direction} (${k.side})`;
    row.title = "count one (click or key)";
    row.onclick = () => count(k);
    return row;
  }));
  $("classes").replaceChildren(...m.classes.map((c, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.innerHTML = "<kbd></kbd> ";
    b.firstChild.textContent = c.key || "";
    b.append(c.name);
    b.onclick = () => { selectClass(i); b.blur(); };
    return b;
  }));
  selectClass(0);
}

function wireControls() {
  const buttons = { first: () => seek(0), back10: () => seek(state.target - 10),
                    back1: () => seek(state.target - 1), fwd1: () => seek(state.target + 1),
                    fwd10: () => seek(state.target + 10), save,
                    play: () => (state.playing ? pause() : play()) };
  for (const [id, action] of Object.entries(buttons)) {
    $(id).addEventListener("click", () => { $(id).blur(); action(); });
  }
  $("speed").addEventListener("change", () => { setSpeed(Number($("speed").value)); $("speed").blur(); });
  $("goto").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { seek(Number.parseInt($("goto").value, 10) || 0); $("goto").blur(); }
    if (e.key === "Escape") $("goto").blur();
  });
  window.addEventListener("keydown", onKey);
  window.addEventListener("beforeunload", (e) => { if (!state.saved) e.preventDefault(); });
}

async function start() {
  wireControls();
  try {
    const r = await fetch("/api/recording");
    state.meta = await r.json();
    if (!r.ok) throw new Error(state.meta.message);
  } catch (err) {
    say(`cannot load the recording: ${err.message}`, true);
    return;
  }
  const m = state.meta;
  $("video-name").textContent = `${m.video} · ${m.width}×${m.height} · ${m.fps.toFixed(3)} frames/s · ` +
    `${m.frame_count} frames · stream ${m.stream}` + (m.save_to ? ` · saves to ${m.save_to}` : "");
  // This browser's counts (the newest state), else those of the --output file if it exists.
  const local = JSON.parse(localStorage.getItem(storageKey()) || "[]");
  const kept = local.length ? local : m.saved_entries;
  // Only counts this board can still make (the config may have changed since).
  state.entries = kept.filter((e) => Number.isInteger(e.frame) && e.frame >= 0 && e.frame <= last()
    && m.keys.some((k) => k.lane === e.lane && k.direction === e.direction)
    && m.classes.some((c) => c.name === e.class));
  renderBoard();
  renderTally();
  renderEntries();
  if (state.entries.length && !local.length) {
    say(`${state.entries.length} count(s) read from ${m.save_to}: counting goes on from there`);
    $("save-status").textContent = `saved ${state.entries.length}`;
    $("save-status").className = "badge ok";
  } else if (state.entries.length) {
    state.saved = false;
    say(`${state.entries.length} count(s) restored from this browser's last session`);
  } else if (m.classes_from === "default") {
    say("the config does not list classes: the board offers the usual road users");
  }
  document.body.dataset.ready = "true";
  seek(0);
}

start();
