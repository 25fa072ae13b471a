// Lane editor: a snapshot of the stream, its lanes drawn over it; draw and edit polygons and
// counting lines with the mouse; export validated YAML (the server checks it exactly like
// `lanewatch check-config`) or apply the lanes to the running stream after a diff.
// Coordinates are kept in pixels of the camera frame.
//
// Editing is non-destructive: drawing a lane's polygon or line builds a draft beside the lane
// (the old shape stays, and stays drawn, until the draft is finished; Escape drops it), and
// every edit can be undone (Undo, Ctrl+Z).

import { api } from "./api.js";
import { COLORS } from "./chart.js";
import { ApplyFlow } from "./editor_apply.js";
import { drawArrow } from "./editor_draw.js";

const GRAB_RADIUS = 9;  // canvas pixels within which a click grabs a point
const HISTORY = 200;  // undo steps kept
const LOAD_RETRIES = 15;  // a stream without a frame yet is asked again, every LOAD_RETRY_MS
const LOAD_RETRY_MS = 2000;

const $ = (id) => document.getElementById(id);

export class LaneEditor {
  constructor(el) {
    this.el = el;  // {canvas, lanes, message, yaml, download, name, direction}
    this.stream = null;
    this.image = null;
    this.frame = { width: 1280, height: 720 };
    this.lanes = [];
    this.selected = -1;
    this.draft = null;  // {key: "polygon" | "line", points: [...]} being drawn
    this.drag = null;  // {lane, key, index, saved}
    this.history = [];  // snapshots of the lanes before each edit
    this.applying = new ApplyFlow(this);  // "Apply to stream": diff, confirm, apply
    const c = el.canvas;
    c.addEventListener("mousedown", (e) => this.onDown(e));
    c.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", () => { this.drag = null; });
    c.addEventListener("dblclick", (e) => { e.preventDefault(); this.finish(); });
    // Renaming is one undo step per visit of the field, not one per key typed.
    el.name.addEventListener("focus", () => this.checkpoint());
    el.name.addEventListener("input", () => {
      const lane = this.lanes[this.selected];
      if (lane) { lane.name = el.name.value.trim(); this.render(); }
    });
    el.direction.addEventListener("change", () => {
      const lane = this.lanes[this.selected];
      if (!lane) return;
      this.checkpoint();
      lane.direction = el.direction.value;
      this.render();
    });
    // The controls added with the apply, undo and flip actions are wired here (dashboard.js
    // wires the original ones).
    const wire = (id, action) => { if ($(id)) $(id).onclick = action; };
    wire("ed-undo", () => this.undo());
    wire("ed-flip", () => this.flip());
    wire("ed-apply", () => this.previewApply());
    wire("ed-confirm", () => this.confirmApply());
    wire("ed-cancel", () => this.cancelApply());
    window.addEventListener("keydown", (e) => this.onKey(e));
  }

  /** Load the stream's snapshot and its configured lanes (the undo history starts afresh). */
  async load(stream, note = null, attempt = 0) {
    this.stream = stream;
    this.say("loading…");
    this.hideApply();
    try {
      const info = await api(`/api/streams/${encodeURIComponent(stream)}/lanes`);
      const response = await api(`/api/streams/${encodeURIComponent(stream)}/snapshot.jpg`,
                                 { raw: true });
      const bitmap = await createImageBitmap(await response.blob());
      this.image = bitmap;
      this.frame = { width: info.width, height: info.height };
      this.lanes = info.lanes.map((lane) => ({ ...lane }));
      this.selected = -1;
      this.select(this.lanes.length ? 0 : -1);
      this.draft = null;
      this.history = [];
      this.say(note || `${info.width}×${info.height} frame, ${this.lanes.length} lane(s)`);
    } catch (err) {
      this.say(`cannot load the stream: ${err.message}`, true);
      // 503: no frame yet (a camera starting or restarting): try again while still shown.
      if (err.status === 503 && attempt < LOAD_RETRIES) {
        setTimeout(() => { if (this.stream === stream) this.load(stream, note, attempt + 1); },
                   LOAD_RETRY_MS);
      }
    }
    this.render();
  }

  say(text, bad = false) {
    this.el.message.textContent = text;
    this.el.message.className = bad ? "error" : "muted";
  }

  // -- undo ------------------------------------------------------------------------------------
  /** Remember the lanes as they are, before an edit. */
  checkpoint() {
    this.history.push(JSON.stringify({ lanes: this.lanes, selected: this.selected }));
    if (this.history.length > HISTORY) this.history.shift();
    this.render();
  }

  undo() {
    if (this.draft) { this.cancelDraft(); return; }  // first the drawing under way
    const last = this.history.pop();
    if (!last) { this.say("nothing to undo"); return; }
    const { lanes, selected } = JSON.parse(last);
    this.lanes = lanes;
    this.select(Math.min(selected, lanes.length - 1));
    this.say("undone");
  }

  onKey(event) {
    if (this.el.canvas.closest("[hidden]")) return;  // the editor is not on screen
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
    if (event.key === "Escape" && this.draft) {
      event.preventDefault();
      this.cancelDraft();
    } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !typing) {
      event.preventDefault();
      this.undo();
    }
  }

  // -- coordinates ---------------------------------------------------------------------------
  get scale() { return this.el.canvas.width / this.frame.width; }

  toFrame(event) {
    const rect = this.el.canvas.getBoundingClientRect();
    const cx = (event.clientX - rect.left) * (this.el.canvas.width / rect.width);
    const cy = (event.clientY - rect.top) * (this.el.canvas.height / rect.height);
    const x = Math.min(Math.max(cx / this.scale, 0), this.frame.width);
    const y = Math.min(Math.max(cy / this.scale, 0), this.frame.height);
    return [Math.round(x), Math.round(y)];
  }

  grab(point) {
    const radius = GRAB_RADIUS / this.scale;
    const order = [this.selected, ...this.lanes.keys()].filter((i) => i >= 0);
    for (const i of order) {
      for (const key of ["line", "polygon"]) {
        const pts = this.lanes[i][key] || [];
        const index = pts.findIndex(([x, y]) => Math.hypot(x - point[0], y - point[1]) <= radius);
        if (index >= 0) return { lane: i, key, index };
      }
    }
    return null;
  }

  // -- mouse ---------------------------------------------------------------------------------
  onDown(event) {
    const p = this.toFrame(event);
    if (this.draft) {
      this.draft.points.push(p);
      if (this.draft.key === "line" && this.draft.points.length === 2) this.finish();
    } else {
      this.drag = this.grab(p);
      if (this.drag) {
        this.select(this.drag.lane);
        this.drag.saved = false;  // the undo step is taken when the point first moves
      }
    }
    this.render();
  }

  onMove(event) {
    if (!this.drag) return;
    const { lane, key, index } = this.drag;
    if (!this.drag.saved) { this.checkpoint(); this.drag.saved = true; }
    this.lanes[lane][key][index] = this.toFrame(event);
    this.render();
  }

  // -- commands ------------------------------------------------------------------------------
  select(i) {
    if (i !== this.selected) this.draft = null;
    this.selected = i;
    const lane = this.lanes[i];
    this.el.name.value = lane ? lane.name : "";
    this.el.direction.value = lane ? lane.direction : "both";
    this.render();
  }

  newLane() {
    this.checkpoint();
    const names = new Set(this.lanes.map((l) => l.name));
    let n = this.lanes.length + 1;
    while (names.has(`lane${n}`)) n++;
    this.lanes.push({ name: `lane${n}`, polygon: null, line: null, direction: "both" });
    this.select(this.lanes.length - 1);
    this.say(`lane${n} added: draw its polygon and/or its line`);
  }

  startPolygon() { this.startDraft("polygon"); }

  startLine() { this.startDraft("line"); }

  /** Start drawing the selected lane's polygon or line; its current one stays until the new
   * one is finished. */
  startDraft(key) {
    if (this.selected < 0) this.newLane();
    this.draft = { key, points: [] };
    const had = this.lanes[this.selected][key] ? " (the current one stays until you finish;" +
      " Escape cancels)" : " (Escape cancels)";
    this.say((key === "polygon" ? "click the polygon's corners in order, then Finish"
      : "click the line's first end, then its second") + had);
    this.render();
  }

  cancelDraft() {
    this.draft = null;
    this.say("drawing cancelled: the lane is as it was");
    this.render();
  }

  finish() {
    const lane = this.lanes[this.selected];
    const draft = this.draft;
    if (!draft || !lane) { this.render(); return; }
    if (draft.key === "polygon" && draft.points.length < 3) {
      this.say("a polygon needs at least 3 points (Escape cancels)", true);
      return;
    }
    if (draft.key === "line" && draft.points.length < 2) {
      this.say("a line needs its two ends (Escape cancels)", true);
      return;
    }
    this.checkpoint();
    lane[draft.key] = draft.points;
    this.draft = null;
    this.say(draft.key === "polygon" ? `polygon of ${lane.name}: ${draft.points.length} points`
      : `line of ${lane.name} set`);
    this.render();
  }

  /** Swap the selected lane's line ends: the other side becomes "in". Its labels stay with
   * the directions (in_label names the new "in"), so the arrow shows where they now point. */
  flip() {
    const lane = this.lanes[this.selected];
    if (!lane || !lane.line || lane.line.length !== 2) {
      this.say("select a lane with a counting line to flip it", true);
      return;
    }
    this.checkpoint();
    lane.line = [lane.line[1], lane.line[0]];
    this.say(`${lane.name}: in and out swapped (the line's ends are reversed)`);
    this.render();
  }

  deleteLane() {
    if (this.selected < 0) return;
    this.checkpoint();
    this.lanes.splice(this.selected, 1);
    this.draft = null;
    this.select(Math.min(this.selected, this.lanes.length - 1));
  }

  /** The lanes as the server reads them (pixels of the frame; unknown fields left out). */
  payload() {
    return this.lanes
      .filter((l) => (l.polygon && l.polygon.length) || (l.line && l.line.length))
      .map((l) => {
        const out = { name: l.name, direction: l.direction };
        if (l.polygon && l.polygon.length) out.polygon = l.polygon;
        if (l.line && l.line.length) out.line = l.line;
        for (const key of ["in_label", "out_label", "congestion"]) {
          if (l[key] !== undefined && l[key] !== null) out[key] = l[key];
        }
        return out;
      });
  }

  /** Ask the server to validate the lanes; show the YAML and offer the whole config. */
  async exportYaml() {
    const lanes = this.payload();
    try {
      const result = await api(`/api/streams/${encodeURIComponent(this.stream)}/lanes/export`,
                               { method: "POST", body: { lanes } });
      this.el.yaml.value = result.lanes_yaml;
      const link = this.el.download;
      if (result.config_yaml) {
        if (link.href) URL.revokeObjectURL(link.href);
        link.href = URL.createObjectURL(new Blob([result.config_yaml], { type: "text/yaml" }));
        link.download = result.config_name || "lanewatch.yaml";
        link.hidden = false;
      }
      this.say(`${lanes.length} lane(s) valid: YAML below`);
    } catch (err) {
      this.el.yaml.value = "";
      this.say(err.message, true);
    }
  }

  // -- apply to the running stream (editor_apply.js) -------------------------------------------
  previewApply() { return this.applying.preview(); }

  confirmApply() { return this.applying.confirm(); }

  cancelApply() { this.applying.cancel(); }

  hideApply() { this.applying.hide(); }

  // -- drawing -------------------------------------------------------------------------------
  render() {
    const c = this.el.canvas;
    c.height = Math.round(c.width * this.frame.height / this.frame.width);
    const g = c.getContext("2d");
    g.fillStyle = "#000";
    g.fillRect(0, 0, c.width, c.height);
    if (this.image) g.drawImage(this.image, 0, 0, c.width, c.height);
    const s = this.scale;
    const path = (pts, close) => {
      g.beginPath();
      pts.forEach(([x, y], k) => (k ? g.lineTo(x * s, y * s) : g.moveTo(x * s, y * s)));
      if (close) g.closePath();
    };
    this.lanes.forEach((lane, i) => {
      const color = lane.color || COLORS[i % COLORS.length];
      const chosen = i === this.selected;
      g.lineWidth = chosen ? 3 : 2;
      g.strokeStyle = color;
      g.fillStyle = color + "33";
      const poly = lane.polygon || [];
      if (poly.length) {
        path(poly, true);
        if (poly.length > 2) g.fill();
        g.stroke();
      }
      const line = lane.line || [];
      if (line.length) {
        g.strokeStyle = "#ffe600";
        path(line, false);
        g.stroke();
        if (line.length === 2) drawArrow(g, s, lane, line, chosen);
      }
      g.fillStyle = color;
      for (const [x, y] of [...poly, ...line]) {
        g.beginPath();
        g.arc(x * s, y * s, chosen ? 5 : 3, 0, 2 * Math.PI);
        g.fill();
      }
      const anchor = line[0] || poly[0];
      if (anchor) {
        g.font = "bold 13px system-ui, sans-serif";
        g.fillText(lane.name, anchor[0] * s + 6, anchor[1] * s - 6);
      }
    });
    if (this.draft && this.draft.points.length) {  // the new shape, dashed, over the old one
      g.setLineDash([6, 4]);
      g.lineWidth = 2;
      g.strokeStyle = "#ffffff";
      path(this.draft.points, false);
      g.stroke();
      g.setLineDash([]);
      g.fillStyle = "#ffffff";
      for (const [x, y] of this.draft.points) {
        g.beginPath();
        g.arc(x * s, y * s, 4, 0, 2 * Math.PI);
        g.fill();
      }
    }
    this.el.lanes.replaceChildren(...this.lanes.map((lane, i) => {
      const item = document.createElement("li");
      item.textContent = `${lane.name}${lane.polygon ? " ▱" : ""}${lane.line ? " ―" : ""}`;
      item.className = i === this.selected ? "selected" : "";
      item.onclick = () => this.select(i);
      return item;
    }));
    c.dataset.lanes = String(this.lanes.length);
    c.dataset.undo = String(this.history.length);
    c.dataset.drawing = this.draft ? this.draft.key : "";
    if ($("ed-undo")) $("ed-undo").disabled = !this.history.length && !this.draft;
  }
}
