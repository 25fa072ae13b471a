// Lane editor: a snapshot of the stream, its lanes drawn over it; draw and edit polygons and
// counting lines with the mouse; export validated YAML (the server checks it exactly like
// `lanewatch check-config`). Coordinates are kept in pixels of the camera frame.

import { api } from "./api.js";
import { COLORS } from "./chart.js";

const GRAB_RADIUS = 9;  // canvas pixels within which a click grabs a point

export class LaneEditor {
  constructor(el) {
    this.el = el;  // {canvas, lanes, message, yaml, download, name, direction}
    this.stream = null;
    this.image = null;
    this.frame = { width: 1280, height: 720 };
    this.lanes = [];
    this.selected = -1;
    this.mode = null;  // null | "polygon" | "line"
    this.drag = null;  // {lane, key, index}
    const c = el.canvas;
    c.addEventListener("mousedown", (e) => this.onDown(e));
    c.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", () => { this.drag = null; });
    c.addEventListener("dblclick", (e) => { e.preventDefault(); this.finish(); });
    el.name.addEventListener("input", () => {
      const lane = this.lanes[this.selected];
      if (lane) { lane.name = el.name.value.trim(); this.render(); }
    });
    el.direction.addEventListener("change", () => {
      const lane = this.lanes[this.selected];
      if (lane) lane.direction = el.direction.value;
    });
  }

  /** Load the stream's snapshot and its configured lanes. */
  async load(stream) {
    this.stream = stream;
    this.say("loading…");
    try {
      const info = await api(`/api/streams/${encodeURIComponent(stream)}/lanes`);
      const response = await api(`/api/streams/${encodeURIComponent(stream)}/snapshot.jpg`,
                                 { raw: true });
      const bitmap = await createImageBitmap(await response.blob());
      this.image = bitmap;
      this.frame = { width: info.width, height: info.height };
      this.lanes = info.lanes.map((lane) => ({ ...lane }));
      this.selected = this.lanes.length ? 0 : -1;
      this.mode = null;
      this.say(`${info.width}×${info.height} frame, ${this.lanes.length} lane(s)`);
    } catch (err) {
      this.say(`cannot load the stream: ${err.message}`, true);
    }
    this.render();
  }

  say(text, bad = false) {
    this.el.message.textContent = text;
    this.el.message.className = bad ? "error" : "muted";
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
    const lane = this.lanes[this.selected];
    if (this.mode === "polygon" && lane) {
      lane.polygon = [...(lane.polygon || []), p];
    } else if (this.mode === "line" && lane) {
      lane.line = [...(lane.line || []), p].slice(-2);
      if (lane.line.length === 2) {
        this.mode = null;
        this.say(`line of ${lane.name} set`);
      }
    } else {
      this.drag = this.grab(p);
      if (this.drag) this.select(this.drag.lane);
    }
    this.render();
  }

  onMove(event) {
    if (!this.drag) return;
    const { lane, key, index } = this.drag;
    this.lanes[lane][key][index] = this.toFrame(event);
    this.render();
  }

  // -- commands ------------------------------------------------------------------------------
  select(i) {
    this.selected = i;
    const lane = this.lanes[i];
    this.el.name.value = lane ? lane.name : "";
    this.el.direction.value = lane ? lane.direction : "both";
    this.render();
  }

  newLane() {
    const names = new Set(this.lanes.map((l) => l.name));
    let n = this.lanes.length + 1;
    while (names.has(`lane${n}`)) n++;
    this.lanes.push({ name: `lane${n}`, polygon: null, line: null, direction: "both" });
    this.select(this.lanes.length - 1);
    this.say(`lane${n} added: draw its polygon and/or its line`);
  }

  startPolygon() {
    if (this.selected < 0) this.newLane();
    this.lanes[this.selected].polygon = [];
    this.mode = "polygon";
    this.say("click the polygon's corners in order, then Finish");
  }

  startLine() {
    if (this.selected < 0) this.newLane();
    this.lanes[this.selected].line = [];
    this.mode = "line";
    this.say("click the line's first end, then its second");
  }

  finish() {
    const lane = this.lanes[this.selected];
    if (this.mode === "polygon" && lane) {
      if ((lane.polygon || []).length < 3) {
        this.say("a polygon needs at least 3 points", true);
        return;
      }
      this.say(`polygon of ${lane.name}: ${lane.polygon.length} points`);
    }
    this.mode = null;
    this.render();
  }

  deleteLane() {
    if (this.selected < 0) return;
    this.lanes.splice(this.selected, 1);
    this.mode = null;
    this.select(Math.min(this.selected, this.lanes.length - 1));
  }

  /** Ask the server to validate the lanes; show the YAML and offer the whole config. */
  async exportYaml() {
    const lanes = this.lanes
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

  // -- drawing -------------------------------------------------------------------------------
  render() {
    const c = this.el.canvas;
    c.height = Math.round(c.width * this.frame.height / this.frame.width);
    const g = c.getContext("2d");
    g.fillStyle = "#000";
    g.fillRect(0, 0, c.width, c.height);
    if (this.image) g.drawImage(this.image, 0, 0, c.width, c.height);
    const s = this.scale;
    this.lanes.forEach((lane, i) => {
      const color = COLORS[i % COLORS.length];
      const chosen = i === this.selected;
      g.lineWidth = chosen ? 3 : 2;
      g.strokeStyle = color;
      g.fillStyle = color + "33";
      const poly = lane.polygon || [];
      if (poly.length) {
        g.beginPath();
        poly.forEach(([x, y], k) => (k ? g.lineTo(x * s, y * s) : g.moveTo(x * s, y * s)));
        if (!(chosen && this.mode === "polygon")) g.closePath();
        if (poly.length > 2) g.fill();
        g.stroke();
      }
      const line = lane.line || [];
      if (line.length) {
        g.strokeStyle = "#ffe600";
        g.beginPath();
        line.forEach(([x, y], k) => (k ? g.lineTo(x * s, y * s) : g.moveTo(x * s, y * s)));
        g.stroke();
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
    this.el.lanes.replaceChildren(...this.lanes.map((lane, i) => {
      const item = document.createElement("li");
      item.textContent = `${lane.name}${lane.polygon ? " ▱" : ""}${lane.line ? " ―" : ""}`;
      item.className = i === this.selected ? "selected" : "";
      item.onclick = () => this.select(i);
      return item;
    }));
    c.dataset.lanes = String(this.lanes.length);
  }
}
