// Flow per lane over a sliding window: one line per lane, crossings per bin, drawn on a canvas.
// Backfilled from /api/streams/{id}/flow, then fed with live crossing events.

export const COLORS = ["#3fa7ff", "#ffb84d", "#4cd07d", "#ff5c5c", "#c38bff", "#4dd9d9",
                       "#ff8fc7", "#c9d65a"];

export class FlowChart {
  constructor(canvas, legend, { minutes = 15, binSeconds = 30 } = {}) {
    this.canvas = canvas;
    this.legend = legend;
    this.binSeconds = binSeconds;
    this.bins = Math.round(minutes * 60 / binSeconds);
    this.reset({});
  }

  /** Start over from the server's flow: {start_s, bin_s, lanes: {name: [counts]}}. */
  reset(flow) {
    this.series = new Map();  // lane -> Map(bin start seconds -> count)
    const start = flow.start_s || 0;
    const bin = flow.bin_s || this.binSeconds;
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
      item.style.setProperty("--c", COLORS[i % COLORS.length]);
      item.textContent = lane;
      return item;
    }));
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
    const first = last - (this.bins - 1) * this.binSeconds;
    let max = 1;
    for (const bins of this.series.values()) {
      for (const [t, n] of bins) if (t >= first && n > max) max = n;
    }
    const x = (t) => pad.left + ((t - first) / ((this.bins - 1) * this.binSeconds)) * plotW;
    const y = (n) => pad.top + plotH - (n / max) * plotH;

    g.strokeStyle = "#2c3440";
    g.fillStyle = "#8b96a5";
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {  // horizontal grid with counts
      const n = (max * i) / 4;
      g.beginPath();
      g.moveTo(pad.left, y(n));
      g.lineTo(width - pad.right, y(n));
      g.stroke();
      g.fillText(Number.isInteger(n) ? String(n) : n.toFixed(1), 4, y(n) + 4);
    }
    for (let m = 0; last - m * 60 >= first; m += 5) {  // minutes ago
      const t = last - m * 60;
      const label = m === 0 ? "now" : `-${m} min`;
      g.fillText(label, Math.min(x(t) - g.measureText(label).width / 2,
                                 width - g.measureText(label).width - 2), height - 6);
    }

    let points = 0;
    [...this.series.entries()].forEach(([, bins], i) => {
      g.strokeStyle = COLORS[i % COLORS.length];
      g.lineWidth = 2;
      g.beginPath();
      for (let k = 0; k < this.bins; k++) {
        const t = first + k * this.binSeconds;
        const px = x(t);
        const py = y(bins.get(t) || 0);
        if (k === 0) g.moveTo(px, py); else g.lineTo(px, py);
        points++;
      }
      g.stroke();
    });
    // Drop bins that left the window (memory stays bounded on a dashboard left open).
    for (const bins of this.series.values()) {
      for (const t of bins.keys()) if (t < first) bins.delete(t);
    }
    c.dataset.points = String(points);
    c.dataset.max = String(max);
    return points;
  }
}
