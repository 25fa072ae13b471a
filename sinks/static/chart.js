// Flow per lane over a sliding window: one line per lane, crossings per bin, drawn on a canvas.
// Backfilled from /api/streams/{id}/flow, then fed with live crossing events. The chart starts
// where the data does (the service's start: `first_s` of the flow reply), never with bins
// nobody watched drawn as zeros; the y axis has integer ticks; the current bin, still filling,
// is drawn dashed and labelled "partial". Each lane has the colour of its overlay in the video
// (`colors` of the flow reply; the server's palette, sinks/overlay_layout.py).

/** The fallback palette (the server's, in lane order) for lanes the server did not colour. */

export const COLORS = ["#3fa7ff", "#ffb84d", "#4cd07d", "#ff5c5c", "#c38bff", "#4dd9d9",
                       "#ff8fc7", "#c9d65a"];

export class FlowChart {
  constructor(canvas, legend, { minutes = 15, binSeconds = 30 } = {}) {
    this.canvas = canvas;
    this.legend = legend;
    this.binSeconds = binSeconds;
    this.bins = Math.round(minutes * 60 / binSeconds);
    this.firstS = null;  // Unix time the data starts (unknown: the whole window)
    this.colors = new Map();
    this.reset({});
  }

  /** Start over from the server's flow: {start_s, bin_s, lanes: {name: [counts]}}. */
  reset(flow) {
    this.series = new Map();  // lane -> Map(bin start seconds -> count)
    const start = flow.start_s || 0;
    const bin = flow.bin_s || this.binSeconds;
    this.firstS = typeof flow.first_s === "number" ? flow.first_s : null;
    this.colors = new Map(Object.entries(flow.colors || {}));
    for (const [lane, counts] of Object.entries(flow.lanes || {})) {
      const bins = new Map();
      counts.forEach((n, i) => { if (n) bins.set(start + i * bin, n); });
      this.series.set(lane, bins);
    }
    this.drawLegend();
  }

  /** One crossing at Unix time `t` on `lane`. */
  add(lane, t) {
    if (!this.series.has(lane)) {
      this.series.set(lane, new Map());
      this.drawLegend();
    }
    const key = Math.floor(t / this.binSeconds) * this.binSeconds;
    const bins = this.series.get(lane);
    bins.set(key, (bins.get(key) || 0) + 1);
  }

  drawLegend() {
    this.legend.replaceChildren(...[...this.series.keys()].map((lane, i) => {
      const item = document.createElement("span");
      item.style.setProperty("--c", this.color(lane, i));
      item.textContent = lane;
      return item;
    }));
  }

  color(lane, i) {
    return this.colors.get(lane) || COLORS[i % COLORS.length];
  }

  /** Redraw for the window ending now; returns how many points were plotted. */
  draw(now = Date.now() / 1000) {
    const c = this.canvas;
    const scale = window.devicePixelRatio || 1;
    const width = c.clientWidth || c.width;
    const height = c.clientHeight || c.height;
    if (c.width !== Math.round(width * scale)) {
      c.width = Math.round(width * scale);
      c.height = Math.round(height * scale);
    }
    const g = c.getContext("2d");
    g.setTransform(scale, 0, 0, scale, 0, 0);
    g.fillStyle = "#151a21";
    g.fillRect(0, 0, width, height);
    const pad = { left: 36, right: 10, top: 10, bottom: 22 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const last = Math.floor(now / this.binSeconds) * this.binSeconds;
    const windowFirst = last - (this.bins - 1) * this.binSeconds;
    const dataFirst = this.firstS === null ? windowFirst
      : Math.floor(this.firstS / this.binSeconds) * this.binSeconds;
    const first = Math.min(Math.max(windowFirst, dataFirst), last);
    const shown = Math.round((last - first) / this.binSeconds) + 1;
    let top = 1;
    for (const bins of this.series.values()) {
      for (const [t, n] of bins) if (t >= first && n > top) top = n;
    }
    const step = integerStep(top);
    const max = Math.ceil(top / step) * step;
    // One bin alone (the service just started) sits at the left edge, not across a zero span.
    const span = Math.max(last - first, this.binSeconds);
    const x = (t) => pad.left + ((t - first) / span) * plotW;
    const y = (n) => pad.top + plotH - (n / max) * plotH;

    g.strokeStyle = "#2c3440";
    g.fillStyle = "#8b96a5";
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    const ticks = [];
    for (let n = 0; n <= max; n += step) {  // horizontal grid with whole counts
      ticks.push(n);
      g.beginPath();
      g.moveTo(pad.left, y(n));
      g.lineTo(width - pad.right, y(n));
      g.stroke();
      g.fillText(String(n), 4, y(n) + 4);
    }
    // The current bin is still filling: shaded, and said so.
    // Half an interval to the left of the current bin's point (at most 40 px), whole bins on.
    const partialX = shown > 1 ? Math.max(x(last) - Math.min((x(last) - x(last -
      this.binSeconds)) / 2, 40), pad.left) : pad.left;
    g.fillStyle = "rgba(255, 184, 77, 0.08)";
    g.fillRect(partialX, pad.top, x(last) - partialX + 1, plotH);
    g.fillStyle = "#ffb84d";
    const partialLabel = "partial";
    const labelW = g.measureText(partialLabel).width;
    // Left of the current bin's point; right of it when that is the chart's left edge.
    const labelX = x(last) - labelW - 6 >= pad.left ? x(last) - labelW - 6 : x(last) + 6;
    g.fillText(partialLabel, Math.min(labelX, width - pad.right - labelW), pad.top + 10);
    g.fillStyle = "#8b96a5";
    const minuteStep = span > 10 * 60 ? 5 : 1;
    for (let m = 0; last - m * 60 >= first; m += minuteStep) {  // minutes ago
      const t = last - m * 60;
      const label = m === 0 ? "now" : `-${m} min`;
      g.fillText(label, Math.min(x(t) - g.measureText(label).width / 2,
                                 width - g.measureText(label).width - 2), height - 6);
    }

    let points = 0;
    [...this.series.entries()].forEach(([lane, bins], i) => {
      g.strokeStyle = this.color(lane, i);
      g.fillStyle = g.strokeStyle;
      g.lineWidth = 2;
      g.beginPath();
      const complete = shown - 1;  // every bin but the current one
      for (let k = 0; k < complete; k++) {
        const t = first + k * this.binSeconds;
        const py = y(bins.get(t) || 0);
        if (k === 0) g.moveTo(x(t), py); else g.lineTo(x(t), py);
        points++;
      }
      g.stroke();
      // The partial bin: a dashed segment to a hollow point.
      const py = y(bins.get(last) || 0);
      g.setLineDash([4, 3]);
      g.beginPath();
      if (complete > 0) {
        g.moveTo(x(last - this.binSeconds), y(bins.get(last - this.binSeconds) || 0));
        g.lineTo(x(last), py);
      }
      g.stroke();
      g.setLineDash([]);
      g.beginPath();
      g.arc(x(last), py, 3, 0, 2 * Math.PI);
      g.stroke();
      points++;
    });
    // Drop bins that left the window (memory stays bounded on a dashboard left open).
    for (const bins of this.series.values()) {
      for (const t of bins.keys()) if (t < first) bins.delete(t);
    }
    c.dataset.points = String(points);
    c.dataset.max = String(top);
    c.dataset.ticks = ticks.join(",");
    c.dataset.first = String(first);
    c.dataset.partial = String(last);
    c.dataset.bins = String(shown);
    return points;
  }
}

/** A whole step for the y axis giving at most 5 intervals up to `top`: 1, 2, 5, 10, 20 ... */
export function integerStep(top) {
  for (let scale = 1; ; scale *= 10) {
    for (const s of [1, 2, 5]) if (s * scale * 5 >= top) return s * scale;
  }
}
